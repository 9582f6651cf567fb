//! Scaled dot-product attention for one session, over plain row-major buffers: the self-attention
//! of the transformer blocks and LLM-ESR's cross-attention between the views.
//!
//! Hidden keys are skipped rather than given a large negative bias: the softmax weights are the same
//! (the training code's −1e9 underflows to an exact zero) and no work is spent on them.

use super::dense::{softmax, Dense, Weights};
use crate::kernels::dot::dot;
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

/// Multi-head attention of `q` (rows of `d`, query row `r` sitting at key row `q_rows[r]`) over
/// `k`/`v` (rows of `d`), written to `ctx` (one row per query). `logits` is scratch.
/// Compiled per instruction set like the row loops of [`crate::kernels::rows`], and as exact.
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
    logits: &mut Vec<f32>,
    ctx: &mut Vec<f32>,
) {
    let n = k.len() / d;
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    ctx.clear();
    ctx.resize(q.len(), 0.0);
    for (r, &row) in q_rows.iter().enumerate() {
        let visible = match reach {
            Reach::All => n,
            Reach::Past => row + 1,
        };
        for h in 0..heads {
            let qh = &q[r * d + h * hd..r * d + (h + 1) * hd];
            logits.clear();
            logits.extend(
                (0..visible).map(|j| dot(qh, &k[j * d + h * hd..j * d + (h + 1) * hd]) * scale),
            );
            let pad_logit = pad
                .filter(|p| p.count > 0)
                .map(|p| dot(qh, &p.k[h * hd..(h + 1) * hd]) * scale + (p.count as f32).ln());
            if let Some(pl) = pad_logit {
                logits.push(pl);
            }
            softmax(logits);
            let out = &mut ctx[r * d + h * hd..r * d + (h + 1) * hd];
            for (j, &w) in logits[..visible].iter().enumerate() {
                let vj = &v[j * d + h * hd..j * d + (h + 1) * hd];
                for (o, x) in out.iter_mut().zip(vj) {
                    *o += w * x;
                }
            }
            if let (Some(p), Some(&w)) = (pad, logits.get(visible)) {
                for (o, x) in out.iter_mut().zip(&p.v[h * hd..(h + 1) * hd]) {
                    *o += w * x;
                }
            }
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
    logits: Vec<f32>,
    ctx: Vec<f32>,
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
        attend(
            &s.q,
            q_rows,
            &s.k,
            &s.v,
            self.d,
            self.heads,
            reach,
            None,
            &mut s.logits,
            &mut s.ctx,
        );
        self.out.forward(&s.ctx, out);
    }
}
