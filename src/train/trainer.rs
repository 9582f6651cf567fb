//! The epoch loop: Adam on the configured loss ([`super::loss`]), validation NDCG@10 (full ranking)
//! after every epoch, the best epoch checkpointed, early stopping on patience, and the full state
//! saved after every epoch so a killed run resumes exactly ([`super::checkpoint`]).

use super::adam::Adam;
use super::checkpoint::{
    fingerprint, load_resume, prefixed, restore, save_checkpoint, save_resume, ResumeState,
    CACHE_PRESENT, CACHE_VALUES, CHECKPOINT_FILE, RESUME_FILE,
};
use super::config::TrainConfig;
use super::distill::Distiller;
use super::init::{checked_semantic, init_semantic, SemanticInputs};
use super::loss::{step_loss, Distill};
use super::run::{EpochLog, TrainOutcome};
use super::sampler::{epoch_samples, host_batch, trainable_users};
use crate::data::groups::Groups;
use crate::data::{ColdItems, Dataset, Stage};
use crate::eval::{evaluate_with, EvalOptions, Protocol};
use crate::model::init::{seeded_init, snapshot};
use crate::model::names::FROZEN_TABLE;
use crate::model::{ModelConfig, SeqRec, Visibility};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// Everything one training run reads.
pub struct TrainInputs<'a> {
    pub data: &'a Dataset,
    pub groups: &'a Groups,
    pub model: &'a ModelConfig,
    pub train: &'a TrainConfig,
    /// LLM-ESR models (`model.semantic` set) need it; base models ignore it.
    pub semantic: Option<&'a SemanticInputs>,
    /// Where `checkpoint.safetensors` and `resume.safetensors` go.
    pub run_dir: &'a Path,
    /// A progress bar and a line per epoch on stderr.
    pub progress: bool,
    /// Continue from the run folder's resume file, if it has one.
    pub resume: bool,
}

/// A trained model with its best weights loaded, those weights, and how training went.
pub type Trained = (SeqRec, HashMap<String, Tensor>, TrainOutcome);

/// Each epoch draws from its own generator, so epoch e is the same whether or not the run was
/// interrupted before it.
fn epoch_rng(seed: u64, epoch: usize) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Trains a model in `run_dir` and returns it with its best weights loaded. The best weights go to
/// `checkpoint.safetensors` at every improvement; `resume.safetensors` holds the full state after
/// every epoch, and `resume` continues from it (the result equals an uninterrupted run).
pub fn train(inputs: &TrainInputs) -> Result<Trained> {
    let semantic = checked_semantic(inputs.data, inputs.model, inputs.train, inputs.semantic)?;
    let (data, model_cfg, cfg) = (inputs.data, inputs.model, inputs.train);
    let distill_weight = if semantic.is_some() {
        cfg.distill_weight
    } else {
        0.0
    };
    cfg.check_crop(model_cfg.backbone, distill_weight > 0.0)?;
    let held_out = cfg
        .cold
        .map(|c| ColdItems::draw(data.n_items(), c))
        .transpose()?;
    if let Some(c) = &held_out {
        c.check_held_out(data)?;
    }
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
    let checkpoint = inputs.run_dir.join(CHECKPOINT_FILE);
    let resume_path = inputs.run_dir.join(RESUME_FILE);
    let vars = VarMap::new();
    let model = SeqRec::new(
        model_cfg,
        VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
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
    if inputs.resume && resume_path.is_file() {
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
        let bar = crate::progress::bar(
            inputs.progress,
            n_batches as u64,
            &format!("epoch {epoch:>3}"),
            "batches",
            "{msg} ",
        );
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
            let step = step_loss(
                &model,
                host,
                visibility,
                &cfg.loss,
                held_out.as_ref(),
                distill,
                &mut rng,
            )?;
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
                return Err(Error::Training(format!(
                    "diverged at epoch {epoch} (loss {l}); lower the learning rate"
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
        // New items are not launched yet when the model is chosen.
        let valid = evaluate_with(
            &model,
            data,
            inputs.groups,
            Stage::Valid,
            Protocol::Full,
            cfg.seed,
            cfg.eval_batch_size,
            EvalOptions {
                excluded: held_out.as_ref(),
                ..EvalOptions::default()
            },
        )?;
        let ndcg = valid.group("overall").mean("ndcg@10");
        let improved = ndcg > state.best_valid_ndcg10;
        if inputs.progress {
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
        return Err(Error::Training("no epoch was trained".into()));
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
