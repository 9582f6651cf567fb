//! The GRU's recurrence — every step's gates and state update — as one candle op with a
//! hand-written backward through time.
//!
//! Why: composed from candle ops, each step sliced its input projections out of the `[N, L, 3d]`
//! tensor, and autograd's backward of every slice zero-padded its gradient back to the full tensor
//! and added it up: `L` full-size allocations, copies and additions per layer, quadratic in the
//! history length. On MovieLens-1M (L = 200) that, not the arithmetic, was most of a GRU4Rec
//! training step. Here autograd sees only the projections, the recurrent weights and the final
//! state; the backward replays the forward to recover each step's state and gates.

use super::cpu_storage::{contiguous_f32, storage_f32};
use crate::kernels::gemm::{matmul, Dst, Mat};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// The final state of a bias-free GRU (torch's gate order r, z, n) that starts at zero and reads
/// every step: from the input projections `gi` `[N, L, 3d]` and the recurrent weights `w_hh`
/// `[3d, d]`, `[N, d]`.
pub fn final_state(gi: &Tensor, w_hh: &Tensor) -> Result<Tensor> {
    gi.contiguous()?.apply_op2(&w_hh.contiguous()?, Recurrence)
}

struct Recurrence;

/// `(N, L, d)` of gi `[N, L, 3d]` and W_hh `[3d, d]`.
fn dims(gi: &Shape, w: &Shape) -> Result<(usize, usize, usize)> {
    let (&[n, l, g], &[wg, d]) = (gi.dims(), w.dims()) else {
        candle_core::bail!("gru: projections {gi:?} must be [N, L, 3d], weights {w:?} [3d, d]");
    };
    if g != 3 * d || wg != 3 * d {
        candle_core::bail!("gru: projections {gi:?} and weights {w:?} do not match");
    }
    Ok((n, l, d))
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Each step's gates, `[L, N, d]` each, step-major; `ghn` is the n gate's recurrent term
/// `h·W_hnᵀ`, which r multiplies.
struct Gates {
    r: Vec<f32>,
    z: Vec<f32>,
    n: Vec<f32>,
    ghn: Vec<f32>,
}

/// What the backward keeps of a run: the state before each step, `[L, N, d]`, and each step's
/// gates.
struct Trace<'a> {
    states: &'a mut [f32],
    gates: &'a mut Gates,
}

/// Runs the recurrence from the zero state and returns the final one, `[N, d]`.
fn run(
    gi: &[f32],
    w: &[f32],
    (bn, l, d): (usize, usize, usize),
    mut trace: Option<Trace>,
    threads: usize,
) -> Vec<f32> {
    let nd = bn * d;
    let mut gh = vec![0f32; bn * 3 * d];
    let (mut h, mut next) = (vec![0f32; nd], vec![0f32; nd]);
    for t in 0..l {
        matmul(
            Dst::new(&mut gh, bn, 3 * d),
            Mat::new(&h, bn, d),
            Mat::new(w, 3 * d, d).t(),
            false,
            threads,
        );
        for i in 0..bn {
            let g = &gi[(i * l + t) * 3 * d..][..3 * d];
            let ghi = &gh[i * 3 * d..][..3 * d];
            for j in 0..d {
                let r = sigmoid(g[j] + ghi[j]);
                let z = sigmoid(g[d + j] + ghi[d + j]);
                let ghn = ghi[2 * d + j];
                let n = (g[2 * d + j] + r * ghn).tanh();
                let k = i * d + j;
                next[k] = n + z * (h[k] - n);
                if let Some(Trace { gates, .. }) = trace.as_mut() {
                    let s = t * nd + k;
                    (gates.r[s], gates.z[s], gates.n[s], gates.ghn[s]) = (r, z, n, ghn);
                }
            }
        }
        if let Some(Trace { states, .. }) = trace.as_mut() {
            states[t * nd..][..nd].copy_from_slice(&h);
        }
        std::mem::swap(&mut h, &mut next);
    }
    h
}

impl CustomOp2 for Recurrence {
    fn name(&self) -> &'static str {
        "gru"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (bn, l, d) = dims(l1.shape(), l2.shape())?;
        let gi = contiguous_f32(s1, l1, "gru: projections")?;
        let w = contiguous_f32(s2, l2, "gru: weights")?;
        let last = run(
            gi,
            w,
            (bn, l, d),
            None,
            candle_core::utils::get_num_threads(),
        );
        Ok((CpuStorage::F32(last), Shape::from((bn, d))))
    }

    fn bwd(
        &self,
        gi_t: &Tensor,
        w_t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (bn, l, d) = dims(gi_t.shape(), w_t.shape())?;
        let grad = grad.contiguous()?;
        if grad.dims() != [bn, d] {
            candle_core::bail!("gru: output gradient {:?}, state [{bn}, {d}]", grad.shape());
        }
        let nd = bn * d;
        let (gs, gl) = gi_t.storage_and_layout();
        let (ws, wl) = w_t.storage_and_layout();
        let (os, ol) = grad.storage_and_layout();
        let gi = storage_f32(&gs, gl, "gru: projections")?;
        let w = storage_f32(&ws, wl, "gru: weights")?;
        let threads = candle_core::utils::get_num_threads();
        let mut states = vec![0f32; l * nd];
        let mut gates = Gates {
            r: vec![0f32; l * nd],
            z: vec![0f32; l * nd],
            n: vec![0f32; l * nd],
            ghn: vec![0f32; l * nd],
        };
        let trace = Trace {
            states: &mut states,
            gates: &mut gates,
        };
        run(gi, w, (bn, l, d), Some(trace), threads);
        // dh: the gradient of the state after step t, carried backwards through the steps.
        let mut dh = storage_f32(&os, ol, "gru: output gradient")?.to_vec();
        let mut dgi = vec![0f32; bn * l * 3 * d];
        // Every step's gradient of the recurrent pre-activations, `[L, N, 3d]`, for one product
        // into dW_hh at the end.
        let mut dgh = vec![0f32; l * bn * 3 * d];
        for t in (0..l).rev() {
            let h = &states[t * nd..][..nd];
            let dgh_t = &mut dgh[t * bn * 3 * d..][..bn * 3 * d];
            for i in 0..bn {
                let dg = &mut dgi[(i * l + t) * 3 * d..][..3 * d];
                let dgh_row = &mut dgh_t[i * 3 * d..][..3 * d];
                for j in 0..d {
                    let k = i * d + j;
                    let s = t * nd + k;
                    let (r, z, n, ghn) = (gates.r[s], gates.z[s], gates.n[s], gates.ghn[s]);
                    let dout = dh[k];
                    let dn = dout * (1.0 - z) * (1.0 - n * n);
                    let dz = dout * (h[k] - n) * z * (1.0 - z);
                    let dr = dn * ghn * r * (1.0 - r);
                    (dg[j], dg[d + j], dg[2 * d + j]) = (dr, dz, dn);
                    (dgh_row[j], dgh_row[d + j], dgh_row[2 * d + j]) = (dr, dz, dn * r);
                    dh[k] = dout * z;
                }
            }
            matmul(
                Dst::new(&mut dh, bn, d),
                Mat::new(dgh_t, bn, 3 * d),
                Mat::new(w, 3 * d, d),
                true,
                threads,
            );
        }
        let mut dw = vec![0f32; 3 * d * d];
        matmul(
            Dst::new(&mut dw, 3 * d, d),
            Mat::new(&dgh, l * bn, 3 * d).t(),
            Mat::new(&states, l * bn, d),
            false,
            threads,
        );
        drop((gs, ws, os));
        let dev = gi_t.device();
        Ok((
            Some(Tensor::from_vec(dgi, gi_t.shape(), dev)?),
            Some(Tensor::from_vec(dw, w_t.shape(), dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::max_diff;
    use candle_core::{DType, Device, Var, D};

    /// The recurrence composed from candle ops, step by step: what the op replaces.
    fn composed(gi: &Tensor, w_hh: &Tensor) -> Tensor {
        let (n, l, g) = gi.dims3().unwrap();
        let d = g / 3;
        let w = w_hh.t().unwrap();
        let mut h = Tensor::zeros((n, d), DType::F32, gi.device()).unwrap();
        for t in 0..l {
            let gi_t = gi.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
            let gh = h.matmul(&w).unwrap();
            let part = |x: &Tensor, k: usize| x.narrow(D::Minus1, k * d, d).unwrap();
            let r = candle_nn::ops::sigmoid(&(part(&gi_t, 0) + part(&gh, 0)).unwrap()).unwrap();
            let z = candle_nn::ops::sigmoid(&(part(&gi_t, 1) + part(&gh, 1)).unwrap()).unwrap();
            let n = (part(&gi_t, 2) + (r * part(&gh, 2)).unwrap())
                .unwrap()
                .tanh()
                .unwrap();
            h = (&n + (z * (h - &n).unwrap()).unwrap()).unwrap();
        }
        h
    }

    #[test]
    fn matches_the_composed_recurrence_values_and_gradients() {
        let dev = Device::Cpu;
        let (n, l, d) = (3, 9, 4);
        let gi = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, l, 3 * d), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.5, (3 * d, d), &dev).unwrap()).unwrap();
        let up = Tensor::randn(0f32, 1.0, (n, d), &dev).unwrap();
        let ours = final_state(gi.as_tensor(), w.as_tensor()).unwrap();
        let theirs = composed(gi.as_tensor(), w.as_tensor());
        assert_eq!(ours.dims(), &[n, d]);
        assert!(max_diff(&ours, &theirs) < 1e-5);
        let ga = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (theirs * &up)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for t in [gi.as_tensor(), w.as_tensor()] {
            let (a, b) = (ga.get(t).unwrap(), gb.get(t).unwrap());
            assert_eq!(a.dims(), t.dims());
            // Gradients reach every step, not only the last.
            assert!(
                a.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.1
            );
            assert!(max_diff(a, b) < 1e-5, "{:?}: {}", t.dims(), max_diff(a, b));
        }
        let first_step = ga.get(gi.as_tensor()).unwrap().narrow(1, 0, 1).unwrap();
        let first_ref = gb.get(gi.as_tensor()).unwrap().narrow(1, 0, 1).unwrap();
        assert!(max_diff(&first_step, &first_ref) < 1e-5);
    }

    #[test]
    fn no_steps_leave_the_zero_state() {
        let dev = Device::Cpu;
        let gi = Tensor::zeros((2, 0, 6), DType::F32, &dev).unwrap();
        let w = Tensor::ones((6, 2), DType::F32, &dev).unwrap();
        let h = final_state(&gi, &w).unwrap();
        assert_eq!(h.dims(), &[2, 2]);
        assert_eq!(
            h.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let dev = Device::Cpu;
        let gi = Tensor::zeros((2, 3, 6), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((9, 3), DType::F32, &dev).unwrap();
        let err = final_state(&gi, &w).unwrap_err().to_string();
        assert!(err.contains("do not match"), "{err}");
    }
}
