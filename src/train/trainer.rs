//! The epoch loop: Adam on BCE with one negative per position, validation NDCG@10 (full ranking)
//! after every epoch, the best epoch checkpointed, early stopping on patience.

use super::adam::Adam;
use super::config::TrainConfig;
use super::run::{CHECKPOINT_FILE, RESUME_FILE};
use super::sampler::{make_batch, trainable_users};
use crate::data::groups::Groups;
use crate::data::{Dataset, Stage};
use crate::eval::{evaluate, Protocol};
use crate::model::init::{seeded_init, snapshot};
use crate::model::{ModelConfig, SasRec, SeqBatch};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
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
    /// The epoch a resumed run continued after, if it was resumed.
    #[serde(default)]
    pub resumed_after: Option<usize>,
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

fn restore(vars: &VarMap, weights: &HashMap<String, Tensor>) -> candle_core::Result<()> {
    let data = vars.data().lock().expect("var map lock poisoned");
    for (k, v) in data.iter() {
        let w = weights
            .get(k)
            .ok_or_else(|| candle_core::Error::Msg(format!("saved weights lack {k}")))?;
        v.set(w)?;
    }
    Ok(())
}

/// Saves weights as safetensors, atomically (see [`crate::fsio::write_atomic`]).
pub fn save_checkpoint(weights: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let mut named: Vec<(&String, &Tensor)> = weights.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let bytes = safetensors::serialize(named, None).map_err(|e| Error::Io {
        path: path.display().to_string(),
        err: std::io::Error::other(e.to_string()),
    })?;
    crate::fsio::write_atomic(path, &bytes)
}

/// Loads weights written by [`save_checkpoint`].
pub fn load_checkpoint(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| Error::Io {
        path: path.display().to_string(),
        err: std::io::Error::other(e.to_string()),
    })
}

/// What is saved after every epoch so a killed run can continue exactly where it left off.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    fingerprint: String,
    epochs_done: usize,
    adam_step: u64,
    best_epoch: usize,
    best_valid_ndcg10: f64,
    logs: Vec<EpochLog>,
}

const STATE_TENSOR: &str = "state.json";

/// Everything that must match for a resumed run to be the same run.
fn fingerprint(data: &Dataset, model_cfg: &ModelConfig, cfg: &TrainConfig) -> String {
    serde_json::json!({
        "model": model_cfg,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "users": data.n_users(),
        "items": data.n_items(),
        "interactions": data.n_interactions(),
    })
    .to_string()
}

/// Each epoch draws from its own generator, so epoch e is the same whether or not the run was
/// interrupted before it.
fn epoch_rng(seed: u64, epoch: usize) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn save_resume(
    path: &Path,
    state: &ResumeState,
    vars: &VarMap,
    best: &HashMap<String, Tensor>,
    opt: &Adam,
) -> Result<()> {
    let mut all: HashMap<String, Tensor> = snapshot(vars)?
        .into_iter()
        .map(|(k, v)| (format!("w.{k}"), v))
        .collect();
    all.extend(best.iter().map(|(k, v)| (format!("best.{k}"), v.clone())));
    all.extend(opt.state());
    let json = serde_json::to_vec(state).map_err(|e| Error::Config(e.to_string()))?;
    let n = json.len();
    all.insert(
        STATE_TENSOR.into(),
        Tensor::from_vec(json, n, &Device::Cpu)?,
    );
    save_checkpoint(&all, path)
}

fn load_resume(path: &Path) -> Result<(ResumeState, HashMap<String, Tensor>)> {
    let all = load_checkpoint(path)?;
    let bad = |m: String| Error::Config(format!("{}: {m}", path.display()));
    let state = all
        .get(STATE_TENSOR)
        .ok_or_else(|| bad("not a resume file (no state)".into()))?
        .to_vec1::<u8>()?;
    let state: ResumeState =
        serde_json::from_slice(&state).map_err(|e| bad(format!("unreadable state: {e}")))?;
    Ok((state, all))
}

fn prefixed(all: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    all.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
        .collect()
}

/// Trains a model in `run_dir` and returns it with its best weights loaded. The best weights go to
/// `checkpoint.safetensors` at every improvement; `resume.safetensors` holds the full state after
/// every epoch, and `resume = true` continues from it (the result equals an uninterrupted run).
pub fn train(
    data: &Dataset,
    groups: &Groups,
    model_cfg: &ModelConfig,
    cfg: &TrainConfig,
    run_dir: &Path,
    progress: bool,
    resume: bool,
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
    let users = trainable_users(data);
    if users.is_empty() {
        return Err(Error::Dataset(
            "no user has two or more training items".into(),
        ));
    }
    let checkpoint = run_dir.join(CHECKPOINT_FILE);
    let resume_path = run_dir.join(RESUME_FILE);
    let device = Device::Cpu;
    let vars = VarMap::new();
    let model = SasRec::new(
        model_cfg,
        VarBuilder::from_varmap(&vars, DType::F32, &device),
    )?;
    seeded_init(&vars, cfg.seed)?;
    let var_map: HashMap<String, candle_core::Var> =
        vars.data().lock().expect("var map lock poisoned").clone();
    let mut opt = Adam::new(&var_map, cfg.lr)?;
    let fp = fingerprint(data, model_cfg, cfg);
    let mut state = ResumeState {
        fingerprint: fp.clone(),
        epochs_done: 0,
        adam_step: 0,
        best_epoch: 0,
        best_valid_ndcg10: f64::NEG_INFINITY,
        logs: Vec::new(),
    };
    let mut best_weights = HashMap::new();
    let mut resumed_after = None;
    if resume && resume_path.is_file() {
        let (saved, all) = load_resume(&resume_path)?;
        if saved.fingerprint != fp {
            return Err(Error::Config(format!(
                "{} was written for another configuration or dataset; start without --resume",
                resume_path.display()
            )));
        }
        restore(&vars, &prefixed(&all, "w."))?;
        opt.restore(&all, saved.adam_step)?;
        best_weights = prefixed(&all, "best.");
        resumed_after = Some(saved.epochs_done);
        state = saved;
    }
    let n_batches = users.len().div_ceil(cfg.batch_size);
    for epoch in state.epochs_done + 1..=cfg.epochs {
        if state.epochs_done > 0 && state.epochs_done - state.best_epoch >= cfg.patience {
            break;
        }
        let mut rng = epoch_rng(cfg.seed, epoch);
        let mut order = users.clone();
        order.shuffle(&mut rng);
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
        for chunk in order.chunks(cfg.batch_size) {
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
        let improved = ndcg > state.best_valid_ndcg10;
        if progress {
            eprintln!(
                "epoch {epoch:>3}  loss {:.4}  {:.1}s  valid NDCG@10 (full) {ndcg:.4}{}",
                loss_sum / seen as f64,
                train_seconds,
                if improved { "  *best" } else { "" }
            );
        }
        state.logs.push(EpochLog {
            epoch,
            loss: loss_sum / seen as f64,
            train_seconds,
            valid_ndcg10: ndcg,
        });
        if improved {
            best_weights = snapshot(&vars)?;
            save_checkpoint(&best_weights, &checkpoint)?;
            state.best_epoch = epoch;
            state.best_valid_ndcg10 = ndcg;
        }
        state.epochs_done = epoch;
        state.adam_step = opt.step_count();
        save_resume(&resume_path, &state, &vars, &best_weights, &opt)?;
    }
    if best_weights.is_empty() {
        return Err(Error::Config("no epoch was trained".into()));
    }
    restore(&vars, &best_weights)?;
    let seconds_per_epoch =
        state.logs.iter().map(|l| l.train_seconds).sum::<f64>() / state.logs.len() as f64;
    Ok((
        model,
        best_weights,
        TrainOutcome {
            best_epoch: state.best_epoch,
            best_valid_ndcg10: state.best_valid_ndcg10,
            epochs: state.logs,
            seconds_per_epoch,
            resumed_after,
        },
    ))
}
