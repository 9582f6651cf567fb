//! The epoch loop: Adam on the configured loss ([`super::loss`]), validation NDCG@10 (full ranking)
//! after every epoch, the best epoch checkpointed, early stopping on patience.

use super::adam::Adam;
use super::config::{IdInit, TrainConfig};
use super::distill::Distiller;
use super::loss::{step_loss, Distill};
use super::run::{CHECKPOINT_FILE, RESUME_FILE};
use super::sampler::{
    cloze_batch, last_item_batch, seq2seq_batch, trainable_users, ClozeSample, TrainBatch,
};
use crate::data::groups::Groups;
use crate::data::{Dataset, Stage};
use crate::eval::{evaluate, Protocol};
use crate::model::init::{seeded_init, snapshot};
use crate::model::network::{FROZEN_TABLE, ID_TABLE};
use crate::model::{Backbone, ModelConfig, Padding, SeqRec, Visibility};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
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
    /// Of `train_seconds`, the time spent encoding self-distillation teachers.
    #[serde(default)]
    pub teacher_seconds: f64,
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
const CACHE_VALUES: &str = "distill.cache";
const CACHE_PRESENT: &str = "distill.present";

/// Everything that must match for a resumed run to be the same run.
fn fingerprint(
    data: &Dataset,
    model_cfg: &ModelConfig,
    cfg: &TrainConfig,
    semantic: Option<&SemanticInputs>,
) -> String {
    let mut fp = serde_json::json!({
        "model": model_cfg,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "distill_weight": cfg.distill_weight,
        "distill_users": cfg.distill_users,
        "teacher": cfg.teacher,
        "id_init": cfg.id_init,
        "mask_prob": cfg.mask_prob,
        "bucket": cfg.bucket,
        "semantic": semantic.map(|s| s.fingerprint.clone()),
        "users": data.n_users(),
        "items": data.n_items(),
        "interactions": data.n_interactions(),
    });
    // Absent for BCE, so the fingerprints of runs from before the other losses still match.
    if cfg.loss.kind != super::loss::LossKind::Bce {
        fp["loss"] = serde_json::json!(cfg.loss);
    }
    fp.to_string()
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
    teacher_cache: Option<(Tensor, Tensor)>,
) -> Result<()> {
    let mut all: HashMap<String, Tensor> = snapshot(vars)?
        .into_iter()
        .map(|(k, v)| (format!("w.{k}"), v))
        .collect();
    all.extend(best.iter().map(|(k, v)| (format!("best.{k}"), v.clone())));
    all.extend(opt.state());
    if let Some((values, present)) = teacher_cache {
        all.insert(CACHE_VALUES.into(), values);
        all.insert(CACHE_PRESENT.into(), present);
    }
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

/// A resume file's epoch logs, best epoch and best validation NDCG@10: a run's progress while it
/// is still training.
pub(crate) fn read_resume_state(path: &Path) -> Result<(Vec<EpochLog>, usize, f64)> {
    let (state, _) = load_resume(path)?;
    Ok((state.logs, state.best_epoch, state.best_valid_ndcg10))
}

fn prefixed(all: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    all.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
        .collect()
}

/// What LLM-ESR training needs beyond the interactions, lined up with the dataset's ids.
pub struct SemanticInputs {
    /// `[n_items, input_dim]`: row `i` is item `i + 1`.
    pub items: Tensor,
    /// Per user, dataset user indices, most similar first.
    pub similar: Vec<Vec<u32>>,
    pub fingerprint: String,
}

impl From<crate::semantic::Aligned> for SemanticInputs {
    fn from(a: crate::semantic::Aligned) -> Self {
        SemanticInputs {
            items: a.items,
            similar: a.similar,
            fingerprint: a.fingerprint,
        }
    }
}

fn set_var(vars: &VarMap, name: &str, value: &Tensor) -> Result<()> {
    let data = vars.data().lock().expect("var map lock poisoned");
    let var = data
        .get(name)
        .ok_or_else(|| Error::Config(format!("the model has no variable {name}")))?;
    if var.dims() != value.dims() {
        return Err(Error::Config(format!(
            "{name} has shape {:?}, the value {:?}",
            var.dims(),
            value.dims()
        )));
    }
    var.set(value)?;
    Ok(())
}

/// Pads a `[n, w]` table with a zero row in front (padding) and, for BERT4Rec, one behind (mask).
fn with_special_rows(table: &Tensor, cfg: &ModelConfig) -> candle_core::Result<Tensor> {
    let w = table.dim(1)?;
    let zero = Tensor::zeros((1, w), table.dtype(), table.device())?;
    let mut parts = vec![&zero, table];
    if cfg.mask_token().is_some() {
        parts.push(&zero);
    }
    Tensor::cat(&parts, 0)
}

/// Sets the frozen semantic table and, unless asked for random init, the PCA-initialised ID table.
pub fn init_semantic(
    vars: &VarMap,
    cfg: &ModelConfig,
    train: &TrainConfig,
    semantic: &SemanticInputs,
) -> Result<()> {
    let Some(sem) = &cfg.semantic else {
        return Ok(());
    };
    let (n, dim) = semantic.items.dims2()?;
    if dim != sem.input_dim {
        return Err(Error::Config(format!(
            "the semantic table is {dim}-dimensional, the model expects {}",
            sem.input_dim
        )));
    }
    if sem.has_semantic_view() {
        set_var(
            vars,
            FROZEN_TABLE,
            &with_special_rows(&semantic.items, cfg)?,
        )?;
    }
    if sem.has_id_view() && train.id_init == IdInit::Pca {
        let flat = semantic.items.flatten_all()?.to_vec1::<f32>()?;
        let pca = crate::semantic::pca::project(&flat, n, dim, cfg.hidden)?;
        let pca = Tensor::from_vec(pca, (n, cfg.hidden), &Device::Cpu)?;
        set_var(vars, ID_TABLE, &with_special_rows(&pca, cfg)?)?;
    }
    Ok(())
}

/// Training units of one epoch: users (SASRec, GRU4Rec) or two cloze samples per user (BERT4Rec),
/// shuffled; with `bucket`, each window of batches is sorted by history length, cut into batches,
/// and the batches of the epoch are shuffled.
fn epoch_samples(
    data: &Dataset,
    cfg: &ModelConfig,
    train: &TrainConfig,
    users: &[usize],
    rng: &mut SmallRng,
) -> Vec<ClozeSample> {
    let mut samples: Vec<ClozeSample> = users
        .iter()
        .map(|&user| ClozeSample {
            user,
            last_only: false,
        })
        .collect();
    if cfg.backbone == Backbone::Bert4rec {
        samples.extend(users.iter().map(|&user| ClozeSample {
            user,
            last_only: true,
        }));
    }
    samples.shuffle(rng);
    if !train.bucket {
        return samples;
    }
    let len = |s: &ClozeSample| data.sequences[s.user].len().min(cfg.max_len + 3);
    let mut batches: Vec<Vec<ClozeSample>> = Vec::new();
    for window in samples.chunks(train.batch_size * super::config::BUCKET_WINDOW) {
        let mut w = window.to_vec();
        w.sort_by_key(len);
        batches.extend(w.chunks(train.batch_size).map(<[ClozeSample]>::to_vec));
    }
    batches.shuffle(rng);
    batches.concat()
}

fn host_batch(
    data: &Dataset,
    cfg: &ModelConfig,
    train: &TrainConfig,
    samples: &[ClozeSample],
    rng: &mut SmallRng,
) -> TrainBatch {
    let users: Vec<usize> = samples.iter().map(|s| s.user).collect();
    let mut host = match cfg.backbone {
        Backbone::Sasrec => seq2seq_batch(data, &users, cfg.max_len, rng),
        Backbone::Gru4rec => last_item_batch(data, &users, cfg.max_len, rng),
        Backbone::Bert4rec => cloze_batch(data, samples, cfg.max_len, train.mask_prob, rng),
    };
    // Columns that are padding in every row are dead work (corrected mode masks them) or copies of
    // one key (paper-faithful mode).
    host.fit_padding(Padding::of(cfg));
    host
}

/// Trains a model in `run_dir` and returns it with its best weights loaded. The best weights go to
/// `checkpoint.safetensors` at every improvement; `resume.safetensors` holds the full state after
/// every epoch, and `resume = true` continues from it (the result equals an uninterrupted run).
/// LLM-ESR models (`model_cfg.semantic` set) need `semantic`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    data: &Dataset,
    groups: &Groups,
    model_cfg: &ModelConfig,
    cfg: &TrainConfig,
    semantic: Option<&SemanticInputs>,
    run_dir: &Path,
    progress: bool,
    resume: bool,
) -> Result<(SeqRec, HashMap<String, Tensor>, TrainOutcome)> {
    model_cfg.validate()?;
    cfg.validate()?;
    if model_cfg.n_items != data.n_items() {
        return Err(Error::Config(format!(
            "model has {} items, dataset {}",
            model_cfg.n_items,
            data.n_items()
        )));
    }
    let semantic =
        match (&model_cfg.semantic, semantic) {
            (Some(_), None) => return Err(Error::Config(
                "an LLM-ESR model needs semantic embeddings (llmesr embed, then --semantic FILE)"
                    .into(),
            )),
            (None, _) => None,
            (Some(_), Some(s)) => Some(s),
        };
    if let Some(s) = semantic {
        if s.items.dim(0)? != data.n_items() || s.similar.len() != data.n_users() {
            return Err(Error::Config(format!(
                "semantic inputs cover {} items and {} users, the dataset {} and {}",
                s.items.dim(0)?,
                s.similar.len(),
                data.n_items(),
                data.n_users()
            )));
        }
    }
    let distill_weight = if semantic.is_some() {
        cfg.distill_weight
    } else {
        0.0
    };
    let users = trainable_users(data);
    if users.is_empty() {
        return Err(Error::Dataset(
            "no user has two or more training items".into(),
        ));
    }
    let mut distiller = match semantic {
        Some(s) if distill_weight > 0.0 => Some(Distiller::new(
            data,
            &s.similar,
            cfg.distill_users,
            cfg.teacher,
        )?),
        _ => None,
    };
    let checkpoint = run_dir.join(CHECKPOINT_FILE);
    let resume_path = run_dir.join(RESUME_FILE);
    let device = Device::Cpu;
    let vars = VarMap::new();
    let model = SeqRec::new(
        model_cfg,
        VarBuilder::from_varmap(&vars, DType::F32, &device),
    )?;
    seeded_init(&vars, cfg.seed)?;
    if let Some(s) = semantic {
        init_semantic(&vars, model_cfg, cfg, s)?;
    }
    let trainable: HashMap<String, candle_core::Var> = vars
        .data()
        .lock()
        .expect("var map lock poisoned")
        .iter()
        .filter(|(k, _)| k.as_str() != FROZEN_TABLE)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut opt = Adam::new(&trainable, cfg.lr)?;
    let fp = fingerprint(data, model_cfg, cfg, semantic);
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
        if let Some(d) = distiller.as_mut() {
            if let (Some(v), Some(p)) = (all.get(CACHE_VALUES), all.get(CACHE_PRESENT)) {
                d.restore_cache(v, p)?;
            }
        }
        resumed_after = Some(saved.epochs_done);
        state = saved;
    }
    let visibility = Visibility::of(model_cfg);
    for epoch in state.epochs_done + 1..=cfg.epochs {
        if state.epochs_done > 0 && state.epochs_done - state.best_epoch >= cfg.patience {
            break;
        }
        let mut rng = epoch_rng(cfg.seed, epoch);
        let samples = epoch_samples(data, model_cfg, cfg, &users, &mut rng);
        let n_batches = samples.len().div_ceil(cfg.batch_size);
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
        let mut teacher_seconds = 0.0;
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        for chunk in samples.chunks(cfg.batch_size) {
            let host = host_batch(data, model_cfg, cfg, chunk, &mut rng);
            let chunk_users: Vec<usize> = chunk.iter().map(|s| s.user).collect();
            let distill = distiller.as_ref().map(|d| Distill {
                distiller: d,
                data,
                users: &chunk_users,
                weight: distill_weight,
            });
            let step = step_loss(&model, host, visibility, &cfg.loss, distill, &mut rng)?;
            teacher_seconds += step.teacher_seconds;
            if let Some(d) = distiller.as_mut() {
                d.record(
                    &chunk_users,
                    step.cache_rows.as_ref().unwrap_or(&step.student),
                )?;
            }
            let loss = step.loss;
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
                "epoch {epoch:>3}  loss {:.4}  {:.1}s{}  valid NDCG@10 (full) {ndcg:.4}{}",
                loss_sum / seen as f64,
                train_seconds,
                if teacher_seconds > 0.0 {
                    format!(" (teacher {teacher_seconds:.1}s)")
                } else {
                    String::new()
                },
                if improved { "  *best" } else { "" }
            );
        }
        state.logs.push(EpochLog {
            epoch,
            loss: loss_sum / seen as f64,
            train_seconds,
            teacher_seconds,
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
        let width = model_cfg.user_width();
        let cache = distiller
            .as_ref()
            .map(|d| d.cache_state(width))
            .transpose()?
            .flatten();
        save_resume(&resume_path, &state, &vars, &best_weights, &opt, cache)?;
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
