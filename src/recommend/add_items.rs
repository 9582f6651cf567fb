//! New items after training, from their text alone: each item's text-model vector goes through
//! the bundle's maps to its ID, semantic and text rows ([`crate::infer::text::TextTables::new_rows`])
//! and the rows join the tables under the next ids; the ids of the items already there never
//! change. In memory for the browser (`rec.addItems`), or written as a new bundle for the CLI
//! (`llmesr add-items`); both place a row the same way.

use super::Recommender;
use crate::bundle::{self, Bundle, ItemEntry};
use crate::infer::text::NewRows;
use crate::model::names::{ID_TABLE, SEMANTIC_TABLE, TEXT_TABLE};
use crate::{Error, Result};
use candle_core::Tensor;
use std::collections::HashSet;

/// One item to add: its catalogue key and title, and its vector from the bundle's text model.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub key: String,
    pub title: String,
    pub vector: Vec<f32>,
}

fn refuse(msg: String) -> Error {
    Error::Request(msg)
}

impl Recommender {
    /// Every item checked, then placed: the rows of each, or the first problem, named.
    fn place_new(&self, items: &[NewItem]) -> Result<Vec<NewRows>> {
        let text = self.engine().text().ok_or_else(|| {
            refuse("this bundle cannot place new items: it has no text space (export it with --text-width and --new-item-id)".into())
        })?;
        if text.new_items().is_none() {
            return Err(refuse(
                "this bundle cannot place new items: it was exported without --new-item-id".into(),
            ));
        }
        if items.is_empty() {
            return Err(refuse("no items to add".into()));
        }
        let (model, dim) = text.model();
        let existing: HashSet<&str> = self
            .manifest()
            .items
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let which = format!("new item {} ({:?})", i + 1, item.key);
            if item.key.trim().is_empty() {
                return Err(refuse(format!("new item {}: the key is empty", i + 1)));
            }
            if existing.contains(item.key.as_str()) {
                return Err(refuse(format!(
                    "{which}: the catalogue already has this key"
                )));
            }
            if !seen.insert(item.key.as_str()) {
                return Err(refuse(format!("{which}: the key is given twice")));
            }
            if item.vector.len() != dim {
                return Err(refuse(format!(
                    "{which}: the vector has {} values; the bundle's text model {model} gives {dim}",
                    item.vector.len()
                )));
            }
            if let Some(j) = item.vector.iter().position(|v| !v.is_finite()) {
                return Err(refuse(format!(
                    "{which}: value {j} of the vector is {}, not a finite number",
                    item.vector[j]
                )));
            }
        }
        let hidden = self.engine().config().hidden;
        Ok(items
            .iter()
            .map(|i| text.new_rows(&i.vector, hidden))
            .collect())
    }

    fn entries(items: &[NewItem]) -> impl Iterator<Item = ItemEntry> + '_ {
        items.iter().map(|i| ItemEntry {
            key: i.key.clone(),
            title: i.title.clone(),
            popularity: 0,
            new: true,
        })
    }

    /// Adds items in memory and returns their ids. Nothing changes when any item is refused.
    pub fn add_items(&mut self, items: &[NewItem]) -> Result<Vec<u32>> {
        let rows = self.place_new(items)?;
        let first = self.n_items() as u32 + 1;
        self.engine.add_items(&rows);
        self.manifest.model.n_items += items.len();
        self.manifest.items.extend(Self::entries(items));
        Ok((first..first + items.len() as u32).collect())
    }
}

/// Inserts `rows` (`[k, width]` values) into a `[rows, width]` table before row `at`.
fn insert_rows(table: &Tensor, at: usize, rows: Vec<f32>) -> Result<Tensor> {
    let width = table.dim(1)?;
    let new = Tensor::from_vec(rows.clone(), (rows.len() / width, width), table.device())?;
    let (head, tail) = (
        table.narrow(0, 0, at)?,
        table.narrow(0, at, table.dim(0)? - at)?,
    );
    Ok(Tensor::cat(&[&head, &new, &tail], 0)?)
}

/// The bundle `bytes` with `items` appended (their ids follow the last item's), at the same
/// storage types; checked to load before it is returned.
pub fn add_items_to_bundle(bytes: &[u8], items: &[NewItem]) -> Result<Vec<u8>> {
    let rec = Recommender::from_bytes(bytes)?;
    let rows = rec.place_new(items)?;
    let b = Bundle::from_bytes(bytes)?;
    let mut tensors = b.dequantized()?;
    let at = b.manifest.model.n_items + 1;
    type Part = fn(&NewRows) -> Option<Vec<f32>>;
    let parts: [(&str, Part); 3] = [
        (ID_TABLE, |r| Some(r.id.clone())),
        (SEMANTIC_TABLE, |r| r.semantic.clone()),
        (TEXT_TABLE, |r| Some(r.text.clone())),
    ];
    for (name, part) in parts {
        let Some(table) = tensors.get(name) else {
            continue;
        };
        let values: Option<Vec<Vec<f32>>> = rows.iter().map(&part).collect();
        let values = values.ok_or_else(|| {
            Error::Bundle(format!(
                "the bundle has {name} but no map to place its rows"
            ))
        })?;
        let t = insert_rows(table, at, values.concat())?;
        tensors.insert(name.to_string(), t);
    }
    let mut manifest = b.manifest.clone();
    manifest.model.n_items += items.len();
    manifest.items.extend(Recommender::entries(items));
    let out = bundle::write_with(&manifest, &tensors, b.precision)?;
    Recommender::from_bytes(&out)
        .map_err(|e| Error::Bundle(format!("the bundle with new items does not load: {e}")))?;
    Ok(out)
}
