//! The model's two attention layers over the fused op: the encoder's multi-head self-attention, as
//! torch's `nn.MultiheadAttention` computes it (biased Q/K/V projections, scale 1/√head_dim,
//! dropout on the attention weights, an output projection), and LLM-ESR's cross-attention between
//! the two item views (`Multi_CrossAttention` in the reference: bias-free Q/K/V projections, padding
//! keys hidden, a biased output projection). The cross-attention's output replaces the query view's
//! embeddings; there is no residual and no LayerNorm around it (unless `cross_residual` adds one).

use super::batch::KeyMask;
use super::ops::fused_attention::attend;
use super::ops::linear::{linear, linear_no_bias, Linear};
use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use rand::rngs::SmallRng;

/// Q, K, V and output projections around the fused attention: what both layers share.
struct Projections {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    n_heads: usize,
    head_dim: usize,
}

impl Projections {
    /// `q`, `k`, `v` (biased or not) and a biased `out` under `vb`.
    fn new(hidden: usize, n_heads: usize, biased_qkv: bool, vb: VarBuilder) -> Result<Self> {
        let qkv = |name: &str| {
            if biased_qkv {
                linear(hidden, hidden, vb.pp(name))
            } else {
                linear_no_bias(hidden, hidden, vb.pp(name))
            }
        };
        Ok(Projections {
            q: qkv("q")?,
            k: qkv("k")?,
            v: qkv("v")?,
            out: linear(hidden, hidden, vb.pp("out"))?,
            n_heads,
            head_dim: hidden / n_heads,
        })
    }

    fn forward(
        &self,
        query: &Tensor,
        kv: &Tensor,
        mask: Option<&KeyMask>,
        dropout: f32,
        rng: Option<&mut SmallRng>,
    ) -> Result<Tensor> {
        let q = self.q.forward(query)?;
        let k = self.k.forward(kv)?;
        let v = self.v.forward(kv)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let ctx = attend(&q, &k, &v, self.n_heads, scale, mask, dropout, rng)?;
        self.out.forward(&ctx)
    }
}

pub struct MultiHeadAttention {
    proj: Projections,
    dropout: f32,
}

impl MultiHeadAttention {
    pub fn new(hidden: usize, n_heads: usize, dropout: f32, vb: VarBuilder) -> Result<Self> {
        Ok(MultiHeadAttention {
            proj: Projections::new(hidden, n_heads, true, vb)?,
            dropout,
        })
    }

    /// # Shapes
    /// `query` `[B, Lq, d]` (the newest `Lq` positions), `kv` `[B, L, d]`, `mask` over the `B` rows
    /// (every key visible without one) → `[B, Lq, d]`.
    pub fn forward(
        &self,
        query: &Tensor,
        kv: &Tensor,
        mask: Option<&KeyMask>,
        rng: Option<&mut SmallRng>,
    ) -> Result<Tensor> {
        self.proj.forward(query, kv, mask, self.dropout, rng)
    }
}

pub struct CrossAttention {
    proj: Projections,
}

impl CrossAttention {
    pub fn new(hidden: usize, n_heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(CrossAttention {
            proj: Projections::new(hidden, n_heads, false, vb)?,
        })
    }

    /// # Shapes
    /// `query` `[B, L, d]` (one view), `kv` `[B, L, d]` (the other), `mask` hiding padding keys
    /// (and future ones when causal) → `[B, L, d]`.
    pub fn forward(&self, query: &Tensor, kv: &Tensor, mask: &KeyMask) -> Result<Tensor> {
        // The reference fills hidden scores with -1e9 before scaling: the same softmax as leaving
        // them out, which the fused weights do.
        self.proj.forward(query, kv, Some(mask), 0.0, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::max_diff;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn masked_keys_do_not_change_the_output() {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let mha = MultiHeadAttention::new(8, 2, 0.0, vb).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, 3, 8), &Device::Cpu).unwrap();
        let mask = KeyMask::new(vec![1], true); // hide key 0
        let q = x.narrow(1, 2, 1).unwrap();
        let a = mha.forward(&q, &x, Some(&mask), None).unwrap();
        // Change the hidden key: the result must not move.
        let changed = Tensor::cat(
            &[
                (x.narrow(1, 0, 1).unwrap() * 5.0).unwrap(),
                x.narrow(1, 1, 2).unwrap(),
            ],
            1,
        )
        .unwrap();
        let b = mha.forward(&q, &changed, Some(&mask), None).unwrap();
        let diff = max_diff(&a, &b);
        assert!(diff < 1e-6, "{diff}");
        assert_eq!(mha.forward(&x, &x, None, None).unwrap().dims(), &[1, 3, 8]);
    }
}
