//! The record of one training run (`run.json` beside the checkpoint): enough to evaluate again or
//! export a bundle without re-reading the dataset.

use super::config::TrainConfig;
use super::trainer::TrainOutcome;
use crate::bundle::{ItemEntry, Manifest};
use crate::data::{Dataset, FilterOptions, Groups};
use crate::eval::EvalReport;
use crate::model::ModelConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const RUN_FILE: &str = "run.json";
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const RESUME_FILE: &str = "resume.safetensors";

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
            })
            .collect()
    }

    pub fn manifest(&self) -> Manifest {
        Manifest {
            name: format!(
                "{} {} {}{}{} {}",
                self.dataset,
                self.model.backbone.label(),
                self.model.variant(),
                self.train
                    .loss_label()
                    .map(|l| format!(" {l}"))
                    .unwrap_or_default(),
                self.ablation()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default(),
                self.model.mode.label()
            ),
            dataset: self.dataset.clone(),
            model: self.model.clone(),
            items: self.items.clone(),
            item_tail_cut: self.groups.item_cut,
        }
    }

    /// How an LLM-ESR run departs from the method, for report rows: `None` for the method itself
    /// and for base models.
    pub fn ablation(&self) -> Option<String> {
        let sem = self.model.semantic.as_ref()?;
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
        (!parts.is_empty()).then(|| parts.join("+"))
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Config(e.to_string()))?;
        crate::fsio::write_atomic(&dir.join(RUN_FILE), &json)
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
