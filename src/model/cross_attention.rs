//! The cross-attention between the two item views (`Multi_CrossAttention` in the reference):
//! bias-free Q/K/V projections, padding keys hidden, a biased output projection. Its output replaces
//! the query view's embeddings; there is no residual and no LayerNorm around it.

use super::fused_attention::attend;
use super::linear::{linear, linear_no_bias, Linear};
use super::masked_softmax::KeyMask;
use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};

pub struct CrossAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    n_heads: usize,
    head_dim: usize,
}

impl CrossAttention {
    pub fn new(hidden: usize, n_heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(CrossAttention {
            q: linear_no_bias(hidden, hidden, vb.pp("q"))?,
            k: linear_no_bias(hidden, hidden, vb.pp("k"))?,
            v: linear_no_bias(hidden, hidden, vb.pp("v"))?,
            out: linear(hidden, hidden, vb.pp("out"))?,
            n_heads,
            head_dim: hidden / n_heads,
        })
    }

    /// # Shapes
    /// `query` `[B, L, d]` (one view), `kv` `[B, L, d]` (the other), `mask` hiding padding keys
    /// (and future ones when causal) → `[B, L, d]`.
    pub fn forward(&self, query: &Tensor, kv: &Tensor, mask: &KeyMask) -> Result<Tensor> {
        let q = self.q.forward(query)?;
        let k = self.k.forward(kv)?;
        let v = self.v.forward(kv)?;
        // The reference fills hidden scores with -1e9 before scaling: the same softmax as leaving
        // them out, which the fused weights do.
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let ctx = attend(&q, &k, &v, self.n_heads, scale, Some(mask), 0.0, None)?;
        self.out.forward(&ctx)
    }
}
