//! What a run keeps on disk besides its record: the best weights (`checkpoint.safetensors`) and,
//! after every epoch, the full training state (`resume.safetensors`: weights, Adam moments, the
//! best weights, the teacher cache and the epoch logs), with the fingerprint that decides whether
//! a resumed run is the same run.

use super::adam::Adam;
use super::config::TrainConfig;
use super::init::SemanticInputs;
use super::run::EpochLog;
use crate::data::Dataset;
use crate::model::init::snapshot;
use crate::model::ModelConfig;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const RESUME_FILE: &str = "resume.safetensors";

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

pub(crate) fn restore(vars: &VarMap, weights: &HashMap<String, Tensor>) -> candle_core::Result<()> {
    let data = vars.data().lock().expect("var map lock poisoned");
    for (k, v) in data.iter() {
        let w = weights
            .get(k)
            .ok_or_else(|| candle_core::Error::Msg(format!("saved weights lack {k}")))?;
        v.set(w)?;
    }
    Ok(())
}

/// What is saved after every epoch so a killed run can continue exactly where it left off.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ResumeState {
    pub fingerprint: String,
    pub epochs_done: usize,
    pub adam_step: u64,
    pub best_epoch: usize,
    pub best_valid_ndcg10: f64,
    pub logs: Vec<EpochLog>,
}

const STATE_TENSOR: &str = "state.json";
pub(crate) const CACHE_VALUES: &str = "distill.cache";
pub(crate) const CACHE_PRESENT: &str = "distill.present";

/// Everything that must match for a resumed run to be the same run.
pub(crate) fn fingerprint(
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
    if let Some(c) = cfg.cold {
        fp["cold"] = serde_json::json!(c);
    }
    if cfg.crop > 0.0 {
        fp["crop"] = serde_json::json!(cfg.crop);
    }
    fp.to_string()
}

pub(crate) fn save_resume(
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
    let json = serde_json::to_vec(state).map_err(|e| Error::format(path, e))?;
    let n = json.len();
    all.insert(
        STATE_TENSOR.into(),
        Tensor::from_vec(json, n, &Device::Cpu)?,
    );
    save_checkpoint(&all, path)
}

pub(crate) fn load_resume(path: &Path) -> Result<(ResumeState, HashMap<String, Tensor>)> {
    let all = load_checkpoint(path)?;
    let bad = |m: String| Error::format(path, m);
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

pub(crate) fn prefixed(all: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    all.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
        .collect()
}

/// The model of a finished run: its config from `run.json` (`record`), its best weights from the
/// run folder's checkpoint.
pub fn load_model(run: &Path, record: &super::RunRecord) -> Result<crate::model::SeqRec> {
    let path = run.join(CHECKPOINT_FILE);
    let weights = load_checkpoint(&path)?;
    let vb = candle_nn::VarBuilder::from_tensors(weights, candle_core::DType::F32, &Device::Cpu);
    crate::model::SeqRec::new(&record.model, vb)
        .map_err(|e| Error::format(&path, format!("does not match its run.json: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::loss::LossKind;

    fn data() -> Dataset {
        Dataset {
            name: "t".into(),
            item_keys: (0..=4).map(|i| i.to_string()).collect(),
            item_titles: (0..=4).map(|i| i.to_string()).collect(),
            user_keys: vec!["a".into()],
            sequences: vec![vec![1, 2, 3, 4]],
        }
    }

    #[test]
    fn checkpoints_round_trip_and_a_stranger_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        let w = HashMap::from([(
            "a".to_string(),
            Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu).unwrap(),
        )]);
        save_checkpoint(&w, &path).unwrap();
        let back = load_checkpoint(&path).unwrap();
        assert_eq!(back["a"].to_vec1::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
        // A checkpoint is no resume file: the error names the file and why.
        let err = load_resume(&path).err().unwrap().to_string();
        assert!(
            err.contains(CHECKPOINT_FILE) && err.contains("not a resume file"),
            "{err}"
        );
    }

    #[test]
    fn the_fingerprint_follows_what_changes_the_run_and_not_its_length() {
        let d = data();
        let model = ModelConfig::sasrec(4);
        let cfg = TrainConfig::default();
        let fp = fingerprint(&d, &model, &cfg, None);
        let longer = TrainConfig {
            epochs: 7,
            patience: 3,
            ..cfg.clone()
        };
        assert_eq!(fingerprint(&d, &model, &longer, None), fp);
        // BCE runs keep the fingerprint they had before other losses existed.
        assert!(!fp.contains("\"loss\""), "{fp}");
        let mut ce = cfg.clone();
        ce.loss.kind = LossKind::Ce;
        assert_ne!(fingerprint(&d, &model, &ce, None), fp);
        let lr = TrainConfig { lr: 2e-3, ..cfg };
        assert_ne!(fingerprint(&d, &model, &lr, None), fp);
    }
}
