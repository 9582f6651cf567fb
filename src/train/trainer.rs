//! The epoch loop: Adam on BCE with one negative per position, validation NDCG@10 (full ranking)
//! after every epoch, the best epoch checkpointed, early stopping on patience.

use super::config::TrainConfig;
use super::sampler::{make_batch, trainable_users};
use crate::data::groups::Groups;
use crate::data::{Dataset, Stage};
use crate::eval::{evaluate, Protocol};
use crate::model::init::seeded_init;
use crate::model::{ModelConfig, SasRec, SeqBatch};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// One epoch's log line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub loss: f64,
    pub train_seconds: f64,
    pub valid_ndcg10: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainOutcome {
    pub best_epoch: usize,
    pub best_valid_ndcg10: f64,
    pub epochs: Vec<EpochLog>,
    /// Mean training seconds per epoch (evaluation excluded).
    pub seconds_per_epoch: f64,
}

/// log(1 + e^x), stable for large |x|.
fn softplus(x: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Mean BCE-with-logits of positives (label 1) and negatives (label 0) over positions with a target.
fn bce_loss(
    model: &SasRec,
    hidden: &Tensor,
    pos: &Tensor,
    neg: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<Tensor> {
    let pos_logit = (hidden * model.embed_items(pos)?)?.sum(D::Minus1)?;
    let neg_logit = (hidden * model.embed_items(neg)?)?.sum(D::Minus1)?;
    let n = mask.sum_all()?;
    let pos_loss = (softplus(&pos_logit.neg()?)? * mask)?.sum_all()?;
    let neg_loss = (softplus(&neg_logit)? * mask)?.sum_all()?;
    (pos_loss + neg_loss)?.broadcast_div(&n)
}

fn snapshot(vars: &VarMap) -> candle_core::Result<HashMap<String, Tensor>> {
    let data = vars.data().lock().expect("var map lock poisoned");
    data.iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
        .collect()
}

fn restore(vars: &VarMap, weights: &HashMap<String, Tensor>) -> candle_core::Result<()> {
    let data = vars.data().lock().expect("var map lock poisoned");
    for (k, v) in data.iter() {
        v.set(&weights[k])?;
    }
    Ok(())
}

/// Saves weights as safetensors through a temporary file and a rename.
pub fn save_checkpoint(weights: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    candle_core::safetensors::save(weights, &tmp).map_err(|e| Error::Io {
        path: tmp.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let f = std::fs::File::open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Loads weights written by [`save_checkpoint`].
pub fn load_checkpoint(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Trains a model and returns it with its best weights loaded. The best checkpoint is written to
/// `checkpoint` after every improvement.
pub fn train(
    data: &Dataset,
    groups: &Groups,
    model_cfg: &ModelConfig,
    cfg: &TrainConfig,
    checkpoint: &Path,
    progress: bool,
) -> Result<(SasRec, HashMap<String, Tensor>, TrainOutcome)> {
    model_cfg.validate()?;
    cfg.validate()?;
    if model_cfg.n_items != data.n_items() {
        return Err(Error::Config(format!(
            "model has {} items, dataset {}",
            model_cfg.n_items,
            data.n_items()
        )));
    }
    let mut users = trainable_users(data);
    if users.is_empty() {
        return Err(Error::Dataset(
            "no user has two or more training items".into(),
        ));
    }
    let device = Device::Cpu;
    let vars = VarMap::new();
    let model = SasRec::new(
        model_cfg,
        VarBuilder::from_varmap(&vars, DType::F32, &device),
    )?;
    seeded_init(&vars, cfg.seed)?;
    let mut opt = AdamW::new(
        vars.all_vars(),
        ParamsAdamW {
            lr: cfg.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        },
    )?;
    let mut rng = SmallRng::seed_from_u64(cfg.seed);
    let mut best: Option<(usize, f64, HashMap<String, Tensor>)> = None;
    let mut logs = Vec::new();
    let n_batches = users.len().div_ceil(cfg.batch_size);
    for epoch in 1..=cfg.epochs {
        users.shuffle(&mut rng);
        let bar = if progress {
            ProgressBar::new(n_batches as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix:>3} {bar:30} {pos}/{len} batches {msg} [{elapsed}<{eta}]",
            )
            .expect("static template"),
        );
        bar.set_prefix(epoch.to_string());
        let start = Instant::now();
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        for chunk in users.chunks(cfg.batch_size) {
            let host = make_batch(data, chunk, model_cfg.max_len, &mut rng);
            let batch = SeqBatch::new(&host.inputs, model_cfg.mode, &device)?;
            let shape = (batch.batch, batch.len);
            let pos = Tensor::from_vec(host.positives, shape, &device)?;
            let neg = Tensor::from_vec(host.negatives, shape, &device)?;
            let mask = pos.ne(0u32)?.to_dtype(DType::F32)?;
            let hidden = model.forward(&batch, Some(&mut rng))?;
            let loss = bce_loss(&model, &hidden, &pos, &neg, &mask)?;
            opt.backward_step(&loss)?;
            let l = loss.to_scalar::<f32>()? as f64;
            if !l.is_finite() {
                return Err(Error::Config(format!(
                    "training diverged at epoch {epoch} (loss {l}); lower the learning rate"
                )));
            }
            loss_sum += l * chunk.len() as f64;
            seen += chunk.len();
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.4}  {:.0} seq/s",
                loss_sum / seen as f64,
                seen as f64 / start.elapsed().as_secs_f64()
            ));
        }
        let train_seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let valid = evaluate(
            &model,
            data,
            groups,
            Stage::Valid,
            Protocol::Full,
            cfg.seed,
            cfg.eval_batch_size,
        )?;
        let ndcg = valid.group("overall").mean("ndcg@10");
        let log = EpochLog {
            epoch,
            loss: loss_sum / seen as f64,
            train_seconds,
            valid_ndcg10: ndcg,
        };
        let improved = best.as_ref().is_none_or(|b| ndcg > b.1);
        if progress {
            eprintln!(
                "epoch {epoch:>3}  loss {:.4}  {:.1}s  valid NDCG@10 (full) {ndcg:.4}{}",
                log.loss,
                train_seconds,
                if improved { "  *best" } else { "" }
            );
        }
        logs.push(log);
        if improved {
            let weights = snapshot(&vars)?;
            save_checkpoint(&weights, checkpoint)?;
            best = Some((epoch, ndcg, weights));
        } else if epoch - best.as_ref().map_or(0, |b| b.0) >= cfg.patience {
            break;
        }
    }
    let (best_epoch, best_valid_ndcg10, weights) = best.expect("at least one epoch ran");
    restore(&vars, &weights)?;
    let seconds_per_epoch = logs.iter().map(|l| l.train_seconds).sum::<f64>() / logs.len() as f64;
    Ok((
        model,
        weights,
        TrainOutcome {
            best_epoch,
            best_valid_ndcg10,
            epochs: logs,
            seconds_per_epoch,
        },
    ))
}
