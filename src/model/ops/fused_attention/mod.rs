//! Multi-head scaled dot-product attention — scores, hidden keys, softmax, dropout and the weighted
//! sum of values — as one candle op, computed one (sequence, head) block at a time.
//!
//! Why: composed from candle ops, every attention wrote `[N, H, Lq, L]` tensors (the scores, the
//! weights, and in backward their gradients, each first allocated as zeros and then added to by
//! autograd), far larger than the `[N, L, d]` inputs and output; splitting and merging the heads
//! added copies and more autograd nodes. On MovieLens-1M (L = 200) that traffic, not the
//! arithmetic, dominated a training step. Here a block's `Lq × L` scores live only in a scratch
//! buffer that stays in cache, the heads are column blocks of the `[N, L, d]` rows (strided
//! products, no copies), the backward recomputes the scores from Q and K, and autograd sees only
//! Q, K, V and the output. The weights, including the dropout mask, are those of the composed
//! op in [`reference`] (compiled for the tests), element for element.

#[cfg(test)]
pub(crate) mod reference;

use super::cpu_storage::{contiguous_f32, storage_f32};
use crate::kernels::gemm::{matmul, Dst, Mat};
use crate::model::batch::KeyMask;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rand::rngs::SmallRng;
use rand::Rng;
use rayon::prelude::*;
use std::ops::Range;

/// How raw scores become attention weights: the softmax over a row's visible keys and its dropout
/// mask, shared with the composed reference op of the tests ([`reference`]).
#[derive(Clone)]
pub(super) struct Weights {
    pub(super) scale: f32,
    pub(super) mask: Option<KeyMask>,
    /// Dropout probability and seed; `None` in evaluation.
    pub(super) dropout: Option<(f32, u64)>,
}

impl Weights {
    /// Draws the dropout seed from `rng` when training with `p > 0`.
    pub(super) fn new(
        scale: f64,
        mask: Option<&KeyMask>,
        p: f32,
        rng: Option<&mut SmallRng>,
    ) -> Self {
        let dropout = match rng {
            Some(r) if p > 0.0 => Some((p, r.random::<u64>())),
            _ => None,
        };
        Weights {
            scale: scale as f32,
            mask: mask.cloned(),
            dropout,
        }
    }

    /// The visible keys of query `qi` of batch row `n`.
    pub(super) fn range(&self, n: usize, qi: usize, lq: usize, l: usize) -> Option<(usize, usize)> {
        match &self.mask {
            Some(m) => m.range(n, qi, lq, l),
            None => Some((0, l - 1)),
        }
    }

    /// How many identical keys key 0 stands for.
    pub(super) fn lead(&self) -> usize {
        self.mask.as_ref().map_or(1, |m| m.lead)
    }

    /// Softmax of the visible keys of one row into `p` (zero elsewhere), key 0 counted
    /// [`Self::lead`] times; a row that sees no key is uniform over all keys, as adding a -1e9
    /// bias to every score makes it.
    pub(super) fn probabilities(&self, s: &[f32], range: Option<(usize, usize)>, p: &mut [f32]) {
        let Some((lo, hi)) = range else {
            p.fill(1.0 / p.len() as f32);
            return;
        };
        p[..lo].fill(0.0);
        p[hi + 1..].fill(0.0);
        let max = s[lo..=hi]
            .iter()
            .fold(f32::NEG_INFINITY, |m, &x| m.max(x * self.scale));
        let mut sum = crate::kernels::exp::exp_sum(&s[lo..=hi], self.scale, max, &mut p[lo..=hi]);
        let lead = self.lead();
        if lead > 1 && lo == 0 {
            sum += p[0] * (lead - 1) as f32;
            p[0] *= lead as f32;
        }
        let inv = 1.0 / sum;
        p[lo..=hi].iter_mut().for_each(|o| *o *= inv);
    }

    /// The dropout multiplier of element `index`, a weight on `key`: 0 or 1/(1-p), the mean of
    /// [`Self::lead`] such draws on key 0, and 1 without dropout.
    pub(super) fn keep(&self, index: usize, key: usize) -> f32 {
        match self.dropout {
            Some((p, seed)) if key == 0 => {
                super::dropout::keep_of_many(p, seed, index, self.lead())
            }
            Some((p, seed)) => super::dropout::keep(p, seed, index),
            None => 1.0,
        }
    }
}

struct Attend {
    weights: Weights,
    heads: usize,
}

/// `(N, Lq, L, d)` of q `[N, Lq, d]`, k and v `[N, L, d]`, with `d` divisible by the heads.
fn dims(
    q: &Shape,
    k: &Shape,
    v: &Shape,
    heads: usize,
    mask: Option<&KeyMask>,
) -> Result<(usize, usize, usize, usize)> {
    let (&[n, lq, d], &[nk, l, dk]) = (q.dims(), k.dims()) else {
        candle_core::bail!("attention: q {q:?} and k {k:?} must be [N, L, d]");
    };
    if (nk, dk) != (n, d) || v != k {
        candle_core::bail!("attention: q {q:?}, k {k:?} and v {v:?} do not match");
    }
    if lq == 0 || lq > l || heads == 0 || d == 0 || d % heads != 0 {
        candle_core::bail!("attention: {lq} queries over {l} keys of width {d} in {heads} heads");
    }
    if let Some(m) = mask {
        m.check(n, l)?;
    }
    Ok((n, lq, l, d))
}

/// One (sequence, head) block: the head's columns of the sequence's q, k and v.
struct Block<'a> {
    /// Index of the block in the order of the `[N, H, Lq, L]` weights (`n · H + h`).
    index: usize,
    /// The batch row `n`.
    row: usize,
    q: Mat<'a>,
    k: Mat<'a>,
    v: Mat<'a>,
}

impl<'a> Block<'a> {
    /// Head `h` of sequence `n` of the whole `[N, Lq, d]` q and `[N, L, d]` k and v.
    fn new(
        n: usize,
        h: usize,
        heads: usize,
        (q, k, v): (&'a [f32], &'a [f32], &'a [f32]),
        (lq, l, d): (usize, usize, usize),
    ) -> Self {
        let dh = d / heads;
        let (q, k, v) = (
            &q[n * lq * d..][..lq * d],
            &k[n * l * d..][..l * d],
            &v[n * l * d..][..l * d],
        );
        Block {
            index: n * heads + h,
            row: n,
            q: Mat::strided(&q[h * dh..], lq, dh, d),
            k: Mat::strided(&k[h * dh..], l, dh, d),
            v: Mat::strided(&v[h * dh..], l, dh, d),
        }
    }
}

/// Query rows per tile, and keys per tile in the backward's sums over queries. A tile's products
/// cover only the keys its rows can see, so causal attention skips most of the hidden upper
/// triangle; what is skipped is exact zeros, so the sums over the rest are the full products' sums.
const TILE: usize = 32;

/// `0..n` in tiles of [`TILE`].
fn tiles(n: usize) -> impl Iterator<Item = Range<usize>> {
    (0..n).step_by(TILE).map(move |a| a..(a + TILE).min(n))
}

/// The keys rows `rows` need: the union of their visible keys, and with `blind` every key for a
/// row that sees none (its weights are uniform over all keys). Empty when no row needs any.
fn span(
    ranges: &[Option<(usize, usize)>],
    rows: Range<usize>,
    l: usize,
    blind: bool,
) -> Range<usize> {
    let (mut lo, mut hi) = (usize::MAX, 0);
    for r in &ranges[rows] {
        match *r {
            Some((a, b)) => (lo, hi) = (lo.min(a), hi.max(b + 1)),
            None if blind => return 0..l,
            None => {}
        }
    }
    lo.min(hi)..hi
}

/// The first query row whose weights on keys from `key` on can be non-zero, counting rows that see
/// no key only when `blind`.
fn first_row(ranges: &[Option<(usize, usize)>], key: usize, blind: bool) -> usize {
    ranges
        .iter()
        .position(|r| match *r {
            Some((_, hi)) => hi >= key,
            None => blind,
        })
        .unwrap_or(ranges.len())
}

/// Head `h`'s columns of one sequence's `[Lq, d]` rows in `dst` = `w · x`, for `Lq × L` weights
/// `w` (zero on the keys `ranges` hides) and `x` the head's `L × dh` block: a tile of query rows at
/// a time, over the keys the tile needs (`blind` as in [`span`]).
fn weights_times(
    dst: &mut [f32],
    h: usize,
    w: &[f32],
    x: Mat,
    ranges: &[Option<(usize, usize)>],
    blind: bool,
) {
    let (lq, l, dh) = (ranges.len(), x.rows, x.cols);
    let d = dst.len() / lq;
    for rows in tiles(lq) {
        let keys = span(ranges, rows.clone(), l, blind);
        let wt = Mat::new(w, lq, l).rows(rows.clone()).cols(keys.clone());
        let out = Dst::block(dst, d, rows, h * dh..(h + 1) * dh);
        matmul(out, wt, x.rows(keys), false, 1);
    }
}

/// Head `h`'s columns of one sequence's `[L, d]` rows in `dst` = `wᵀ · x`, for `Lq × L` weights
/// `w` and `x` the head's `Lq × dh` block: a tile of keys at a time, summing over the query rows
/// from the first that can weight them (`blind` as in [`first_row`]).
fn weights_t_times(
    dst: &mut [f32],
    h: usize,
    w: &[f32],
    x: Mat,
    ranges: &[Option<(usize, usize)>],
    blind: bool,
) {
    let (lq, dh) = (ranges.len(), x.cols);
    let l = w.len() / lq;
    let d = dst.len() / l;
    for keys in tiles(l) {
        let rows = first_row(ranges, keys.start, blind)..lq;
        let wt = Mat::new(w, lq, l).rows(rows.clone()).cols(keys.clone());
        let out = Dst::block(dst, d, keys, h * dh..(h + 1) * dh);
        matmul(out, wt.t(), x.rows(rows), false, 1);
    }
}

impl Attend {
    fn dims(&self, q: &Shape, k: &Shape, v: &Shape) -> Result<(usize, usize, usize, usize)> {
        dims(q, k, v, self.heads, self.weights.mask.as_ref())
    }

    /// The block's weights before dropout into `p` and after it into `pt` (both `Lq × L`, zero
    /// on hidden keys); `s` receives the raw scores of the visible keys. Returns each query row's
    /// visible keys.
    fn weights(
        &self,
        b: &Block,
        s: &mut [f32],
        p: &mut [f32],
        pt: &mut [f32],
    ) -> Vec<Option<(usize, usize)>> {
        let w = &self.weights;
        let (lq, l) = (b.q.rows, b.k.rows);
        let ranges: Vec<_> = (0..lq).map(|qi| w.range(b.row, qi, lq, l)).collect();
        for rows in tiles(lq) {
            let keys = span(&ranges, rows.clone(), l, false);
            let (q, k) = (b.q.rows(rows.clone()), b.k.rows(keys.clone()).t());
            matmul(Dst::block(s, l, rows, keys), q, k, false, 1);
        }
        for (qi, ((srow, prow), ptrow)) in s
            .chunks_exact(l)
            .zip(p.chunks_exact_mut(l))
            .zip(pt.chunks_exact_mut(l))
            .enumerate()
        {
            w.probabilities(srow, ranges[qi], prow);
            let (lo, hi) = ranges[qi].unwrap_or((0, l - 1));
            ptrow[..lo].fill(0.0);
            ptrow[hi + 1..].fill(0.0);
            // The mask index is the element's place in the `[N, H, Lq, L]` weights tensor.
            let first = (b.index * lq + qi) * l;
            for key in lo..=hi {
                ptrow[key] = prow[key] * w.keep(first + key, key);
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
        let heads = self.heads;
        let (_, lq, l, d) = self.dims(l1.shape(), l2.shape(), l3.shape())?;
        let q = contiguous_f32(s1, l1, "attention: q")?;
        let k = contiguous_f32(s2, l2, "attention: k")?;
        let v = contiguous_f32(s3, l3, "attention: v")?;
        let mut out = vec![0f32; q.len()];
        out.par_chunks_mut(lq * d).enumerate().for_each(|(n, o)| {
            let (mut s, mut p, mut pt) =
                (vec![0f32; lq * l], vec![0f32; lq * l], vec![0f32; lq * l]);
            for h in 0..heads {
                let b = Block::new(n, h, heads, (q, k, v), (lq, l, d));
                let ranges = self.weights(&b, &mut s, &mut p, &mut pt);
                weights_times(o, h, &pt, b.v, &ranges, true);
            }
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
        let heads = self.heads;
        let (_, lq, l, d) = self.dims(q.shape(), k.shape(), v.shape())?;
        let grad = grad.contiguous()?;
        if grad.shape() != q.shape() {
            candle_core::bail!(
                "attention: output gradient {:?} for q {:?}",
                grad.shape(),
                q.shape()
            );
        }
        let (qg, ql) = q.storage_and_layout();
        let (kg, kl) = k.storage_and_layout();
        let (vg, vl) = v.storage_and_layout();
        let (gg, gl) = grad.storage_and_layout();
        let qd = storage_f32(&qg, ql, "attention: q")?;
        let kd = storage_f32(&kg, kl, "attention: k")?;
        let vd = storage_f32(&vg, vl, "attention: v")?;
        let gd = storage_f32(&gg, gl, "attention: output gradient")?;
        let scale = self.weights.scale;
        // Dropout keeps an element as `1/(1-p)` times its weight, so the backward reads the mask
        // off the kept weights instead of hashing again: a zero kept weight is a dropped element or
        // a zero weight, whose gradient is zero either way.
        let kept = self.weights.dropout.map(|(p, _)| 1.0 / (1.0 - p));
        // Key 0's multiplier, where it stands for several keys, is a count of kept copies: drawn
        // again, as the forward drew it.
        let lead = self.weights.lead() > 1 && kept.is_some();
        let dh = d / heads;
        let (mut dq, mut dk, mut dv) = (
            vec![0f32; qd.len()],
            vec![0f32; kd.len()],
            vec![0f32; vd.len()],
        );
        dq.par_chunks_mut(lq * d)
            .zip(dk.par_chunks_mut(l * d))
            .zip(dv.par_chunks_mut(l * d))
            .enumerate()
            .for_each(|(n, ((dq, dk), dv))| {
                let g = &gd[n * lq * d..][..lq * d];
                let (mut s, mut p, mut pt) =
                    (vec![0f32; lq * l], vec![0f32; lq * l], vec![0f32; lq * l]);
                for h in 0..heads {
                    let b = Block::new(n, h, heads, (qd, kd, vd), (lq, l, d));
                    let ranges = self.weights(&b, &mut s, &mut p, &mut pt);
                    let g = Mat::strided(&g[h * dh..], lq, dh, d);
                    // A row that sees no key weights every key; when its output gradient is zero
                    // (padding, which nothing downstream reads) it adds only zeros to dQ, dK and
                    // dV, and is skipped.
                    let blind = ranges.iter().enumerate().any(|(qi, r)| {
                        r.is_none() && g.data[qi * d..][..dh].iter().any(|&x| x != 0.0)
                    });
                    // dV = p̃ᵀ · dO.
                    weights_t_times(dv, h, &pt, g, &ranges, blind);
                    // dp̃ = dO · Vᵀ (into `s`, the scores being no longer needed), then the softmax
                    // backward as `masked_softmax` computes it, into `pt`: the gradient of the raw
                    // scores, zero on hidden keys.
                    for rows in tiles(lq) {
                        let keys = span(&ranges, rows.clone(), l, blind);
                        let vt = b.v.rows(keys.clone()).t();
                        matmul(
                            Dst::block(&mut s, l, rows.clone(), keys),
                            g.rows(rows),
                            vt,
                            false,
                            1,
                        );
                    }
                    for (qi, ((ds, dpt), prow)) in pt
                        .chunks_exact_mut(l)
                        .zip(s.chunks_exact(l))
                        .zip(p.chunks_exact(l))
                        .enumerate()
                    {
                        let (lo, hi) = match ranges[qi] {
                            Some(r) => r,
                            None if blind => (0, l - 1),
                            None => {
                                ds.fill(0.0);
                                continue;
                            }
                        };
                        let mut dot = 0f32;
                        let first = (b.index * lq + qi) * l;
                        for key in lo..=hi {
                            let keep = match kept {
                                Some(_) if lead && key == 0 => self.weights.keep(first, 0),
                                Some(k) if ds[key] != 0.0 => k,
                                Some(_) => 0.0,
                                None => 1.0,
                            };
                            ds[key] = dpt[key] * keep;
                            dot += prow[key] * ds[key];
                        }
                        for key in lo..=hi {
                            ds[key] = scale * prow[key] * (ds[key] - dot);
                        }
                    }
                    // dQ = dS · K; dK = dSᵀ · Q.
                    weights_times(dq, h, &pt, b.k, &ranges, blind);
                    weights_t_times(dk, h, &pt, b.q, &ranges, blind);
                }
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

/// Multi-head `dropout(softmax(scale · q·kᵀ over the keys `mask` leaves visible)) · v` for q
/// `[N, Lq, d]` and k, v `[N, L, d]`, whose last dimension holds `heads` heads side by side (as
/// torch's `nn.MultiheadAttention` splits it) → `[N, Lq, d]`, the heads side by side again. Dropout
/// `p` applies when `rng` is given (training); the weights and masks are exactly those of
/// [`reference::attention_weights`] with the same generator, over `[N, H, Lq, L]`.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    scale: f64,
    mask: Option<&KeyMask>,
    p: f32,
    rng: Option<&mut SmallRng>,
) -> Result<Tensor> {
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        Attend {
            weights: Weights::new(scale, mask, p, rng),
            heads,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::max_diff;
    use candle_core::{Device, Var};
    use rand::SeedableRng;
    use reference::attention_weights;

    /// Values and the gradients of q, k and v equal the unfused weights times v, with every mask
    /// kind (rows 1 and 2 also hold queries that see no key), a block of only the newest query,
    /// and dropout drawn from identically seeded generators. `silent` zeroes the output gradient of
    /// the queries that see no key (as padding gets in training), which the backward skips.
    fn check_against_unfused(l: usize, pads: Vec<usize>, silent: bool) {
        let dev = Device::Cpu;
        let (n, h, dh) = (pads.len(), 2, 4);
        let d = h * dh;
        let masks = [
            None,
            Some(KeyMask::new(pads.clone(), false)),
            Some(KeyMask::new(pads.clone(), true)),
            Some(KeyMask::lead(n, 3)),
        ];
        // [N, L, d] → [N, H, L, dh], as the models split heads before this op existed.
        let split = |x: &Tensor| {
            let (n, l, _) = x.dims3().unwrap();
            x.reshape((n, l, h, dh))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        for lq in [l, 1] {
            for mask in &masks {
                for p in [0.0, 0.4] {
                    let var = |rows| {
                        Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, rows, d), &dev).unwrap())
                            .unwrap()
                    };
                    let (q, k, v) = (var(lq), var(l), var(l));
                    let mut up: Vec<f32> = Tensor::randn(0f32, 1.0, (n, lq, d), &dev)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap();
                    if let (true, Some(m)) = (silent, mask) {
                        for (b, row) in (0..n).flat_map(|b| (0..lq).map(move |r| (b, r))) {
                            if m.range(b, row, lq, l).is_none() {
                                up[(b * lq + row) * d..][..d].fill(0.0);
                            }
                        }
                    }
                    let up = Tensor::from_vec(up, (n, lq, d), &dev).unwrap();
                    let (mut r1, mut r2) = (SmallRng::seed_from_u64(5), SmallRng::seed_from_u64(5));
                    let fused =
                        attend(&q, &k, &v, h, 0.5, mask.as_ref(), p, Some(&mut r1)).unwrap();
                    let scores = split(&q).matmul(&split(&k).t().unwrap()).unwrap();
                    let w = attention_weights(&scores, 0.5, mask.as_ref(), p, Some(&mut r2));
                    let unfused = w
                        .unwrap()
                        .matmul(&split(&v))
                        .unwrap()
                        .transpose(1, 2)
                        .unwrap()
                        .reshape((n, lq, d))
                        .unwrap();
                    let case = format!("l {l} lq {lq} mask {mask:?} p {p} silent {silent}");
                    assert_eq!(fused.dims(), &[n, lq, d]);
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
    fn matches_the_unfused_attention_and_its_gradients() {
        check_against_unfused(6, vec![0, 2, 5], false);
    }

    /// Longer than a tile, so the products run tile by tile: a sequence without padding, one
    /// whose padding ends inside the second tile, one that is all padding.
    #[test]
    fn matches_the_unfused_attention_over_several_tiles() {
        let l = 2 * TILE + 11;
        for silent in [false, true] {
            check_against_unfused(l, vec![0, TILE + 7, l], silent);
        }
    }

    #[test]
    fn mismatched_shapes_and_masks_are_errors() {
        let dev = Device::Cpu;
        let t = |dims: &[usize]| Tensor::zeros(dims, candle_core::DType::F32, &dev).unwrap();
        let (q, k) = (t(&[2, 3, 4]), t(&[2, 3, 4]));
        assert!(attend(&q, &k, &t(&[2, 3, 5]), 1, 1.0, None, 0.0, None).is_err());
        assert!(attend(&t(&[2, 4, 4]), &k, &k, 1, 1.0, None, 0.0, None).is_err());
        assert!(attend(&q, &k, &k, 3, 1.0, None, 0.0, None).is_err());
        let mask = KeyMask::new(vec![0], true);
        let err = attend(&q, &k, &k, 2, 1.0, Some(&mask), 0.0, None).unwrap_err();
        assert!(err.to_string().contains("key mask"), "{err}");
        assert!(attend(&q, &k, &k, 2, 1.0, None, 0.0, None).is_ok());
    }
}
