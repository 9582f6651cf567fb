//! Multi-head attention as torch's `nn.MultiheadAttention` computes it (biased Q/K/V projections,
//! scale 1/√head_dim, dropout on the attention weights, an output projection).

use super::fused_attention::attend;
use super::linear::{linear, Linear};
use super::masked_softmax::KeyMask;
use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use rand::rngs::SmallRng;

pub struct MultiHeadAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    n_heads: usize,
    head_dim: usize,
    dropout: f32,
}

impl MultiHeadAttention {
    pub fn new(hidden: usize, n_heads: usize, dropout: f32, vb: VarBuilder) -> Result<Self> {
        Ok(MultiHeadAttention {
            q: linear(hidden, hidden, vb.pp("q"))?,
            k: linear(hidden, hidden, vb.pp("k"))?,
            v: linear(hidden, hidden, vb.pp("v"))?,
            out: linear(hidden, hidden, vb.pp("out"))?,
            n_heads,
            head_dim: hidden / n_heads,
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
        let q = self.q.forward(query)?;
        let k = self.k.forward(kv)?;
        let v = self.v.forward(kv)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let ctx = attend(&q, &k, &v, self.n_heads, scale, mask, self.dropout, rng)?;
        self.out.forward(&ctx)
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
