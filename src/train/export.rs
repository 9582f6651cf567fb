//! A trained run as a bundle: the manifest from the run record, the checkpoint's weights with
//! LLM-ESR's semantic view folded — the frozen language-model table through the (linear) adapter
//! once, so the bundle carries the `[rows, hidden]` result instead of the wide table and the
//! adapter: exact, and far smaller (384 → 64 values per item for MiniLM) — written at the chosen
//! storage types and proven to load.

use super::checkpoint::{load_checkpoint, CHECKPOINT_FILE};
use super::run::RunRecord;
use crate::bundle::{self, Manifest, Precision};
use crate::model::names::{self, ADAPTER, FROZEN_TABLE, SEMANTIC_TABLE};
use crate::model::ModelConfig;
use crate::recommend::Recommender;
use crate::{Error, Result};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::Path;

/// Returns the folded config and weights; models without an unfolded semantic view pass through.
pub fn fold_semantic(
    cfg: &ModelConfig,
    weights: &HashMap<String, Tensor>,
) -> Result<(ModelConfig, HashMap<String, Tensor>)> {
    let mut cfg = cfg.clone();
    let mut out = weights.clone();
    let Some(sem) = cfg.semantic.as_mut() else {
        return Ok((cfg, out));
    };
    if sem.folded || !sem.has_semantic_view() {
        sem.folded = true;
        out.remove(FROZEN_TABLE);
        return Ok((cfg, out));
    }
    let mut take = |name: &str| {
        out.remove(name)
            .ok_or_else(|| Error::Training(format!("checkpoint lacks {name}")))
    };
    let table = take(FROZEN_TABLE)?;
    let [first, second] = ADAPTER;
    let (w0, b0) = (
        take(&format!("{first}.weight"))?,
        take(&format!("{first}.bias"))?,
    );
    let (w1, b1) = (
        take(&format!("{second}.weight"))?,
        take(&format!("{second}.bias"))?,
    );
    let hidden = table.matmul(&w0.t()?)?.broadcast_add(&b0)?;
    let folded = hidden.matmul(&w1.t()?)?.broadcast_add(&b1)?;
    out.insert(SEMANTIC_TABLE.to_string(), folded);
    sem.folded = true;
    Ok((cfg, out))
}

impl RunRecord {
    /// The bundle's manifest: the run's model, catalogue and tail cut, named by dataset, title and
    /// mode.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            name: format!(
                "{} {} {}",
                self.dataset,
                self.title(),
                self.model.mode.label()
            ),
            dataset: self.dataset.clone(),
            model: self.model.clone(),
            items: self.items.clone(),
            item_tail_cut: self.groups.item_cut,
        }
    }
}

/// The run's bundle at the given storage types, checked to load before it is returned.
pub fn export(run: &Path, precision: Precision) -> Result<(RunRecord, Vec<u8>)> {
    let record = RunRecord::load(run)?;
    let checkpoint = run.join(CHECKPOINT_FILE);
    let weights = load_checkpoint(&checkpoint)?;
    let mut found: Vec<&String> = weights.keys().collect();
    found.sort();
    if found
        != names::tensor_names(&record.model)
            .iter()
            .collect::<Vec<_>>()
    {
        return Err(Error::format(
            &checkpoint,
            format!(
                "its tensors are not those of the {} in run.json",
                record.title()
            ),
        ));
    }
    let (model, weights) = fold_semantic(&record.model, &weights)?;
    let mut manifest = record.manifest();
    manifest.model = model;
    let bytes = bundle::write_with(&manifest, &weights, precision)?;
    Recommender::from_bytes(&bytes)
        .map_err(|e| Error::Bundle(format!("the freshly written bundle does not load: {e}")))?;
    Ok((record, bytes))
}
