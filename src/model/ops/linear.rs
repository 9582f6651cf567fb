//! Linear layers for the training graph, as one candle op with a hand-written backward.
//!
//! candle-nn's `Linear` broadcasts its weight over the batch (a batched product whose backward
//! sums `[N, in, out]` over `N`) and adds its bias by broadcasting it over every row; candle's CPU
//! sum over leading dimensions does an integer division per element, and in a profile of an ML-1M
//! LLM-ESR step those sums were 14% of the time. A composition of 2-d ops avoids the sums but adds
//! reshapes, and autograd gives every node's input gradient a zeroed buffer and an add, so each
//! node costs passes over an activation-sized tensor. Here the layer is one node: the input
//! gradient is `grad · W`, the weight gradient `gradᵀ · x` and the bias gradient the column sums
//! of `grad`. The variables, their names and their initialisation are candle-nn's, so checkpoints
//! and exported bundles are unchanged.

use super::cpu_storage::{contiguous_f32, storage_f32};
use crate::kernels::gemm::{matmul, Dst, Mat};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Module, Result, Shape, Tensor};
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
        if x.dims().last() != Some(&in_dim) {
            candle_core::bail!("linear {in_dim}→{out_dim} applied to {:?}", x.shape());
        }
        let x = x.contiguous()?;
        match &self.bias {
            Some(b) => x.apply_op3(&self.weight, b, Affine),
            None => x.apply_op2(&self.weight, Affine),
        }
    }
}

/// `y = x · Wᵀ (+ b)` over the rows of `x`.
struct Affine;

/// `(rows, in, out)` of x `[.., in]` and W `[out, in]`; the bias, when given, must be `[out]`.
fn sizes(x: &Shape, w: &Shape, b: Option<&Shape>) -> Result<(usize, usize, usize)> {
    let (&[out, inn], Some(&xin)) = (w.dims(), x.dims().last()) else {
        candle_core::bail!("linear: weight {w:?} must be [out, in], input {x:?} [.., in]");
    };
    if xin != inn || b.is_some_and(|b| b.dims() != [out]) {
        candle_core::bail!("linear: input {x:?}, weight {w:?} and bias {b:?} do not match");
    }
    Ok((x.elem_count() / inn.max(1), inn, out))
}

fn out_shape(x: &Shape, out: usize) -> Shape {
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = out;
    }
    Shape::from(dims)
}

/// The op's forward over x, W and, when given, b.
fn forward(
    (sx, lx): (&CpuStorage, &Layout),
    (sw, lw): (&CpuStorage, &Layout),
    bias: Option<(&CpuStorage, &Layout)>,
) -> Result<(CpuStorage, Shape)> {
    let n = sizes(lx.shape(), lw.shape(), bias.map(|(_, l)| l.shape()))?;
    let x = contiguous_f32(sx, lx, "linear: input")?;
    let w = contiguous_f32(sw, lw, "linear: weight")?;
    let b = bias
        .map(|(s, l)| contiguous_f32(s, l, "linear: bias"))
        .transpose()?;
    Ok((
        CpuStorage::F32(forward_rows(x, w, b, n)),
        out_shape(lx.shape(), n.2),
    ))
}

fn forward_rows(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    (rows, inn, out): (usize, usize, usize),
) -> Vec<f32> {
    // With a bias, the output starts as the bias, written once per row: zeroing it first would be
    // a second pass over every activation of the layer.
    let mut y = match b {
        Some(b) => {
            let mut y = Vec::with_capacity(rows * out);
            (0..rows).for_each(|_| y.extend_from_slice(b));
            y
        }
        None => vec![0f32; rows * out],
    };
    let threads = candle_core::utils::get_num_threads();
    matmul(
        Dst::new(&mut y, rows, out),
        Mat::new(x, rows, inn),
        Mat::new(w, out, inn).t(),
        b.is_some(),
        threads,
    );
    y
}

/// The gradients of x, W and b from the output gradient.
fn backward(
    x: &Tensor,
    w: &Tensor,
    with_bias: bool,
    grad: &Tensor,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let (rows, inn, out) = sizes(x.shape(), w.shape(), None)?;
    let grad = grad.contiguous()?;
    if grad.shape() != &out_shape(x.shape(), out) {
        candle_core::bail!(
            "linear: output gradient {:?} for input {:?}",
            grad.shape(),
            x.shape()
        );
    }
    let (xg, xl) = x.storage_and_layout();
    let (wg, wl) = w.storage_and_layout();
    let (gg, gl) = grad.storage_and_layout();
    let xd = storage_f32(&xg, xl, "linear: input")?;
    let wd = storage_f32(&wg, wl, "linear: weight")?;
    let gd = storage_f32(&gg, gl, "linear: output gradient")?;
    let threads = candle_core::utils::get_num_threads();
    let mut dx = vec![0f32; rows * inn];
    matmul(
        Dst::new(&mut dx, rows, inn),
        Mat::new(gd, rows, out),
        Mat::new(wd, out, inn),
        false,
        threads,
    );
    let mut dw = vec![0f32; out * inn];
    matmul(
        Dst::new(&mut dw, out, inn),
        Mat::new(gd, rows, out).t(),
        Mat::new(xd, rows, inn),
        false,
        threads,
    );
    let db = with_bias.then(|| {
        let mut db = vec![0f32; out];
        for row in gd.chunks_exact(out) {
            for (d, g) in db.iter_mut().zip(row) {
                *d += g;
            }
        }
        db
    });
    drop((xg, wg, gg));
    let dev = x.device();
    Ok((
        Tensor::from_vec(dx, x.shape(), dev)?,
        Tensor::from_vec(dw, w.shape(), dev)?,
        db.map(|db| Tensor::from_vec(db, out, dev)).transpose()?,
    ))
}

impl CustomOp2 for Affine {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        forward((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = backward(x, w, false, grad)?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for Affine {
    fn name(&self) -> &'static str {
        "linear"
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
        forward((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = backward(x, w, true, grad)?;
        Ok((Some(dx), Some(dw), db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::max_diff;
    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;

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
