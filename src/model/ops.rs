//! Differentiable building blocks. candle-nn's fused `layer_norm` and `softmax_last_dim` are
//! applied without a backward pass (`apply_op*_no_bwd`), so gradients silently stop at them; the
//! models use these compositions of plain tensor ops instead, which autograd sees through.

use candle_core::{Result, Tensor, D};
use candle_nn::{Init, Module, VarBuilder};

/// Softmax over the last dimension, max-shifted for stability.
pub fn softmax_last(xs: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(xs, D::Minus1)
}

/// LayerNorm over the last dimension with a learned scale and shift (torch's `nn.LayerNorm`).
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Variables `weight` (ones) and `bias` (zeros) of width `size` under `vb`.
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(LayerNorm {
            weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", Init::Const(0.0))?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let centred = xs.broadcast_sub(&xs.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    #[test]
    fn gradients_flow_and_values_match_candle() {
        let dev = Device::Cpu;
        let x = Var::from_slice(&[1.0f32, 2.0, 4.0, -1.0, 0.5, 3.0], (2, 3), &dev).unwrap();
        let vars = candle_nn::VarMap::new();
        let ln = LayerNorm::new(3, 1e-5, VarBuilder::from_varmap(&vars, DType::F32, &dev)).unwrap();
        let ours = ln.forward(x.as_tensor()).unwrap();
        let w = Tensor::ones(3, DType::F32, &dev).unwrap();
        let b = Tensor::zeros(3, DType::F32, &dev).unwrap();
        let fused = candle_nn::ops::layer_norm(x.as_tensor(), &w, &b, 1e-5).unwrap();
        let diff = (&ours - fused).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        let s = softmax_last(x.as_tensor()).unwrap();
        let loss = (ours.sqr().unwrap().sum_all().unwrap()
            + (s.narrow(1, 0, 1).unwrap().sum_all().unwrap()))
        .unwrap();
        let g = loss.backward().unwrap();
        assert!(g.get(x.as_tensor()).is_some(), "gradient reaches the input");
        let data = vars.data().lock().unwrap();
        assert!(
            data.values().all(|v| g.get(v.as_tensor()).is_some()),
            "and the LayerNorm weights"
        );
    }
}
