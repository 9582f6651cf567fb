//! Linear layers for the training graph: the leading dimensions folded into one matrix product,
//! and a bias whose gradient is a matrix product too.
//!
//! candle-nn's `Linear` broadcasts its weight over the batch (a batched product whose backward
//! sums `[N, in, out]` over `N`) and adds its bias by broadcasting it over every row. candle's CPU
//! sum over leading dimensions does an integer division per element, and in a profile of an ML-1M
//! LLM-ESR step those sums were 14% of the time. Here the weight gradient is one `[in, n] × [n, out]`
//! product and the bias gradient `1ᵀ · grad`. The variables, their names and their initialisation
//! are candle-nn's, so checkpoints and exported bundles are unchanged.

use super::cpu_storage::contiguous_f32;
use candle_core::{CpuStorage, CustomOp2, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;

pub struct Linear {
    /// `[out, in]`, as torch and candle-nn store it.
    weight: Tensor,
    bias: Option<Tensor>,
}

/// `weight` and `bias` under `vb`, initialised as `candle_nn::linear` does.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let l = candle_nn::linear(in_dim, out_dim, vb)?;
    Ok(Linear {
        weight: l.weight().clone(),
        bias: l.bias().cloned(),
    })
}

/// `weight` only under `vb`, initialised as `candle_nn::linear_no_bias` does.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let l = candle_nn::linear_no_bias(in_dim, out_dim, vb)?;
    Ok(Linear {
        weight: l.weight().clone(),
        bias: None,
    })
}

impl Module for Linear {
    /// `[.., in]` → `[.., out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (out_dim, in_dim) = self.weight.dims2()?;
        let mut dims = x.dims().to_vec();
        match dims.last_mut() {
            Some(last) if *last == in_dim => *last = out_dim,
            _ => candle_core::bail!("linear {in_dim}→{out_dim} applied to {:?}", x.shape()),
        }
        let rows = x.elem_count() / in_dim;
        let y = x.reshape((rows, in_dim))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.apply_op2(b, BiasAdd)?,
            None => y,
        };
        y.reshape(dims)
    }
}

/// `[n, d] + [d]`, row by row.
struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "bias-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = *l1.shape().dims().last().unwrap_or(&0);
        if d == 0 || l2.shape().dims() != [d] {
            candle_core::bail!("bias {:?} added to {:?}", l2.shape(), l1.shape());
        }
        let x = contiguous_f32(s1, l1, "bias add: input")?;
        let b = contiguous_f32(s2, l2, "bias add: bias")?;
        let mut out = x.to_vec();
        for row in out.chunks_exact_mut(d) {
            for (o, b) in row.iter_mut().zip(b) {
                *o += b;
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let rows = x.dim(0)?;
        let ones = Tensor::ones((1, rows), grad.dtype(), grad.device())?;
        let db = ones.matmul(&grad.contiguous()?)?.reshape(b.shape())?;
        Ok((Some(grad.clone()), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Values and every gradient (input, weight, bias) equal candle-nn's `Linear` on a 3-d input.
    fn matches_candle_nn(bias: bool) {
        let dev = Device::Cpu;
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
        let ours = if bias {
            linear(6, 5, vb.pp("l")).unwrap()
        } else {
            linear_no_bias(6, 5, vb.pp("l")).unwrap()
        };
        let theirs = candle_nn::Linear::new(ours.weight.clone(), ours.bias.clone());
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 4, 6), &dev).unwrap()).unwrap();
        let up = Tensor::randn(0f32, 1.0, (3, 4, 5), &dev).unwrap();
        let (a, b) = (
            ours.forward(x.as_tensor()).unwrap(),
            theirs.forward(x.as_tensor()).unwrap(),
        );
        assert_eq!(a.dims(), &[3, 4, 5]);
        assert!(max_diff(&a, &b) < 1e-5);
        let ga = (a * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (b * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let mut checked = vec![x.as_tensor(), &ours.weight];
        if let Some(b) = &ours.bias {
            checked.push(b);
        }
        for t in checked {
            let (ga, gb) = (ga.get(t).unwrap(), gb.get(t).unwrap());
            assert_eq!(ga.dims(), t.dims());
            assert!(max_diff(ga, gb) < 1e-5, "{:?}", t.dims());
        }
    }

    #[test]
    fn biased_layer_matches_candle_nn() {
        matches_candle_nn(true);
    }

    #[test]
    fn bias_free_layer_matches_candle_nn() {
        matches_candle_nn(false);
    }

    #[test]
    fn a_wrong_width_is_an_error() {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let l = linear(6, 5, vb).unwrap();
        let x = Tensor::zeros((2, 5), DType::F32, &Device::Cpu).unwrap();
        let err = l.forward(&x).unwrap_err().to_string();
        assert!(err.contains("6→5"), "{err}");
    }
}
