//! The record of one training run (`run.json` beside the checkpoint): enough to evaluate again or
//! export a bundle without re-reading the dataset.

use super::config::TrainConfig;
use crate::bundle::ItemEntry;
use crate::data::{Dataset, FilterOptions, Groups, RawData};
use crate::eval::report::RunLabels;
use crate::eval::EvalReport;
use crate::model::ModelConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const RUN_FILE: &str = "run.json";

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub dataset: String,
    pub filter: FilterOptions,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub groups: Groups,
    pub items: Vec<ItemEntry>,
    /// The semantic set an LLM-ESR run was trained with (file and fingerprint).
    #[serde(default)]
    pub semantic: Option<String>,
    pub outcome: TrainOutcome,
    /// Test metrics with the best checkpoint, one report per protocol.
    pub test: Vec<EvalReport>,
}

impl RunRecord {
    /// Catalogue entries with training popularity, for the bundle.
    pub fn items_of(data: &Dataset, groups: &Groups) -> Vec<ItemEntry> {
        (1..=data.n_items())
            .map(|i| ItemEntry {
                key: data.item_keys[i].clone(),
                title: data.item_titles[i].clone(),
                popularity: groups.item_popularity[i],
                new: false,
            })
            .collect()
    }

    /// The model as titles name it: backbone, variant, the loss where it is not BCE, and the
    /// ablation in parentheses, e.g. `sasrec llmesr ce (no-sd)`.
    pub fn title(&self) -> String {
        format!(
            "{} {}{}{}",
            self.model.backbone.label(),
            self.model.variant(),
            self.train
                .loss_label()
                .map(|l| format!(" {l}"))
                .unwrap_or_default(),
            self.ablation()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default()
        )
    }

    /// The labels of this run's report rows (the trained model itself: no bundle).
    pub fn labels(&self) -> RunLabels {
        RunLabels {
            dataset: self.dataset.clone(),
            backbone: self.model.backbone.label().into(),
            variant: self.model.variant().into(),
            ablation: self.ablation(),
            quant: None,
            bundle_bytes: None,
            mode: self.model.mode.label().into(),
            loss: self.train.loss_label(),
            cold_share: self.train.cold.map(|c| c.share),
            cold_seed: self.train.cold.map(|c| c.seed),
            seed: self.train.seed,
            preset: self.train.preset_label(),
            ..RunLabels::default()
        }
    }

    /// The run's dataset read from `raw` with the run's filter; refused when the catalogue differs
    /// from the one the run was trained on (another dataset, or other files).
    pub fn dataset_from(&self, raw: &RawData, run: &Path, data_dir: &Path) -> Result<Dataset> {
        let dataset = Dataset::from_raw(raw, &self.filter)?;
        if dataset.n_items() != self.model.n_items {
            return Err(Error::Dataset(format!(
                "{} was trained on {} items; {} gives {}",
                run.display(),
                self.model.n_items,
                data_dir.display(),
                dataset.n_items()
            )));
        }
        Ok(dataset)
    }

    /// How an LLM-ESR run departs from the method, for report rows: `None` for the method itself
    /// and for base models.
    pub fn ablation(&self) -> Option<String> {
        // Cropped training windows are a departure of base models too.
        let crop = (self.train.crop > 0.0).then(|| format!("crop-{}", self.train.crop));
        let Some(sem) = self.model.semantic.as_ref() else {
            return crop;
        };
        let mut parts = Vec::new();
        if self.train.distill_weight == 0.0 {
            parts.push("no-sd");
        }
        match sem.views {
            crate::model::Views::Collaborative => parts.push("no-semantic"),
            crate::model::Views::Semantic => parts.push("no-collaborative"),
            crate::model::Views::Both if !sem.cross_attention => parts.push("no-cross"),
            crate::model::Views::Both if sem.cross_residual => parts.push("cross-residual"),
            crate::model::Views::Both => {}
        }
        if sem.has_id_view() && self.train.id_init == crate::train::IdInit::Random {
            parts.push("random-init");
        }
        if self.train.distill_weight > 0.0 && self.train.teacher == crate::train::Teacher::Cached {
            parts.push("cached-teacher");
        }
        // Similar users ranked by CSLS (`llmesr embed --csls K`): the fingerprint names it.
        let csls = self
            .semantic
            .as_deref()
            .and_then(|s| s.split_once("+csls-"))
            .map(|(_, rest)| format!("csls-{}", rest.split(':').next().unwrap_or_default()));
        if let Some(c) = &csls {
            parts.push(c);
        }
        if let Some(c) = &crop {
            parts.push(c);
        }
        (!parts.is_empty()).then(|| parts.join("+"))
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(RUN_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::format(&path, e))?;
        crate::fsio::write_atomic(&path, &json)
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(RUN_FILE);
        let bytes = crate::fsio::read(&path)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Parse {
            path: path.display().to_string(),
            line: e.line(),
            msg: e.to_string(),
        })
    }
}
