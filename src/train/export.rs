//! A trained run as a bundle: the manifest from the run record, the checkpoint's weights with
//! LLM-ESR's semantic view folded — the frozen language-model table through the (linear) adapter
//! once, so the bundle carries the `[rows, hidden]` result instead of the wide table and the
//! adapter: exact, and far smaller (384 → 64 values per item for MiniLM) — written at the chosen
//! storage types and proven to load.

use super::checkpoint::{load_checkpoint, CHECKPOINT_FILE};
use super::new_items;
use super::run::RunRecord;
use super::text_space::{self, TextInputs};
use crate::bundle::{self, Manifest, NewItemId, NewItems, Precision, RunInfo, TextBoost};
use crate::data::ColdItems;
use crate::infer::dense::Dense;
use crate::model::names::{self, ADAPTER, FROZEN_TABLE, ID_TABLE, SEMANTIC_TABLE};
use crate::model::ModelConfig;
use crate::recommend::Recommender;
use crate::semantic::SemanticSet;
use crate::{Error, Result};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
    /// The catalogue, a cold-start run's held-out items marked new.
    fn new_items_marked(&self) -> Vec<crate::bundle::ItemEntry> {
        let cold = self
            .train
            .cold
            .and_then(|c| ColdItems::draw(self.model.n_items, c).ok());
        let mut items = self.items.clone();
        for (i, item) in items.iter_mut().enumerate() {
            item.new = cold.as_ref().is_some_and(|c| c.contains(i as u32 + 1));
        }
        items
    }

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
            items: self.new_items_marked(),
            item_tail_cut: self.groups.item_cut,
            text: None,
            run: Some(RunInfo {
                loss: self.train.loss_label(),
                ablation: self.ablation(),
                seed: self.train.seed,
                cold: self.train.cold,
                preset: self.train.preset_label(),
            }),
        }
    }
}

/// The text space a bundle should carry.
#[derive(Debug, Clone)]
pub struct TextExport {
    pub width: usize,
    pub boost: TextBoost,
    /// Where the items' text-model vectors come from for a run without a semantic view (an LLM-ESR
    /// run's checkpoint holds them in its frozen table).
    pub semantic: Option<PathBuf>,
    /// Keep the maps that place new items, their ID rows made as this says.
    pub new_items: Option<NewItemId>,
    /// What an item is called in the prompts its text vector comes from.
    pub noun: String,
}

/// How a run is exported.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    pub precision: Precision,
    pub text: Option<TextExport>,
}

/// The text model of a run's semantic set, from the fingerprint `run.json` records
/// (`path (model[+csls-K]:checksum)`).
fn text_model_of(record: &RunRecord) -> Option<String> {
    let fp = record.semantic.as_deref()?.rsplit_once('(')?.1;
    let model = fp.split(':').next()?.split("+csls-").next()?;
    (!model.is_empty()).then(|| model.to_string())
}

/// The items' text-model vectors (row `i` for item id `i + 1`), their width and the text model.
fn text_vectors(
    record: &RunRecord,
    weights: &HashMap<String, Tensor>,
    t: &TextExport,
) -> Result<(Vec<f32>, usize, String)> {
    let n = record.model.n_items;
    if let Some(path) = &t.semantic {
        let set = SemanticSet::load(path)?;
        let rows: HashMap<&str, usize> = set
            .item_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let mut out = Vec::with_capacity(n * set.dim);
        for item in &record.items {
            let r = *rows.get(item.key.as_str()).ok_or_else(|| {
                Error::format(path, format!("has no vector for item {:?}", item.key))
            })?;
            out.extend_from_slice(&set.items[r * set.dim..(r + 1) * set.dim]);
        }
        return Ok((out, set.dim, set.provenance.model));
    }
    match (weights.get(FROZEN_TABLE), text_model_of(record)) {
        (Some(table), Some(model)) => {
            let dim = table.dim(1)?;
            let items = table.narrow(0, 1, n)?.flatten_all()?.to_vec1::<f32>()?;
            Ok((items, dim, model))
        }
        _ => Err(Error::Config(format!(
            "a text space needs the items' text vectors: {} has no semantic view, so name its semantic set with --semantic FILE",
            record.title()
        ))),
    }
}

/// Overwrites the ID rows of a cold-start run's new items: the ID map applied to their text
/// vectors, or zeros without one (the model never trained those rows).
fn place_held_out_ids(
    weights: &mut HashMap<String, Tensor>,
    cold: &ColdItems,
    id_map: Option<&(Dense, usize)>,
    vectors: Option<&Vec<f32>>,
) -> Result<()> {
    let Some(table) = weights.get(ID_TABLE) else {
        return Ok(());
    };
    let (rows, hidden) = table.dims2()?;
    let mut values: Vec<f32> = table.flatten_all()?.to_vec1()?;
    for &c in cold.ids() {
        let row = &mut values[c as usize * hidden..(c as usize + 1) * hidden];
        match (id_map, vectors) {
            (Some((map, dim)), Some(v)) => {
                let mut out = Vec::new();
                map.forward(&v[(c as usize - 1) * dim..c as usize * dim], &mut out);
                row.copy_from_slice(&out);
            }
            _ => row.fill(0.0),
        }
    }
    weights.insert(
        ID_TABLE.to_string(),
        Tensor::from_vec(values, (rows, hidden), table.device())?,
    );
    Ok(())
}

/// The run's bundle at the given storage types, checked to load before it is returned.
pub fn export(run: &Path, precision: Precision) -> Result<(RunRecord, Vec<u8>)> {
    export_with(
        run,
        &ExportOptions {
            precision,
            text: None,
        },
    )
}

/// The run's bundle as `opts` asks, checked to load before it is returned.
pub fn export_with(run: &Path, opts: &ExportOptions) -> Result<(RunRecord, Vec<u8>)> {
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
    let mut weights = weights;
    let held_out = record
        .train
        .cold
        .map(|c| ColdItems::draw(record.model.n_items, c))
        .transpose()?;
    let mut text = None;
    let mut id_map = None;
    if let Some(t) = &opts.text {
        let (vectors, dim, model) = text_vectors(&record, &weights, t)?;
        let sem = record.model.semantic.as_ref();
        let mut maps = Vec::new();
        if t.new_items.is_some() && sem.is_some_and(|s| s.has_semantic_view()) {
            maps.extend(new_items::semantic_map(&weights)?);
        }
        if let Some(kind) = t.new_items.filter(|_| sem.is_none_or(|s| s.has_id_view())) {
            let rows: Vec<Vec<f32>> = weights[ID_TABLE].to_vec2()?;
            if let Some(m) = new_items::id_map(kind, &vectors, dim, &rows, held_out.as_ref())? {
                // The inference path's map, so held-out rows equal what add-items would make.
                id_map = Some((
                    Dense::from_parts(
                        m[0].1.flatten_all()?.to_vec1::<f32>()?,
                        Some(m[1].1.to_vec1::<f32>()?),
                        dim,
                        record.model.hidden,
                    ),
                    dim,
                ));
                maps.extend(m);
            }
        }
        let (space, tensors) = text_space::build(&TextInputs {
            model,
            vectors: &vectors,
            dim,
            rows: record.model.item_rows(),
            width: t.width,
            boost: t.boost,
            new_items: t.new_items.map(|id| NewItems {
                id,
                noun: t.noun.clone(),
            }),
        })?;
        text = Some((space, tensors, maps, vectors));
    }
    if let Some(c) = &held_out {
        // The run never saw its new items: their ID rows are placed as add-items would place them.
        place_held_out_ids(
            &mut weights,
            c,
            id_map.as_ref(),
            text.as_ref().map(|t| &t.3),
        )?;
    }
    let (model, mut weights) = fold_semantic(&record.model, &weights)?;
    let mut manifest = record.manifest();
    manifest.model = model;
    if let Some((space, tensors, maps, _)) = text {
        manifest.text = Some(space);
        weights.extend(tensors);
        weights.extend(maps);
    }
    let bytes = bundle::write_with(&manifest, &weights, opts.precision)?;
    Recommender::from_bytes(&bytes)
        .map_err(|e| Error::Bundle(format!("the freshly written bundle does not load: {e}")))?;
    Ok((record, bytes))
}
