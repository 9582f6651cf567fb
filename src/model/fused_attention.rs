//! Scaled dot-product attention — scores, hidden keys, softmax, dropout and the weighted sum of
//! values — as one candle op, computed one (sequence, head) block at a time.
//!
//! Why: composed from candle ops, every attention wrote `[N, H, Lq, L]` tensors (the scores, the
//! weights, and in backward their gradients, each first allocated as zeros and then added to by
//! autograd), far larger than the `[N, H, L, d/H]` inputs and output. On MovieLens-1M (L = 200)
//! that traffic, not the arithmetic, dominated a training step. Here a block's `Lq × L` scores
//! live only in a scratch buffer that stays in cache, the backward recomputes them from Q and K,
//! and autograd sees only Q, K, V and the output. The weights, including the dropout mask, are
//! those of [`super::masked_softmax`], element for element.

use super::masked_softmax::{KeyMask, Weights};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rand::rngs::SmallRng;
use rayon::prelude::*;

/// A row-major or transposed view of a matrix inside a slice.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Every element the view reads lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `dst = a · b`, or `dst += a · b` with `accumulate`; `dst` is row-major `a.rows × b.cols`.
fn matmul(dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    assert!(a.cols == b.rows && dst.len() == a.rows * b.cols);
    assert!(a.in_bounds() && b.in_bounds());
    if dst.is_empty() {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    // SAFETY: the asserts above bound every index gemm reads from `a` and `b` and writes in `dst`
    // (row-major, `b.cols` wide), and `dst` is borrowed mutably, so it overlaps neither input.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            dst.as_mut_ptr(),
            1,
            b.cols as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

struct Attend(Weights);

/// `(N, H, Lq, L, head_dim)` of q `[N, H, Lq, dh]`, k and v `[N, H, L, dh]`.
fn dims(
    q: &Shape,
    k: &Shape,
    v: &Shape,
    mask: Option<&KeyMask>,
) -> Result<(usize, usize, usize, usize, usize)> {
    let (&[n, h, lq, dh], &[nk, hk, l, dk]) = (q.dims(), k.dims()) else {
        candle_core::bail!("attention: q {q:?} and k {k:?} must be [N, H, L, d]");
    };
    if (nk, hk, dk) != (n, h, dh) || v != k {
        candle_core::bail!("attention: q {q:?}, k {k:?} and v {v:?} do not match");
    }
    if lq == 0 || lq > l || dh == 0 {
        candle_core::bail!("attention: {lq} queries over {l} keys of width {dh}");
    }
    if let Some(m) = mask {
        if m.pads.len() != n || m.pads.iter().any(|&p| p > l) {
            candle_core::bail!(
                "key mask covers {} rows for a batch of {n} (or pads past {l} keys)",
                m.pads.len()
            );
        }
    }
    Ok((n, h, lq, l, dh))
}

/// The f32 values of a contiguous CPU tensor, or an error naming it.
fn read<'a>(
    guard: &'a (impl std::ops::Deref<Target = Storage> + 'a),
    layout: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    match &**guard {
        Storage::Cpu(s) => super::cpu_storage::contiguous_f32(s, layout, what),
        _ => candle_core::bail!("{what}: attention runs on the CPU"),
    }
}

/// One (sequence, head) block's inputs and sizes.
struct Block<'a> {
    /// Index of the block in storage order (`n · H + h`).
    index: usize,
    /// The batch row `n`.
    row: usize,
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    lq: usize,
    l: usize,
    dh: usize,
}

impl Attend {
    /// The block's weights before dropout into `p` and after it into `pt` (both `Lq × L`); `s` is
    /// scratch for the scores. Returns each query row's visible keys.
    fn weights(
        &self,
        b: &Block,
        s: &mut [f32],
        p: &mut [f32],
        pt: &mut [f32],
    ) -> Vec<Option<(usize, usize)>> {
        let w = &self.0;
        matmul(
            s,
            Mat::new(b.q, b.lq, b.dh),
            Mat::new(b.k, b.l, b.dh).t(),
            false,
        );
        let ranges: Vec<_> = (0..b.lq).map(|qi| w.range(b.row, qi, b.lq, b.l)).collect();
        for (qi, ((srow, prow), ptrow)) in s
            .chunks_exact(b.l)
            .zip(p.chunks_exact_mut(b.l))
            .zip(pt.chunks_exact_mut(b.l))
            .enumerate()
        {
            w.probabilities(srow, ranges[qi], prow);
            // The mask index is the element's place in the `[N, H, Lq, L]` weights tensor.
            let first = (b.index * b.lq + qi) * b.l;
            for (k, (o, &x)) in ptrow.iter_mut().zip(prow.iter()).enumerate() {
                *o = x * w.keep(first + k);
            }
        }
        ranges
    }
}

impl CustomOp3 for Attend {
    fn name(&self) -> &'static str {
        "attention"
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
        let (_, h, lq, l, dh) = dims(l1.shape(), l2.shape(), l3.shape(), self.0.mask.as_ref())?;
        let q = super::cpu_storage::contiguous_f32(s1, l1, "attention: q")?;
        let k = super::cpu_storage::contiguous_f32(s2, l2, "attention: k")?;
        let v = super::cpu_storage::contiguous_f32(s3, l3, "attention: v")?;
        let mut out = vec![0f32; q.len()];
        out.par_chunks_mut(lq * dh)
            .enumerate()
            .for_each(|(index, o)| {
                let b = Block {
                    index,
                    row: index / h,
                    q: &q[index * lq * dh..][..lq * dh],
                    k: &k[index * l * dh..][..l * dh],
                    v: &v[index * l * dh..][..l * dh],
                    lq,
                    l,
                    dh,
                };
                let (mut s, mut p, mut pt) =
                    (vec![0f32; lq * l], vec![0f32; lq * l], vec![0f32; lq * l]);
                self.weights(&b, &mut s, &mut p, &mut pt);
                matmul(o, Mat::new(&pt, lq, l), Mat::new(b.v, l, dh), false);
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, h, lq, l, dh) = dims(q.shape(), k.shape(), v.shape(), self.0.mask.as_ref())?;
        let grad = grad.contiguous()?;
        let (qg, ql) = q.storage_and_layout();
        let (kg, kl) = k.storage_and_layout();
        let (vg, vl) = v.storage_and_layout();
        let (gg, gl) = grad.storage_and_layout();
        let qd = read(&qg, ql, "attention: q")?;
        let kd = read(&kg, kl, "attention: k")?;
        let vd = read(&vg, vl, "attention: v")?;
        let gd = read(&gg, gl, "attention: output gradient")?;
        if gd.len() != qd.len() {
            candle_core::bail!(
                "attention: output gradient {:?} for q {:?}",
                grad.shape(),
                q.shape()
            );
        }
        let scale = self.0.scale;
        let (mut dq, mut dk, mut dv) = (
            vec![0f32; qd.len()],
            vec![0f32; kd.len()],
            vec![0f32; vd.len()],
        );
        dq.par_chunks_mut(lq * dh)
            .zip(dk.par_chunks_mut(l * dh))
            .zip(dv.par_chunks_mut(l * dh))
            .enumerate()
            .for_each(|(index, ((dq, dk), dv))| {
                let b = Block {
                    index,
                    row: index / h,
                    q: &qd[index * lq * dh..][..lq * dh],
                    k: &kd[index * l * dh..][..l * dh],
                    v: &vd[index * l * dh..][..l * dh],
                    lq,
                    l,
                    dh,
                };
                let g = &gd[index * lq * dh..][..lq * dh];
                let (mut s, mut p, mut pt) =
                    (vec![0f32; lq * l], vec![0f32; lq * l], vec![0f32; lq * l]);
                let ranges = self.weights(&b, &mut s, &mut p, &mut pt);
                // dV = p̃ᵀ · dO; dp̃ = dO · Vᵀ (into `s`, the scores being no longer needed).
                matmul(dv, Mat::new(&pt, lq, l).t(), Mat::new(g, lq, dh), false);
                matmul(&mut s, Mat::new(g, lq, dh), Mat::new(b.v, l, dh).t(), false);
                // The softmax backward, as `masked_softmax` computes it: into `pt`, the gradient
                // of the raw scores (zero for hidden keys).
                for (qi, ((ds, dpt), prow)) in pt
                    .chunks_exact_mut(l)
                    .zip(s.chunks_exact(l))
                    .zip(p.chunks_exact(l))
                    .enumerate()
                {
                    let (lo, hi) = ranges[qi].unwrap_or((0, l - 1));
                    let first = (index * lq + qi) * l;
                    ds.fill(0.0);
                    let mut dot = 0f32;
                    for key in lo..=hi {
                        ds[key] = dpt[key] * self.0.keep(first + key);
                        dot += prow[key] * ds[key];
                    }
                    for key in lo..=hi {
                        ds[key] = scale * prow[key] * (ds[key] - dot);
                    }
                }
                // dQ = dS · K; dK = dSᵀ · Q.
                matmul(dq, Mat::new(&pt, lq, l), Mat::new(b.k, l, dh), false);
                matmul(dk, Mat::new(&pt, lq, l).t(), Mat::new(b.q, lq, dh), false);
            });
        drop((qg, kg, vg, gg));
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), dev)?),
            Some(Tensor::from_vec(dk, k.shape(), dev)?),
            Some(Tensor::from_vec(dv, v.shape(), dev)?),
        ))
    }
}

/// `dropout(softmax(scale · q·kᵀ over the keys `mask` leaves visible)) · v` for q `[N, H, Lq, dh]`
/// and k, v `[N, H, L, dh]` → `[N, H, Lq, dh]`. Dropout `p` applies when `rng` is given
/// (training); the weights and masks are exactly those of
/// [`super::masked_softmax::attention_weights`] with the same generator.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    mask: Option<&KeyMask>,
    p: f32,
    rng: Option<&mut SmallRng>,
) -> Result<Tensor> {
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        Attend(Weights::new(scale, mask, p, rng)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::masked_softmax::attention_weights;
    use candle_core::{Device, Var};
    use rand::SeedableRng;
    use std::sync::Arc;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Values and the gradients of q, k and v equal the unfused weights times v, with every mask
    /// kind (rows 1 and 2 also hold queries that see no key), a block of only the newest query,
    /// and dropout drawn from identically seeded generators.
    #[test]
    fn matches_the_unfused_attention_and_its_gradients() {
        let dev = Device::Cpu;
        let (n, h, l, dh) = (3, 2, 6, 4);
        let pads = Arc::new(vec![0, 2, 5]);
        let masks = [
            None,
            Some(KeyMask {
                pads: pads.clone(),
                causal: false,
            }),
            Some(KeyMask { pads, causal: true }),
        ];
        for lq in [l, 1] {
            for mask in &masks {
                for p in [0.0, 0.4] {
                    let var = |rows| {
                        Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, h, rows, dh), &dev).unwrap())
                            .unwrap()
                    };
                    let (q, k, v) = (var(lq), var(l), var(l));
                    let up = Tensor::randn(0f32, 1.0, (n, h, lq, dh), &dev).unwrap();
                    let (mut r1, mut r2) = (SmallRng::seed_from_u64(5), SmallRng::seed_from_u64(5));
                    let fused = attend(&q, &k, &v, 0.5, mask.as_ref(), p, Some(&mut r1)).unwrap();
                    let scores = q.matmul(&k.t().unwrap()).unwrap();
                    let w = attention_weights(&scores, 0.5, mask.as_ref(), p, Some(&mut r2));
                    let unfused = w.unwrap().matmul(v.as_tensor()).unwrap();
                    let case = format!("lq {lq} mask {mask:?} p {p}");
                    assert_eq!(fused.dims(), &[n, h, lq, dh]);
                    assert!(max_diff(&fused, &unfused) < 1e-5, "{case}");
                    let g1 = (fused * &up)
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .backward()
                        .unwrap();
                    let g2 = (unfused * &up)
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .backward()
                        .unwrap();
                    for (name, t) in [("q", &q), ("k", &k), ("v", &v)] {
                        let (a, b) = (g1.get(t).unwrap(), g2.get(t).unwrap());
                        assert!(max_diff(a, b) < 1e-5, "{case}: d{name}");
                    }
                }
            }
        }
    }

    #[test]
    fn mismatched_shapes_and_masks_are_errors() {
        let dev = Device::Cpu;
        let t = |dims: &[usize]| Tensor::zeros(dims, candle_core::DType::F32, &dev).unwrap();
        let (q, k) = (t(&[2, 1, 3, 4]), t(&[2, 1, 3, 4]));
        assert!(attend(&q, &k, &t(&[2, 1, 3, 5]), 1.0, None, 0.0, None).is_err());
        assert!(attend(&t(&[2, 1, 4, 4]), &k, &k, 1.0, None, 0.0, None).is_err());
        let mask = KeyMask {
            pads: Arc::new(vec![0]),
            causal: true,
        };
        let err = attend(&q, &k, &k, 1.0, Some(&mask), 0.0, None).unwrap_err();
        assert!(err.to_string().contains("key mask"), "{err}");
        assert!(attend(&q, &k, &k, 1.0, None, 0.0, None).is_ok());
    }
}
