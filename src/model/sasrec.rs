//! SASRec (Kang & McAuley, ICDM 2018) as the LLM-ESR reference code runs it
//! (`LLM-ESR/models/SASRec.py`): only the query is layer-normed, K/V read the raw residual stream,
//! kernel-1 convolutions as the feed-forward, LayerNorm eps 1e-8, item embeddings scaled by √d.
//! Scores are dot products with the same item table.

use super::attention::MultiHeadAttention;
use super::batch::SeqBatch;
use super::config::ModelConfig;
use super::dropout::dropout;
use candle_core::{Result, Tensor};
use candle_nn::{
    embedding, layer_norm, linear, Embedding, LayerNorm, LayerNormConfig, Linear, Module,
    VarBuilder,
};
use rand::rngs::SmallRng;

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
        let ln = LayerNormConfig {
            eps: cfg.ln_eps,
            ..LayerNormConfig::default()
        };
        Ok(Block {
            ln_attn: layer_norm(cfg.hidden, ln, vb.pp("ln_attn"))?,
            attn: MultiHeadAttention::new(cfg.hidden, cfg.n_heads, cfg.dropout, vb.pp("attn"))?,
            ln_ffn: layer_norm(cfg.hidden, ln, vb.pp("ln_ffn"))?,
            ff1: linear(cfg.hidden, cfg.hidden, vb.pp("ff1"))?,
            ff2: linear(cfg.hidden, cfg.hidden, vb.pp("ff2"))?,
            dropout: cfg.dropout,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        batch: &SeqBatch,
        mut rng: Option<&mut SmallRng>,
    ) -> Result<Tensor> {
        let q = self.ln_attn.forward(x)?;
        let x = (&q
            + self
                .attn
                .forward(&q, x, batch.attn_bias.as_ref(), rng.as_deref_mut())?)?;
        let x = self.ln_ffn.forward(&x)?;
        let h = dropout(&self.ff1.forward(&x)?, self.dropout, rng.as_deref_mut())?.relu()?;
        let h = dropout(&self.ff2.forward(&h)?, self.dropout, rng)?;
        (x + h)?.broadcast_mul(&batch.keep)
    }
}

/// The SASRec encoder plus its item table.
pub struct SasRec {
    cfg: ModelConfig,
    item_emb: Embedding,
    pos_emb: Embedding,
    blocks: Vec<Block>,
    ln_last: LayerNorm,
}

impl SasRec {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let blocks = (0..cfg.n_layers)
            .map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<_>>()?;
        Ok(SasRec {
            cfg: cfg.clone(),
            item_emb: embedding(cfg.n_items + 1, cfg.hidden, vb.pp("item_emb"))?,
            pos_emb: embedding(cfg.max_len + 1, cfg.hidden, vb.pp("pos_emb"))?,
            blocks,
            ln_last: layer_norm(
                cfg.hidden,
                LayerNormConfig {
                    eps: cfg.ln_eps,
                    ..LayerNormConfig::default()
                },
                vb.pp("ln_last"),
            )?,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Hidden states for every position; dropout is on when `rng` is given.
    ///
    /// # Shapes
    /// `batch` of `[B, L]` → `[B, L, d]`.
    pub fn forward(&self, batch: &SeqBatch, mut rng: Option<&mut SmallRng>) -> Result<Tensor> {
        let scale = (self.cfg.hidden as f64).sqrt();
        let x = ((self.item_emb.forward(&batch.ids)? * scale)?
            + self.pos_emb.forward(&batch.positions)?)?;
        let mut x =
            dropout(&x, self.cfg.dropout, rng.as_deref_mut())?.broadcast_mul(&batch.keep)?;
        for block in &self.blocks {
            x = block.forward(&x, batch, rng.as_deref_mut())?;
        }
        self.ln_last.forward(&x)
    }

    /// The user representation: the hidden state at the last (newest) position, `[B, d]`.
    pub fn user_repr(&self, batch: &SeqBatch, rng: Option<&mut SmallRng>) -> Result<Tensor> {
        let h = self.forward(batch, rng)?;
        h.narrow(1, batch.len - 1, 1)?.squeeze(1)
    }

    /// The item table `[n_items + 1, d]` used for both input and scoring (row 0 is padding).
    pub fn item_table(&self) -> &Tensor {
        self.item_emb.embeddings()
    }

    /// Item embeddings for ids of any shape: `[..]` → `[.., d]`.
    pub fn embed_items(&self, ids: &Tensor) -> Result<Tensor> {
        self.item_emb.forward(ids)
    }

    /// Dot-product scores of users `[B, d]` against every item: `[B, n_items + 1]`.
    pub fn score_all(&self, users: &Tensor) -> Result<Tensor> {
        users.matmul(&self.item_table().t()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::split::pad_left;
    use crate::model::{init::seeded_init, Mode};
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn model(mode: Mode) -> (VarMap, SasRec) {
        let mut cfg = ModelConfig::sasrec(20);
        cfg.max_len = 8;
        cfg.hidden = 16;
        cfg.n_heads = 2;
        cfg.mode = mode;
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let m = SasRec::new(&cfg, vb).unwrap();
        seeded_init(&vars, 7).unwrap();
        (vars, m)
    }

    fn last(m: &SasRec, seq: &[u32], len: usize, mode: Mode) -> Vec<f32> {
        let b = SeqBatch::new(&[pad_left(seq, len)], mode, &Device::Cpu).unwrap();
        m.user_repr(&b, None)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn shapes() {
        let (_, m) = model(Mode::Corrected);
        let b = SeqBatch::new(
            &[pad_left(&[1, 2], 8), pad_left(&[3], 8)],
            Mode::Corrected,
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(m.forward(&b, None).unwrap().dims(), &[2, 8, 16]);
        let u = m.user_repr(&b, None).unwrap();
        assert_eq!(u.dims(), &[2, 16]);
        assert_eq!(m.score_all(&u).unwrap().dims(), &[2, 21]);
    }

    #[test]
    fn corrected_mode_ignores_padding_amount_faithful_does_not() {
        let (_, m) = model(Mode::Corrected);
        let a = last(&m, &[3, 4, 5], 4, Mode::Corrected);
        let b = last(&m, &[3, 4, 5], 8, Mode::Corrected);
        let max = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(max < 1e-5, "{max}");
        let a = last(&m, &[3, 4, 5], 4, Mode::Faithful);
        let b = last(&m, &[3, 4, 5], 8, Mode::Faithful);
        let max = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(max > 1e-4, "faithful mode lets padding keys in: {max}");
    }

    #[test]
    fn corrected_mode_is_causal() {
        // The state at position 2 must not depend on the item at position 3.
        let (_, m) = model(Mode::Corrected);
        let h = |seq: &[u32]| {
            let b = SeqBatch::new(&[seq.to_vec()], Mode::Corrected, &Device::Cpu).unwrap();
            let out: Vec<Vec<f32>> = m
                .forward(&b, None)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec2()
                .unwrap();
            out[2].clone()
        };
        let a = h(&[1, 2, 3, 4]);
        let b = h(&[1, 2, 3, 9]);
        let max = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(max < 1e-6, "{max}");
    }

    #[test]
    fn seeded_init_reproduces() {
        let cfg = ModelConfig::sasrec(20);
        let flat = |seed| {
            crate::model::init::random_weights(&cfg, seed).unwrap()["item_emb.weight"]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(flat(7), flat(7));
        assert_ne!(flat(7), flat(8));
    }
}
