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
                "{} {:?} {}",
                self.dataset,
                self.model.backbone,
                self.model.mode.label()
            )
            .to_lowercase(),
            dataset: self.dataset.clone(),
            model: self.model.clone(),
            items: self.items.clone(),
            item_tail_cut: self.groups.item_cut,
        }
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
