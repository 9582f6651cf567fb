//! Scaled dot-product attention for one session, over plain row-major buffers: the self-attention
//! of the transformer blocks and LLM-ESR's cross-attention between the views.
//!
//! Hidden keys are skipped rather than given a large negative bias: the softmax weights are the same
//! (the training code's −1e9 underflows to an exact zero) and no work is spent on them.

use super::dense::{softmax, Dense, Weights};
use crate::kernels::dot::{dot, weighted_rows, weighted_rows_pair};
use crate::Result;

/// Which keys a query row sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every item key.
    All,
    /// Keys at or before the query's own row.
    Past,
}

/// `count` identical keys standing for the padding that paper-faithful mode lets attention see:
/// their inputs are all zero, so one key whose logit is raised by ln(count) has the same weight.
pub struct PadKey<'a> {
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub count: usize,
}

/// Scratch of [`attend`]: one head's logits, and its keys transposed.
#[derive(Default)]
pub struct AttendScratch {
    /// Logits, then weights, of the one or two query rows in hand.
    logits: [Vec<f32>; 2],
    keys_t: Vec<f32>,
}

/// Below this many query rows the keys are not worth transposing: one dot product per key.
const TRANSPOSE_FROM: usize = 4;

/// Multi-head attention of `q` (rows of `d`, query row `r` sitting at key row `q_rows[r]`) over
/// `k`/`v` (rows of `d`), written to `ctx` (one row per query).
///
/// With many query rows each head's keys are transposed once, so a row's logits are a weighted
/// sum of key columns and its context a weighted sum of value rows — both
/// [`weighted_rows`], the SIMD accumulators never reduced across lanes. Compiled per instruction set
/// like the row loops of [`crate::kernels::rows`], and as exact.
#[allow(clippy::too_many_arguments)]
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
pub fn attend(
    q: &[f32],
    q_rows: &[usize],
    k: &[f32],
    v: &[f32],
    d: usize,
    heads: usize,
    reach: Reach,
    pad: Option<&PadKey>,
    s: &mut AttendScratch,
    ctx: &mut Vec<f32>,
) {
    let n = k.len() / d;
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let transposed = q_rows.len() >= TRANSPOSE_FROM;
    ctx.clear();
    ctx.resize(q.len(), 0.0);
    for h in 0..heads {
        let at = h * hd;
        if transposed {
            s.keys_t.clear();
            s.keys_t.resize(hd * n, 0.0);
            for (j, key) in k.chunks_exact(d).enumerate() {
                for (c, &x) in key[at..at + hd].iter().enumerate() {
                    s.keys_t[c * n + j] = x;
                }
            }
        }
        let visible = |row: usize| match reach {
            Reach::All => n,
            Reach::Past => row + 1,
        };
        let mut r = 0;
        while r < q_rows.len() {
            // Two query rows at a time share every load of the keys and values.
            let pair = transposed && r + 1 < q_rows.len();
            let rows = if pair { 2 } else { 1 };
            let seen: [usize; 2] = [
                visible(q_rows[r]),
                visible(q_rows[(r + 1).min(q_rows.len() - 1)]),
            ];
            let [l0, l1] = &mut s.logits;
            for (i, l) in [&mut *l0, &mut *l1].into_iter().enumerate().take(rows) {
                l.clear();
                l.resize(if pair { seen[0].max(seen[1]) } else { seen[i] }, 0.0);
            }
            let qh = |i: usize| &q[(r + i) * d + at..(r + i) * d + at + hd];
            if pair {
                weighted_rows_pair([qh(0), qh(1)], &s.keys_t, n, 0, [l0, l1]);
            } else if transposed {
                weighted_rows(qh(0), &s.keys_t, n, 0, l0);
            } else {
                for (j, l) in l0.iter_mut().enumerate() {
                    *l = dot(qh(0), &k[j * d + at..j * d + at + hd]);
                }
            }
            for (i, l) in [&mut *l0, &mut *l1].into_iter().enumerate().take(rows) {
                l.truncate(seen[i]);
                for x in l.iter_mut() {
                    *x *= scale;
                }
                if let Some(p) = pad.filter(|p| p.count > 0) {
                    l.push(dot(qh(i), &p.k[at..at + hd]) * scale + (p.count as f32).ln());
                }
                softmax(l);
            }
            let (c0, c1) = ctx[r * d..].split_at_mut(d);
            let out0 = &mut c0[at..at + hd];
            if pair {
                let out1 = &mut c1[at..at + hd];
                let common = seen[0].min(seen[1]);
                weighted_rows_pair(
                    [&l0[..common], &l1[..common]],
                    v,
                    d,
                    at,
                    [&mut *out0, &mut *out1],
                );
                // The row that sees more keys adds the rest in the same order as on its own.
                for (l, out, seen) in [(&*l0, &mut *out0, seen[0]), (&*l1, &mut *out1, seen[1])] {
                    for (j, &w) in l.iter().enumerate().take(seen).skip(common) {
                        for (o, x) in out.iter_mut().zip(&v[j * d + at..j * d + at + hd]) {
                            *o += w * x;
                        }
                    }
                }
            } else {
                weighted_rows(&l0[..seen[0]], v, d, at, out0);
            }
            for (i, l) in [&*l0, &*l1].into_iter().enumerate().take(rows) {
                if let (Some(p), Some(&w)) = (pad, l.get(seen[i])) {
                    let out = &mut ctx[(r + i) * d + at..(r + i) * d + at + hd];
                    for (o, x) in out.iter_mut().zip(&p.v[at..at + hd]) {
                        *o += w * x;
                    }
                }
            }
            r += rows;
        }
    }
}

/// LLM-ESR's cross-attention (`llm2id`, `id2llm`): bias-free Q/K/V, biased output projection.
pub struct CrossAttention {
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    d: usize,
    heads: usize,
}

/// Scratch buffers of one cross-attention pass.
#[derive(Default)]
pub struct CrossScratch {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    pub att: AttendScratch,
    pub ctx: Vec<f32>,
}

impl CrossAttention {
    pub fn load(ws: &Weights, prefix: &str, d: usize, heads: usize) -> Result<Self> {
        Ok(CrossAttention {
            q: Dense::load(ws, &format!("{prefix}.q"), d, d, false)?,
            k: Dense::load(ws, &format!("{prefix}.k"), d, d, false)?,
            v: Dense::load(ws, &format!("{prefix}.v"), d, d, false)?,
            out: Dense::load(ws, &format!("{prefix}.out"), d, d, true)?,
            d,
            heads,
        })
    }

    /// The input projections: `query`'s rows through Q, `kv`'s through K and V.
    pub fn project(&self, query: &[f32], kv: &[f32]) -> [Vec<f32>; 3] {
        let mut out: [Vec<f32>; 3] = Default::default();
        self.q.forward(query, &mut out[0]);
        self.k.forward(kv, &mut out[1]);
        self.v.forward(kv, &mut out[2]);
        out
    }

    /// Rows of `query` (at key rows `q_rows`) attend over every row of `kv`; the result replaces
    /// the query view, so `out` gets one row per query.
    pub fn forward(
        &self,
        query: &[f32],
        q_rows: &[usize],
        kv: &[f32],
        reach: Reach,
        s: &mut CrossScratch,
        out: &mut Vec<f32>,
    ) {
        self.q.forward(query, &mut s.q);
        self.k.forward(kv, &mut s.k);
        self.v.forward(kv, &mut s.v);
        self.forward_projected(&s.q, &s.k, &s.v, q_rows, reach, &mut s.att, &mut s.ctx, out);
    }

    /// [`CrossAttention::forward`] from queries, keys and values already projected.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_projected(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        q_rows: &[usize],
        reach: Reach,
        att: &mut AttendScratch,
        ctx: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) {
        attend(q, q_rows, k, v, self.d, self.heads, reach, None, att, ctx);
        self.out.forward(ctx, out);
    }
}
