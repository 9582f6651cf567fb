//! The training objective of one batch: the recommendation loss — the reference's BCE with one
//! negative, or a softmax-family loss (full cross-entropy, sampled softmax, gBCE) — plus, for
//! LLM-ESR, the weighted self-distillation MSE.

use super::distill::{masked_mse, Distiller};
use super::sampler::TrainBatch;
use crate::data::{ColdItems, Dataset};
use crate::model::ops::candidate_loss::{candidate_loss, Objective};
use crate::model::{SeqBatch, SeqRec, Visibility};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Which recommendation loss trains the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[derive(clap::ValueEnum)]
pub enum LossKind {
    /// The reference: binary cross-entropy of the target and one uniform negative per position.
    #[default]
    Bce,
    /// Cross-entropy of a softmax over the whole catalogue (padding and the mask token are never
    /// candidates).
    Ce,
    /// Sampled softmax: the target against uniform negatives shared by the whole batch.
    Sampled,
    /// gBCE (gSASRec): BCE over the target and shared uniform negatives, the target's probability
    /// raised to a power that undoes the sampling's overconfidence.
    Gbce,
}

impl LossKind {
    pub fn label(&self) -> &'static str {
        match self {
            LossKind::Bce => "bce",
            LossKind::Ce => "ce",
            LossKind::Sampled => "sampled",
            LossKind::Gbce => "gbce",
        }
    }

    /// Whether the loss scores shared sampled negatives.
    pub fn samples_negatives(&self) -> bool {
        matches!(self, LossKind::Sampled | LossKind::Gbce)
    }
}

/// The recommendation loss and its settings (the fields of a run's `train` config, flattened).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LossConfig {
    #[serde(rename = "loss")]
    pub kind: LossKind,
    /// Sampled and gBCE: negatives drawn per batch (without replacement, shared by every row).
    pub negatives: usize,
    /// gBCE: the calibration t in [0, 1] (0 = plain BCE over the sample, 1 = fully calibrated).
    pub gbce_t: f64,
    /// Sampled softmax: add log((items − 1) / negatives) to every negative's score, so the
    /// sample's part of the softmax denominator estimates the whole catalogue's.
    pub logq: bool,
}

impl Default for LossConfig {
    /// BCE, and the negatives and t that gSASRec's authors recommend (256, 0.75).
    fn default() -> Self {
        LossConfig {
            kind: LossKind::Bce,
            negatives: 256,
            gbce_t: 0.75,
            logq: false,
        }
    }
}

impl LossConfig {
    pub fn validate(&self) -> Result<()> {
        if self.kind.samples_negatives() && self.negatives == 0 {
            return Err(Error::Config(format!(
                "--loss {} needs at least 1 negative",
                self.kind.label()
            )));
        }
        if !(0.0..=1.0).contains(&self.gbce_t) {
            return Err(Error::Config(format!(
                "gbce t must be in [0, 1], got {}",
                self.gbce_t
            )));
        }
        if self.logq && self.kind != LossKind::Sampled {
            return Err(Error::Config(format!(
                "logq correction applies to --loss sampled only, not {}",
                self.kind.label()
            )));
        }
        Ok(())
    }

    /// gSASRec's β for `k` negatives out of `n_items`: α·(t·(1 − 1/α) + 1/α) with α the sampling
    /// rate k / (n_items − 1).
    pub fn gbce_beta(&self, k: usize, n_items: usize) -> f64 {
        let alpha = k as f64 / (n_items.max(2) - 1) as f64;
        alpha * (self.gbce_t * (1.0 - 1.0 / alpha) + 1.0 / alpha)
    }
}

/// log(1 + e^x), stable for large |x|.
fn softplus(x: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Mean BCE-with-logits of positives (label 1) and negatives (label 0) over targets with a mask of
/// 1; `hidden`, `pos` and `neg` vectors share one shape `[.., W]`.
fn bce_loss(
    hidden: &Tensor,
    pos: &Tensor,
    neg: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<Tensor> {
    let pos_logit = (hidden * pos)?.sum(D::Minus1)?;
    let neg_logit = (hidden * neg)?.sum(D::Minus1)?;
    let n = mask.sum_all()?.clamp(1f32, f32::MAX)?;
    let pos_loss = (softplus(&pos_logit.neg()?)? * mask)?.sum_all()?;
    let neg_loss = (softplus(&neg_logit)? * mask)?.sum_all()?;
    (pos_loss + neg_loss)?.broadcast_div(&n)
}

/// The softmax-family losses over the rows of `hidden` (`[.., W]`) that have a target
/// (`positives`, 0 = none, in the same order): the candidates are the whole catalogue (CE) or
/// `negatives` drawn from `rng` for the batch.
fn softmax_family(
    model: &SeqRec,
    tables: &[Tensor],
    hidden: &Tensor,
    positives: &[u32],
    loss: &LossConfig,
    held_out: Option<&ColdItems>,
    rng: &mut SmallRng,
) -> Result<Tensor> {
    let device = Device::Cpu;
    let n_items = model.config().n_items;
    let w = hidden.dim(D::Minus1)?;
    let rows: Vec<u32> = (0..positives.len() as u32)
        .filter(|&i| positives[i as usize] != 0)
        .collect();
    let targets: Vec<u32> = rows.iter().map(|&i| positives[i as usize]).collect();
    if rows.is_empty() {
        return Ok(Tensor::zeros((), DType::F32, &device)?);
    }
    let n = rows.len();
    let hidden = hidden
        .reshape((positives.len(), w))?
        .index_select(&Tensor::from_vec(rows, n, &device)?, 0)?;
    let pos = SeqRec::lookup(tables, &Tensor::from_vec(targets.clone(), n, &device)?)?;
    let (candidates, ids, objective) = match loss.kind {
        LossKind::Ce => {
            // Rows 0..=n_items: padding (never a candidate, by id) and the items; BERT4Rec's mask
            // row is left out.
            let parts = tables
                .iter()
                .map(|t| t.narrow(0, 0, n_items + 1))
                .collect::<candle_core::Result<Vec<_>>>()?;
            // Held-out items are not in the catalogue yet: marked as padding, never candidates.
            let ids: Vec<u32> = (0..=n_items as u32)
                .map(|i| {
                    if held_out.is_some_and(|c| c.contains(i)) {
                        0
                    } else {
                        i
                    }
                })
                .collect();
            (
                Tensor::cat(&parts, 1)?,
                ids,
                Objective::Softmax {
                    negative_shift: 0.0,
                },
            )
        }
        LossKind::Sampled | LossKind::Gbce => {
            let pool: Vec<u32> = match held_out {
                None => Vec::new(),
                Some(c) => (1..=n_items as u32).filter(|&i| !c.contains(i)).collect(),
            };
            let available = if held_out.is_some() {
                pool.len()
            } else {
                n_items
            };
            let k = loss.negatives.min(available);
            let ids: Vec<u32> = rand::seq::index::sample(rng, available, k)
                .into_iter()
                .map(|i| {
                    if held_out.is_some() {
                        pool[i]
                    } else {
                        i as u32 + 1
                    }
                })
                .collect();
            let vectors = SeqRec::lookup(tables, &Tensor::from_vec(ids.clone(), k, &device)?)?;
            let objective = if loss.kind == LossKind::Gbce {
                Objective::Gbce {
                    beta: loss.gbce_beta(k, n_items) as f32,
                }
            } else {
                Objective::Softmax {
                    negative_shift: if loss.logq {
                        ((n_items.max(2) - 1) as f64 / k as f64).ln() as f32
                    } else {
                        0.0
                    },
                }
            };
            (vectors, ids, objective)
        }
        LossKind::Bce => unreachable!("BCE is not a softmax-family loss"),
    };
    Ok(candidate_loss(
        &hidden,
        &pos,
        &candidates,
        targets,
        ids,
        objective,
    )?)
}

/// Self-distillation's part of a step: whose teachers, from which data, at what weight.
pub struct Distill<'a> {
    pub distiller: &'a Distiller,
    pub data: &'a Dataset,
    /// The batch's users, row by row.
    pub users: &'a [usize],
    pub weight: f64,
}

/// One training step's objective, before its backward pass.
pub struct StepLoss {
    /// The recommendation loss plus, with distillation, its weighted MSE.
    pub loss: Tensor,
    /// Each user's representation (the newest position), `[B, W]`: the student.
    pub student: Tensor,
    /// What the cached teacher remembers for the batch's users where it is not `student`
    /// (BERT4Rec: [`Distiller::own_pass`]).
    pub cache_rows: Option<Tensor>,
    pub teacher_seconds: f64,
}

/// The loss of one batch with its targets (and, for BCE, negatives) already drawn — the
/// reference's `forward(seq, pos, neg, positions, sim_seq, …)`. The model runs in training mode
/// (dropout from `rng`), teachers included; sampled losses draw their negatives from `rng` too.
/// `held_out` items (new items of a cold-start run) are never candidates or negatives.
pub fn step_loss(
    model: &SeqRec,
    host: TrainBatch,
    visibility: Visibility,
    loss_cfg: &LossConfig,
    held_out: Option<&ColdItems>,
    distill: Option<Distill<'_>>,
    rng: &mut SmallRng,
) -> Result<StepLoss> {
    let device = Device::Cpu;
    let batch = SeqBatch::new(&host.inputs, visibility, &device)?.collapsed(host.lead)?;
    let tables = model.item_tables()?;
    let hidden = model.encode(&tables, &batch, false, Some(&mut *rng))?;
    let per_position = host.positives.len() == batch.batch * batch.len;
    let (hidden_rec, shape) = if per_position {
        (hidden.clone(), vec![batch.batch, batch.len])
    } else {
        (hidden.squeeze(1)?, vec![batch.batch])
    };
    let mut loss = match loss_cfg.kind {
        LossKind::Bce if held_out.is_some() => {
            return Err(Error::Config(
                "held-out new items need a softmax-family loss (ce, sampled, gbce): BCE's negatives do not leave them out".into(),
            ))
        }
        LossKind::Bce => {
            let pos = Tensor::from_vec(host.positives, shape.clone(), &device)?;
            let neg = Tensor::from_vec(host.negatives, shape, &device)?;
            let mask = pos.ne(0u32)?.to_dtype(DType::F32)?;
            bce_loss(
                &hidden_rec,
                &SeqRec::lookup(&tables, &pos)?,
                &SeqRec::lookup(&tables, &neg)?,
                &mask,
            )?
        }
        _ => softmax_family(
            model,
            &tables,
            &hidden_rec,
            &host.positives,
            loss_cfg,
            held_out,
            rng,
        )?,
    };
    let student = hidden.narrow(1, hidden.dim(1)? - 1, 1)?.squeeze(1)?;
    let mut teacher_seconds = 0.0;
    let mut cache_rows = None;
    if let Some(d) = distill {
        let t0 = Instant::now();
        let teacher = d.distiller.teacher(model, &tables, d.data, d.users, rng)?;
        if let Some((t, m)) = teacher {
            let mse = masked_mse(&student, &t, &m)?;
            loss = (loss + (mse * d.weight)?)?;
        }
        cache_rows = d.distiller.own_pass(model, &tables, d.data, d.users, rng)?;
        teacher_seconds = t0.elapsed().as_secs_f64();
    }
    Ok(StepLoss {
        loss,
        student,
        cache_rows,
        teacher_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let ok = LossConfig::default();
        assert!(ok.validate().is_ok());
        let zero = LossConfig {
            kind: LossKind::Sampled,
            negatives: 0,
            ..ok
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .to_string()
            .contains("negative"));
        let t = LossConfig {
            kind: LossKind::Gbce,
            gbce_t: 1.5,
            ..ok
        };
        assert!(t.validate().unwrap_err().to_string().contains("gbce t"));
        let logq = LossConfig {
            kind: LossKind::Ce,
            logq: true,
            ..ok
        };
        assert!(logq.validate().unwrap_err().to_string().contains("logq"));
    }

    #[test]
    fn gbce_beta_spans_plain_bce_to_calibrated() {
        // t = 0 gives β = 1 (plain BCE over the sample), t = 1 gives β = α (the sampling rate).
        let c = |t| LossConfig {
            kind: LossKind::Gbce,
            gbce_t: t,
            ..LossConfig::default()
        };
        assert!((c(0.0).gbce_beta(256, 3505) - 1.0).abs() < 1e-12);
        assert!((c(1.0).gbce_beta(256, 3505) - 256.0 / 3504.0).abs() < 1e-12);
        let mid = c(0.75).gbce_beta(256, 3505);
        assert!(mid > 256.0 / 3504.0 && mid < 1.0, "{mid}");
    }
}
