//! A single bias-free GRU layer (torch `nn.GRU(d, d, bias=False, batch_first=True)`, gate order
//! r, z, n), run over every step of the left-padded input. With zero inputs and a zero start state
//! the state stays zero, so zeroed padding (corrected mode) is an exact no-op.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

pub struct Gru {
    /// `[3d, d]`: input weights of the r, z, n gates, stacked.
    weight_ih: Tensor,
    /// `[3d, d]`: hidden-state weights, stacked the same way.
    weight_hh: Tensor,
}

impl Gru {
    pub fn new(hidden: usize, vb: VarBuilder) -> Result<Self> {
        let init = Init::Const(0.0);
        Ok(Gru {
            weight_ih: vb.get_with_hints((3 * hidden, hidden), "weight_ih", init)?,
            weight_hh: vb.get_with_hints((3 * hidden, hidden), "weight_hh", init)?,
        })
    }

    /// The final state after reading every step: `[N, L, d]` → `[N, d]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, l, d) = x.dims3()?;
        // All input projections in one product; only the recurrent part runs step by step.
        let gi = x
            .reshape((n * l, d))?
            .matmul(&self.weight_ih.t()?)?
            .reshape((n, l, 3 * d))?;
        super::ops::fused_gru::final_state(&gi, &self.weight_hh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn zero_padding_in_front_changes_nothing() {
        let dev = Device::Cpu;
        let w = |seed: f32| {
            let v: Vec<f32> = (0..48).map(|i| ((i as f32 * seed).sin()) * 0.5).collect();
            Tensor::from_vec(v, (12, 4), &dev).unwrap()
        };
        let g = Gru {
            weight_ih: w(1.3),
            weight_hh: w(0.7),
        };
        let x = Tensor::randn(0f32, 1.0, (2, 3, 4), &dev).unwrap();
        let padded = Tensor::cat(
            &[&Tensor::zeros((2, 5, 4), DType::F32, &dev).unwrap(), &x],
            1,
        )
        .unwrap();
        let a = g.forward(&x).unwrap();
        let b = g.forward(&padded).unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-7);
    }
}
