//! The sequential recommender: item views in, a shared sequence encoder, concatenation fusion out.
//!
//! `base` models have one view, the trainable ID table. LLM-ESR (`DualLLM*` in the reference) adds
//! the semantic view — a frozen language-model table through a two-layer linear adapter — and two
//! cross-attentions between the views. Both views run through the **same** encoder; the user vector
//! is the concatenation of the per-view states at the newest position, an item vector the
//! concatenation of its per-view embeddings, and a score their dot product.

use super::attention::CrossAttention;
use super::batch::SeqBatch;
use super::config::{Backbone, Mode, ModelConfig};
use super::gru::Gru;
#[cfg(test)]
use super::names::{FROZEN_TABLE, ID_TABLE};
use super::ops::dropout::dropout;
use super::ops::linear::{linear, Linear};
use super::transformer::TransformerStack;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{embedding, Embedding, Module, VarBuilder};
use rand::rngs::SmallRng;

enum SemanticTable {
    /// Training form: frozen `[rows, input_dim]` table and the adapter.
    Adapter {
        table: Tensor,
        first: Linear,
        second: Linear,
    },
    /// Exported form: `adapter(table)` precomputed, `[rows, hidden]`.
    Folded(Tensor),
}

enum Encoder {
    Transformer(TransformerStack),
    Gru(Gru),
}

pub struct SeqRec {
    cfg: ModelConfig,
    id_table: Option<Embedding>,
    semantic: Option<SemanticTable>,
    pos_emb: Option<Embedding>,
    /// `llm2id` (semantic queries over ID keys) and `id2llm`.
    cross: Option<(CrossAttention, CrossAttention)>,
    encoder: Encoder,
}

impl SeqRec {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let rows = cfg.item_rows();
        let d = cfg.hidden;
        let sem = cfg.semantic.as_ref();
        let id_table = match sem {
            Some(s) if !s.has_id_view() => None,
            _ => Some(embedding(rows, d, vb.pp("item_emb"))?),
        };
        let semantic = match sem {
            Some(s) if s.has_semantic_view() => Some(if s.folded {
                SemanticTable::Folded(embedding(rows, d, vb.pp("se_emb"))?.embeddings().clone())
            } else {
                SemanticTable::Adapter {
                    // Detached: the optimiser never sees it, and backward skips its gradient.
                    table: embedding(rows, s.input_dim, vb.pp("llm_emb"))?
                        .embeddings()
                        .detach(),
                    first: linear(s.input_dim, s.adapter_hidden, vb.pp("adapter.0"))?,
                    second: linear(s.adapter_hidden, d, vb.pp("adapter.1"))?,
                }
            }),
            _ => None,
        };
        let cross = match sem {
            Some(s) if s.uses_cross() => Some((
                CrossAttention::new(d, s.cross_heads, vb.pp("llm2id"))?,
                CrossAttention::new(d, s.cross_heads, vb.pp("id2llm"))?,
            )),
            _ => None,
        };
        let (pos_emb, encoder) = if cfg.backbone.is_transformer() {
            (
                Some(embedding(cfg.pos_rows(), d, vb.pp("pos_emb"))?),
                Encoder::Transformer(TransformerStack::new(cfg, vb.clone())?),
            )
        } else {
            (None, Encoder::Gru(Gru::new(d, vb.pp("gru"))?))
        };
        Ok(SeqRec {
            cfg: cfg.clone(),
            id_table,
            semantic,
            pos_emb,
            cross,
            encoder,
        })
    }

    /// The candle model rebuilt from a bundle's (dequantized) weights: the straightforward path
    /// the fast inference engine is tested against.
    pub fn from_bundle(bundle: &crate::bundle::Bundle) -> crate::Result<Self> {
        let vb = VarBuilder::from_tensors(bundle.dequantized()?, DType::F32, &Device::Cpu);
        SeqRec::new(&bundle.manifest.model, vb).map_err(|e| {
            crate::Error::Bundle(format!("weights do not match the model config: {e}"))
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The item tables, one `[rows, d]` per view (ID view first). The adapter runs over the whole
    /// table: cheaper than over every looked-up position, and gradients reach it either way.
    pub fn item_tables(&self) -> Result<Vec<Tensor>> {
        let mut out = Vec::with_capacity(2);
        if let Some(t) = &self.id_table {
            out.push(t.embeddings().clone());
        }
        match &self.semantic {
            Some(SemanticTable::Adapter {
                table,
                first,
                second,
            }) => out.push(second.forward(&first.forward(table)?)?),
            Some(SemanticTable::Folded(t)) => out.push(t.clone()),
            None => {}
        }
        Ok(out)
    }

    /// Item vectors (views concatenated) for ids of any shape: `[..]` → `[.., V·d]`.
    pub fn lookup(tables: &[Tensor], ids: &Tensor) -> Result<Tensor> {
        let flat = ids.flatten_all()?;
        let mut dims = ids.dims().to_vec();
        let parts = tables
            .iter()
            .map(|t| t.index_select(&flat, 0))
            .collect::<Result<Vec<_>>>()?;
        let width: usize = tables.iter().map(|t| t.dim(1)).sum::<Result<usize>>()?;
        dims.push(width);
        Tensor::cat(&parts, 1)?.reshape(dims)
    }

    /// Encoder states for every position, views concatenated: `[B, L, V·d]`. With `last_only`, and
    /// always for GRU4Rec, only the newest position: `[B, 1, V·d]`. Dropout is on when `rng` is
    /// given.
    pub fn encode(
        &self,
        tables: &[Tensor],
        batch: &SeqBatch,
        last_only: bool,
        mut rng: Option<&mut SmallRng>,
    ) -> Result<Tensor> {
        let (b, l, d) = (batch.batch, batch.len, self.cfg.hidden);
        let flat = batch.ids.flatten_all()?;
        let mut views = tables
            .iter()
            .map(|t| t.index_select(&flat, 0)?.reshape((b, l, d)))
            .collect::<Result<Vec<_>>>()?;
        if let Some(pos_emb) = &self.pos_emb {
            let pos = pos_emb.forward(&batch.positions)?;
            let scale = (d as f64).sqrt();
            for v in views.iter_mut() {
                *v = dropout(
                    &((&*v * scale)? + &pos)?,
                    self.cfg.dropout,
                    rng.as_deref_mut(),
                )?;
            }
        }
        if let Some((llm2id, id2llm)) = &self.cross {
            // The reference hides only padding keys, so with seq-to-seq training position t
            // reads item t+1 — its own target — from the other view. Corrected mode gives the
            // cross-attentions the self-attention's visibility (causal for SASRec).
            let mask = match (self.cfg.mode, &batch.attn_mask) {
                (Mode::Corrected, Some(m)) => m,
                _ => &batch.key_mask,
            };
            let (e_id, e_se) = (&views[0], &views[1]);
            let mut x_id = llm2id.forward(e_se, e_id, mask)?;
            let mut x_se = id2llm.forward(e_id, e_se, mask)?;
            if self.cfg.semantic.as_ref().is_some_and(|s| s.cross_residual) {
                x_id = (x_id + e_id)?;
                x_se = (x_se + e_se)?;
            }
            views = vec![x_id, x_se];
        }
        let n_views = views.len();
        // Both views go through the one shared encoder as a single batch of V·B sequences.
        let x = if n_views == 1 {
            views.pop().expect("one view")
        } else {
            Tensor::cat(&views, 0)?
        };
        let repeat = |t: &Tensor| -> Result<Tensor> {
            if n_views == 1 {
                Ok(t.clone())
            } else {
                Tensor::cat(&vec![t; n_views], 0)
            }
        };
        let h = match &self.encoder {
            Encoder::Transformer(stack) => {
                let keep = repeat(&batch.keep)?;
                let mask = batch.attn_mask.as_ref().map(|m| m.repeat(n_views));
                stack.forward(&x, &keep, mask.as_ref(), last_only, rng)?
            }
            Encoder::Gru(gru) => {
                let x = match self.cfg.mode {
                    // Cross-attention gives padding rows values; zeroing them keeps the GRU's
                    // state at zero until the first item, whatever the amount of padding.
                    Mode::Corrected => x.broadcast_mul(&repeat(&batch.keep)?)?,
                    Mode::Faithful => x,
                };
                gru.forward(&x)?.unsqueeze(1)?
            }
        };
        if n_views == 1 {
            return Ok(h);
        }
        let parts = (0..n_views)
            .map(|v| h.narrow(0, v * b, b))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, 2)
    }

    /// The user representation: the state at the newest position, `[B, V·d]`.
    pub fn user_repr(
        &self,
        tables: &[Tensor],
        batch: &SeqBatch,
        rng: Option<&mut SmallRng>,
    ) -> Result<Tensor> {
        self.encode(tables, batch, true, rng)?.squeeze(1)
    }

    /// Scores of users `[B, V·d]` against items `0..=n_items`: `[B, n_items + 1]` (column 0 is the
    /// padding slot; the BERT4Rec mask token is never a candidate).
    pub fn score_all(&self, tables: &[Tensor], users: &Tensor) -> Result<Tensor> {
        let n = self.cfg.n_items + 1;
        let parts = tables
            .iter()
            .map(|t| t.narrow(0, 0, n))
            .collect::<Result<Vec<_>>>()?;
        users.matmul(&Tensor::cat(&parts, 1)?.t()?)
    }

    /// The batch of inference inputs (oldest first) as the backbone expects it: left-padded,
    /// BERT4Rec's mask token appended to be scored, padding fitted to the mode
    /// ([`SeqBatch::fitted`]), positions shifted where paper-faithful BERT4Rec shifts them.
    pub fn inference_batch(&self, inputs: &[&[u32]], device: &Device) -> Result<SeqBatch> {
        let max_len = self.cfg.max_len;
        let padded: Vec<Vec<u32>> = inputs
            .iter()
            .map(|s| match self.cfg.mask_token() {
                Some(mask) => {
                    let mut v = s.to_vec();
                    v.push(mask);
                    crate::data::split::pad_left(&v, max_len)
                }
                None => crate::data::split::pad_left(s, max_len),
            })
            .collect();
        let mut batch = SeqBatch::fitted(padded, &self.cfg, device)?;
        let shifts: Vec<usize> = inputs
            .iter()
            .map(|s| self.cfg.position_shift(s.len()))
            .collect();
        if shifts.iter().any(|&s| s > 0) {
            batch.shift_positions(&shifts)?;
        }
        Ok(batch)
    }

    /// Scores every item for each input history (oldest first), in eval mode: `[B][n_items + 1]`.
    pub fn score_histories(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let tables = self.item_tables()?;
        let batch = self.inference_batch(inputs, tables[0].device())?;
        let users = self.user_repr(&tables, &batch, None)?;
        self.score_all(&tables, &users)?.to_vec2()
    }

    pub fn backbone(&self) -> Backbone {
        self.cfg.backbone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::split::pad_left;
    use crate::model::batch::Visibility;
    use crate::model::config::{SemanticConfig, Views};
    use crate::model::init::seeded_init;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn config(backbone: Backbone, llmesr: bool, mode: Mode) -> ModelConfig {
        let mut cfg = ModelConfig::reference(backbone, 20);
        cfg.max_len = 8;
        cfg.hidden = 16;
        cfg.n_heads = 2;
        cfg.mode = mode;
        if llmesr {
            cfg.semantic = Some(SemanticConfig::reference(12));
        }
        cfg
    }

    fn model(cfg: &ModelConfig, seed: u64) -> (VarMap, SeqRec) {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let m = SeqRec::new(cfg, vb).unwrap();
        seeded_init(&vars, seed).unwrap();
        (vars, m)
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    }

    fn all_configs() -> Vec<ModelConfig> {
        let mut out = Vec::new();
        for b in [Backbone::Sasrec, Backbone::Gru4rec, Backbone::Bert4rec] {
            for llmesr in [false, true] {
                out.push(config(b, llmesr, Mode::Corrected));
            }
        }
        out
    }

    #[test]
    fn shapes_for_every_backbone_and_variant() {
        for cfg in all_configs() {
            let (_, m) = model(&cfg, 7);
            let tables = m.item_tables().unwrap();
            assert_eq!(tables.len(), cfg.n_views());
            assert_eq!(tables[0].dims(), &[cfg.item_rows(), 16]);
            let b = SeqBatch::new(
                &[pad_left(&[1, 2], 8), pad_left(&[3], 8)],
                Visibility::of(&cfg),
                &Device::Cpu,
            )
            .unwrap();
            let u = m.user_repr(&tables, &b, None).unwrap();
            assert_eq!(u.dims(), &[2, 16 * cfg.n_views()], "{cfg:?}");
            assert_eq!(m.score_all(&tables, &u).unwrap().dims(), &[2, 21]);
            let ids = Tensor::new(&[[1u32, 2], [3, 4]], &Device::Cpu).unwrap();
            assert_eq!(
                SeqRec::lookup(&tables, &ids).unwrap().dims(),
                &[2, 2, 16 * cfg.n_views()]
            );
        }
    }

    #[test]
    fn corrected_mode_ignores_padding_amount_faithful_does_not() {
        for cfg in all_configs() {
            let (_, m) = model(&cfg, 7);
            let short = m.score_histories(&[&[3, 4, 5]]).unwrap();
            // The same session with more padding in front: one row with a longer neighbour.
            let long = m
                .score_histories(&[&[3, 4, 5], &[1, 2, 3, 4, 5, 6, 7]])
                .unwrap();
            let d = max_diff(&short[0], &long[0]);
            assert!(d < 1e-4, "{:?} {:?}: {d}", cfg.backbone, cfg.variant());
        }
        let mut cfg = config(Backbone::Sasrec, true, Mode::Faithful);
        cfg.max_len = 8;
        let (_, m) = model(&cfg, 7);
        let tables = m.item_tables().unwrap();
        let last = |len: usize| -> Vec<f32> {
            let b =
                SeqBatch::new(&[pad_left(&[3, 4, 5], len)], Visibility::All, &Device::Cpu).unwrap();
            m.user_repr(&tables, &b, None)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert!(
            max_diff(&last(4), &last(8)) > 1e-4,
            "faithful mode lets padding keys in"
        );
    }

    #[test]
    fn last_only_equals_the_newest_row_of_the_full_pass() {
        for cfg in all_configs() {
            let (_, m) = model(&cfg, 3);
            let tables = m.item_tables().unwrap();
            let b = SeqBatch::new(
                &[pad_left(&[1, 2, 3], 8), pad_left(&[4, 5, 6, 7, 8, 9], 8)],
                Visibility::of(&cfg),
                &Device::Cpu,
            )
            .unwrap();
            let full = m.encode(&tables, &b, false, None).unwrap();
            let l = full.dim(1).unwrap();
            let newest: Vec<f32> = full
                .narrow(1, l - 1, 1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let last: Vec<f32> = m
                .encode(&tables, &b, true, None)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(max_diff(&newest, &last) < 1e-5, "{:?}", cfg.backbone);
        }
    }

    #[test]
    fn faithful_bert4rec_gives_a_full_window_the_references_shifted_positions() {
        let long: Vec<u32> = (1..=10).collect(); // fills the 8-item window
        let short: Vec<u32> = vec![3, 4, 5];
        for llmesr in [false, true] {
            let cfg = config(Backbone::Bert4rec, llmesr, Mode::Faithful);
            assert_eq!(cfg.pos_rows(), 10);
            let (vars, m) = model(&cfg, 7);
            // Adds 1 to one row of the position table.
            let bump = |row: usize| {
                let pos = vars.data().lock().unwrap()["pos_emb.weight"].clone();
                let row_plus_one = (pos.narrow(0, row, 1).unwrap() + 1.0).unwrap();
                let bumped = pos.slice_assign(&[row..row + 1, 0..16], &row_plus_one);
                pos.set(&bumped.unwrap()).unwrap();
            };
            let before = m.score_histories(&[&long, &short]).unwrap();
            // Only a full window reaches position max_len + 1 (its mask token's).
            bump(9);
            let after = m.score_histories(&[&long, &short]).unwrap();
            assert!(max_diff(&before[0], &after[0]) > 1e-3, "llmesr {llmesr}");
            assert!(max_diff(&before[1], &after[1]) < 1e-6, "llmesr {llmesr}");
            // Its positions are 2..=9, so the oldest kept item's row 1 is never read.
            bump(1);
            let again = m.score_histories(&[&long, &short]).unwrap();
            assert!(max_diff(&after[0], &again[0]) < 1e-6, "llmesr {llmesr}");
            assert!(max_diff(&after[1], &again[1]) > 1e-3, "llmesr {llmesr}");
        }
        // Corrected mode counts from the oldest kept item, as training does: no extra row.
        let cfg = config(Backbone::Bert4rec, true, Mode::Corrected);
        assert_eq!((cfg.pos_rows(), cfg.position_shift(10)), (9, 0));
        let (_, m) = model(&cfg, 7);
        assert!(m.score_histories(&[&long]).is_ok());
    }

    #[test]
    fn corrected_sasrec_is_causal_with_both_views() {
        let cfg = config(Backbone::Sasrec, true, Mode::Corrected);
        let (_, m) = model(&cfg, 5);
        let tables = m.item_tables().unwrap();
        let h = |seq: &[u32]| -> Vec<f32> {
            let b = SeqBatch::new(&[seq.to_vec()], Visibility::Past, &Device::Cpu).unwrap();
            let out: Vec<Vec<f32>> = m
                .encode(&tables, &b, false, None)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec2()
                .unwrap();
            out[2].clone()
        };
        assert!(max_diff(&h(&[1, 2, 3, 4]), &h(&[1, 2, 3, 9])) < 1e-6);
    }

    #[test]
    fn residual_cross_attention_adds_to_the_views() {
        for backbone in [Backbone::Sasrec, Backbone::Gru4rec] {
            let mut cfg = config(backbone, true, Mode::Corrected);
            let replace = model(&cfg, 4).1.score_histories(&[&[1, 2, 3]]).unwrap();
            cfg.semantic.as_mut().unwrap().cross_residual = true;
            let (vars, m) = model(&cfg, 4);
            let residual = m.score_histories(&[&[1, 2, 3]]).unwrap();
            assert!(max_diff(&replace[0], &residual[0]) > 1e-3, "{backbone:?}");
            // Silence both cross-attentions: the residual model becomes the one without them.
            for (name, var) in vars.data().lock().unwrap().iter() {
                if name.contains(".out.")
                    && (name.starts_with("llm2id") || name.starts_with("id2llm"))
                {
                    var.set(&var.zeros_like().unwrap()).unwrap();
                }
            }
            let silenced = m.score_histories(&[&[1, 2, 3]]).unwrap();
            let mut plain = cfg.clone();
            plain.semantic.as_mut().unwrap().cross_residual = false;
            plain.semantic.as_mut().unwrap().cross_attention = false;
            let (pvars, p) = model(&plain, 9);
            let src = vars.data().lock().unwrap();
            for (name, var) in pvars.data().lock().unwrap().iter() {
                var.set(src[name].as_tensor()).unwrap();
            }
            let without = p.score_histories(&[&[1, 2, 3]]).unwrap();
            assert!(max_diff(&silenced[0], &without[0]) < 1e-5, "{backbone:?}");
        }
        let mut cfg = config(Backbone::Sasrec, true, Mode::Corrected);
        let sem = cfg.semantic.as_mut().unwrap();
        sem.cross_residual = true;
        sem.cross_attention = false;
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn ablations_build_the_parts_they_name() {
        let mut cfg = config(Backbone::Sasrec, true, Mode::Corrected);
        let names = |cfg: &ModelConfig| -> Vec<String> {
            let (vars, _) = model(cfg, 1);
            let mut n: Vec<String> = vars.data().lock().unwrap().keys().cloned().collect();
            n.sort();
            n
        };
        let full = names(&cfg);
        assert!(full.iter().any(|n| n.starts_with("llm2id.")));
        assert!(full.contains(&FROZEN_TABLE.to_string()) && full.contains(&ID_TABLE.to_string()));
        cfg.semantic.as_mut().unwrap().cross_attention = false;
        assert!(!names(&cfg).iter().any(|n| n.starts_with("llm2id.")));
        cfg.semantic.as_mut().unwrap().views = Views::Semantic;
        let sem_only = names(&cfg);
        assert!(
            !sem_only.contains(&ID_TABLE.to_string())
                && sem_only.contains(&FROZEN_TABLE.to_string())
        );
        cfg.semantic.as_mut().unwrap().views = Views::Collaborative;
        let id_only = names(&cfg);
        assert!(
            id_only.contains(&ID_TABLE.to_string())
                && !id_only.iter().any(|n| n.starts_with("adapter"))
        );
        assert_eq!(cfg.n_views(), 1);
    }

    #[test]
    fn folding_the_adapter_keeps_every_score() {
        for backbone in [Backbone::Sasrec, Backbone::Gru4rec, Backbone::Bert4rec] {
            let cfg = config(backbone, true, Mode::Corrected);
            let (vars, m) = model(&cfg, 11);
            let weights = crate::model::init::snapshot(&vars).unwrap();
            let (folded_cfg, folded) = crate::train::export::fold_semantic(&cfg, &weights).unwrap();
            assert!(!folded.contains_key(FROZEN_TABLE) && !folded.contains_key("adapter.0.weight"));
            assert_eq!(
                folded[crate::model::names::SEMANTIC_TABLE].dims(),
                &[cfg.item_rows(), 16]
            );
            let vb = VarBuilder::from_tensors(folded, DType::F32, &Device::Cpu);
            let f = SeqRec::new(&folded_cfg, vb).unwrap();
            let sessions: [&[u32]; 2] = [&[1, 5, 9], &[20, 19, 18, 17, 16, 15, 14, 13, 12]];
            let a = m.score_histories(&sessions).unwrap();
            let b = f.score_histories(&sessions).unwrap();
            for (x, y) in a.iter().zip(&b) {
                assert!(max_diff(x, y) < 1e-4, "{backbone:?}");
            }
        }
    }
}
#[cfg(test)]
mod grad_tests {
    use super::*;
    use crate::data::split::pad_left;
    use crate::model::batch::Visibility;
    use crate::model::config::SemanticConfig;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// A regression test: candle-nn's fused LayerNorm and softmax have no backward pass, and
    /// using them once left every encoder weight untrained.
    #[test]
    fn every_trainable_weight_gets_a_gradient() {
        for backbone in [Backbone::Sasrec, Backbone::Gru4rec, Backbone::Bert4rec] {
            for llmesr in [false, true] {
                let mut cfg = ModelConfig::reference(backbone, 20);
                cfg.max_len = 8;
                cfg.hidden = 16;
                if llmesr {
                    cfg.semantic = Some(SemanticConfig::reference(12));
                }
                let vars = VarMap::new();
                let m = SeqRec::new(
                    &cfg,
                    VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
                )
                .unwrap();
                crate::model::init::seeded_init(&vars, 1).unwrap();
                let tables = m.item_tables().unwrap();
                let b = SeqBatch::new(
                    &[pad_left(&[1, 2, 3], 8)],
                    Visibility::of(&cfg),
                    &Device::Cpu,
                )
                .unwrap();
                let h = m.encode(&tables, &b, false, None).unwrap();
                let ids = Tensor::new(&[4u32], &Device::Cpu).unwrap();
                let item = SeqRec::lookup(&tables, &ids).unwrap();
                let loss = h
                    .broadcast_mul(&item)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap();
                let g = loss.backward().unwrap();
                let data = vars.data().lock().unwrap();
                let missing: Vec<&String> = data
                    .iter()
                    .filter(|(k, v)| k.as_str() != FROZEN_TABLE && g.get(v.as_tensor()).is_none())
                    .map(|(k, _)| k)
                    .collect();
                assert!(
                    missing.is_empty(),
                    "{backbone:?} llmesr={llmesr}: {missing:?}"
                );
                if let Some(v) = data.get(FROZEN_TABLE) {
                    assert!(
                        g.get(v.as_tensor()).is_none(),
                        "the semantic table stays frozen"
                    );
                }
            }
        }
    }
}
