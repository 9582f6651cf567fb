//! The SASRec encoder stack as the LLM-ESR reference runs it (`LLM-ESR/models/SASRec.py`): only
//! the query is layer-normed, K/V read the raw residual stream, kernel-1 convolutions as the
//! feed-forward, the timeline mask after every block, a final LayerNorm. BERT4Rec uses the same
//! stack with bidirectional attention.

use super::attention::MultiHeadAttention;
use super::batch::KeyMask;
use super::config::ModelConfig;
use super::ops::dropout::dropout;
use super::ops::layer_norm::LayerNorm;
use super::ops::linear::{linear, Linear};
use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use rand::rngs::SmallRng;

fn layer_norm(cfg: &ModelConfig, vb: VarBuilder) -> Result<LayerNorm> {
    LayerNorm::new(cfg.hidden, cfg.ln_eps, vb)
}

struct Block {
    ln_attn: LayerNorm,
    attn: MultiHeadAttention,
    ln_ffn: LayerNorm,
    ff1: Linear,
    ff2: Linear,
    dropout: f32,
}

impl Block {
    fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Block {
            ln_attn: layer_norm(cfg, vb.pp("ln_attn"))?,
            attn: MultiHeadAttention::new(cfg.hidden, cfg.n_heads, cfg.dropout, vb.pp("attn"))?,
            ln_ffn: layer_norm(cfg, vb.pp("ln_ffn"))?,
            ff1: linear(cfg.hidden, cfg.hidden, vb.pp("ff1"))?,
            ff2: linear(cfg.hidden, cfg.hidden, vb.pp("ff2"))?,
            dropout: cfg.dropout,
        })
    }

    /// `x` `[N, L, d]` is the residual stream (keys and values); `query` selects the positions
    /// computed: all of them, or only the newest (`keep` and `bias` then cover those rows only).
    fn forward(
        &self,
        x: &Tensor,
        query: &Tensor,
        keep: &Tensor,
        mask: Option<&KeyMask>,
        mut rng: Option<&mut SmallRng>,
    ) -> Result<Tensor> {
        let q = self.ln_attn.forward(query)?;
        let x = (&q + self.attn.forward(&q, x, mask, rng.as_deref_mut())?)?;
        let x = self.ln_ffn.forward(&x)?;
        let h = dropout(&self.ff1.forward(&x)?, self.dropout, rng.as_deref_mut())?.relu()?;
        let h = dropout(&self.ff2.forward(&h)?, self.dropout, rng)?;
        (x + h)?.broadcast_mul(keep)
    }
}

/// Stacked blocks and the final LayerNorm.
pub struct TransformerStack {
    blocks: Vec<Block>,
    ln_last: LayerNorm,
}

impl TransformerStack {
    /// Variables live at `blocks.{i}.*` and `ln_last.*` under `vb`.
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let blocks = (0..cfg.n_layers)
            .map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<_>>()?;
        Ok(TransformerStack {
            blocks,
            ln_last: layer_norm(cfg, vb.pp("ln_last"))?,
        })
    }

    /// # Shapes
    /// `x` `[N, L, d]`, `keep` `[N, L, 1]`, `bias` `[N, 1, L, L]` → `[N, L, d]`.
    ///
    /// With `last_only` the result is `[N, 1, d]`, the newest position: the last block then
    /// computes only that query row (earlier blocks still need every row as keys and values).
    pub fn forward(
        &self,
        x: &Tensor,
        keep: &Tensor,
        mask: Option<&KeyMask>,
        last_only: bool,
        mut rng: Option<&mut SmallRng>,
    ) -> Result<Tensor> {
        let mut x = x.broadcast_mul(keep)?;
        let l = x.dim(1)?;
        let n_blocks = self.blocks.len();
        for (i, block) in self.blocks.iter().enumerate() {
            if last_only && i + 1 == n_blocks {
                let query = x.narrow(1, l - 1, 1)?;
                let keep_last = keep.narrow(1, l - 1, 1)?;
                x = block.forward(&x, &query, &keep_last, mask, rng.as_deref_mut())?;
            } else {
                x = block.forward(&x, &x, keep, mask, rng.as_deref_mut())?;
            }
        }
        self.ln_last.forward(&x)
    }
}
