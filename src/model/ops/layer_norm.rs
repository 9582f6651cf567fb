//! LayerNorm over the last dimension (torch's `nn.LayerNorm`, the reference's eps 1e-8) as one
//! candle op with a hand-written backward. candle-nn's fused `layer_norm` has no backward, and the
//! composition of plain ops that autograd can follow wrote nine activation-sized tensors forward
//! and about twice that backward, in every block of every training step.

use super::cpu_storage::contiguous_f32;
use candle_core::{CpuStorage, CustomOp3, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};

/// LayerNorm with a learned scale and shift.
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
        xs.contiguous()?.apply_op3(
            &self.weight,
            &self.bias,
            Norm {
                eps: self.eps as f32,
            },
        )
    }
}

/// Normalises one row in place of `xhat` and returns 1/σ.
fn normalise(x: &[f32], eps: f32, xhat: &mut [f32]) -> f32 {
    let d = x.len() as f32;
    let mean = x.iter().sum::<f32>() / d;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
    let r = 1.0 / (var + eps).sqrt();
    for (o, v) in xhat.iter_mut().zip(x) {
        *o = (v - mean) * r;
    }
    r
}

struct Norm {
    eps: f32,
}

fn width(l1: &Layout, l2: &Layout, l3: &Layout) -> Result<usize> {
    let d = *l1.shape().dims().last().unwrap_or(&0);
    if d == 0 || l2.shape().dims() != [d] || l3.shape().dims() != [d] {
        candle_core::bail!(
            "layer norm over {:?} with weight {:?} and bias {:?}",
            l1.shape(),
            l2.shape(),
            l3.shape()
        );
    }
    Ok(d)
}

impl CustomOp3 for Norm {
    fn name(&self) -> &'static str {
        "layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = width(l1, l2, l3)?;
        let (x, w, b) = (
            contiguous_f32(s1, l1, "layer norm: x")?,
            contiguous_f32(s2, l2, "layer norm: weight")?,
            contiguous_f32(s3, l3, "layer norm: bias")?,
        );
        let mut out = vec![0f32; x.len()];
        for (o, row) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            normalise(row, self.eps, o);
            for ((o, w), b) in o.iter_mut().zip(w).zip(b) {
                *o = *o * w + b;
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = w.dim(0)?;
        let rows = x.elem_count() / d;
        let all = x.apply_op3_no_bwd(w, &grad.contiguous()?, &NormGrad { eps: self.eps })?;
        let dx = all.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = all.get(rows)?;
        let db = all.get(rows + 1)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// From `x`, the weight and the output gradient, one `[rows + 2, d]` tensor: the input gradient
/// row by row, then the weight's and the bias's gradients.
struct NormGrad {
    eps: f32,
}

impl CustomOp3 for NormGrad {
    fn name(&self) -> &'static str {
        "layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = *l1.shape().dims().last().unwrap_or(&0);
        if l1.shape() != l3.shape() || l2.shape().dims() != [d] {
            candle_core::bail!(
                "layer norm gradient: shapes {:?}, {:?}",
                l1.shape(),
                l3.shape()
            );
        }
        let (x, w, g) = (
            contiguous_f32(s1, l1, "layer norm: x")?,
            contiguous_f32(s2, l2, "layer norm: weight")?,
            contiguous_f32(s3, l3, "layer norm: grad")?,
        );
        let rows = x.len() / d;
        let mut out = vec![0f32; (rows + 2) * d];
        let (dx_all, params) = out.split_at_mut(rows * d);
        let (dw, db) = params.split_at_mut(d);
        let mut xhat = vec![0f32; d];
        let mut dxhat = vec![0f32; d];
        for ((dx, row), grow) in dx_all
            .chunks_exact_mut(d)
            .zip(x.chunks_exact(d))
            .zip(g.chunks_exact(d))
        {
            let r = normalise(row, self.eps, &mut xhat);
            let (mut mean_d, mut mean_dx) = (0f32, 0f32);
            for j in 0..d {
                dw[j] += grow[j] * xhat[j];
                db[j] += grow[j];
                dxhat[j] = grow[j] * w[j];
                mean_d += dxhat[j];
                mean_dx += dxhat[j] * xhat[j];
            }
            mean_d /= d as f32;
            mean_dx /= d as f32;
            for j in 0..d {
                dx[j] = r * (dxhat[j] - mean_d - xhat[j] * mean_dx);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((rows + 2, d))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::max_diff;
    use candle_core::{DType, Device, Var, D};

    /// The composition of plain ops the fused version replaces.
    fn composed(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Tensor {
        let centred = x
            .broadcast_sub(&x.mean_keepdim(D::Minus1).unwrap())
            .unwrap();
        let var = centred.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        centred
            .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(w)
            .unwrap()
            .broadcast_add(b)
            .unwrap()
    }

    #[test]
    fn values_and_gradients_match_the_composition() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 3.0, (2, 5, 8), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(1f32, 0.5, 8, &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.5, 8, &dev).unwrap()).unwrap();
        let ln = LayerNorm {
            weight: w.as_tensor().clone(),
            bias: b.as_tensor().clone(),
            eps: 1e-8,
        };
        let probe = Tensor::randn(0f32, 1.0, (2, 5, 8), &dev).unwrap();
        let fused = ln.forward(x.as_tensor()).unwrap();
        let reference = composed(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-8);
        assert!(max_diff(&fused, &reference) < 1e-5);
        let g1 = (fused * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (reference * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w, &b] {
            let (a, c) = (
                g1.get(v.as_tensor()).unwrap(),
                g2.get(v.as_tensor()).unwrap(),
            );
            assert!(max_diff(a, c) < 1e-4, "{a} vs {c}");
        }
        // A strided input (a transpose) is normalised as its contiguous copy.
        let t = x.as_tensor().transpose(0, 1).unwrap();
        let y = ln.forward(&t).unwrap();
        let y2 = composed(&t.contiguous().unwrap(), w.as_tensor(), b.as_tensor(), 1e-8);
        assert!(max_diff(&y, &y2) < 1e-5);
    }

    #[test]
    fn matches_candle_and_gradients_reach_the_weights() {
        let dev = Device::Cpu;
        let x = Var::from_slice(&[1.0f32, 2.0, 4.0, -1.0, 0.5, 3.0], (2, 3), &dev).unwrap();
        let vars = candle_nn::VarMap::new();
        let ln = LayerNorm::new(3, 1e-5, VarBuilder::from_varmap(&vars, DType::F32, &dev)).unwrap();
        let ours = ln.forward(x.as_tensor()).unwrap();
        let w = Tensor::ones(3, DType::F32, &dev).unwrap();
        let b = Tensor::zeros(3, DType::F32, &dev).unwrap();
        let candle = candle_nn::ops::layer_norm(x.as_tensor(), &w, &b, 1e-5).unwrap();
        assert!(max_diff(&ours, &candle) < 1e-5);
        let g = ours.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(x.as_tensor()).is_some(), "gradient reaches the input");
        let data = vars.data().lock().unwrap();
        assert!(
            data.values().all(|v| g.get(v.as_tensor()).is_some()),
            "and the LayerNorm weights"
        );
    }

    #[test]
    fn wrong_widths_are_refused() {
        let dev = Device::Cpu;
        let vars = candle_nn::VarMap::new();
        let ln = LayerNorm::new(4, 1e-5, VarBuilder::from_varmap(&vars, DType::F32, &dev)).unwrap();
        assert!(ln
            .forward(&Tensor::zeros((2, 3), DType::F32, &dev).unwrap())
            .is_err());
    }
}
