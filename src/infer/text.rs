//! A bundle's text space at serving time: the items' normalised text vectors, the map that places
//! a text-model vector in that space, and the text term that raises long-tail candidates similar
//! to the session's newest items ([`crate::bundle::TextBoost`]).

use super::dense::{Dense, Weights};
use super::table::ItemTable;
use crate::bundle::{Bundle, NewItems, TextBoost, TextSpace};
use crate::kernels::dot::dot;
use crate::model::names::{self, ID_MAP, SEMANTIC_MAP, TEXT_MAP, TEXT_TABLE};
use crate::model::ModelConfig;
use crate::{Error, Result};

pub struct TextTables {
    /// One row per item id (row 0, and BERT4Rec's mask row, are zeros).
    table: ItemTable,
    /// Text-model vector → text space, before normalising.
    map: Dense,
    /// Text-model vector → a new item's semantic row (the folded adapter) and ID row, where the
    /// bundle can place new items.
    sem_map: Option<Dense>,
    id_map: Option<Dense>,
    input_dim: usize,
    model: String,
    new_items: Option<NewItems>,
    /// Training popularity per item id (index 0 unused), for the term's routing.
    popularity: Vec<u32>,
    pub boost: TextBoost,
}

/// The rows that place one new item (see [`TextTables::new_rows`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRows {
    pub id: Vec<f32>,
    /// `None` for a model without a semantic view.
    pub semantic: Option<Vec<f32>>,
    pub text: Vec<f32>,
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalise(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

impl TextTables {
    pub fn load(bundle: &Bundle, space: &TextSpace, cfg: &ModelConfig) -> Result<Self> {
        let rows = cfg.item_rows();
        let q = bundle
            .tensors
            .get(TEXT_TABLE)
            .ok_or_else(|| Error::Bundle(format!("missing tensor {TEXT_TABLE}")))?;
        let table = ItemTable::from_qtensor(TEXT_TABLE, q)?;
        if (table.n_rows(), table.width()) != (rows, space.width) {
            return Err(Error::Bundle(format!(
                "tensor {TEXT_TABLE} has shape [{}, {}], the text space needs [{rows}, {}]",
                table.n_rows(),
                table.width(),
                space.width
            )));
        }
        let ws = Weights(&bundle.tensors);
        let map = Dense::load(&ws, TEXT_MAP, space.input_dim, space.width, true)?;
        let present = names::text_names(cfg, space);
        let optional = |name: &str| -> Result<Option<Dense>> {
            if present.iter().any(|n| n == &format!("{name}.weight")) {
                Ok(Some(Dense::load(
                    &ws,
                    name,
                    space.input_dim,
                    cfg.hidden,
                    true,
                )?))
            } else {
                Ok(None)
            }
        };
        let (sem_map, id_map) = (optional(SEMANTIC_MAP)?, optional(ID_MAP)?);
        let popularity = std::iter::once(0)
            .chain(bundle.manifest.items.iter().map(|e| e.popularity))
            .collect();
        Ok(TextTables {
            table,
            map,
            sem_map,
            id_map,
            input_dim: space.input_dim,
            model: space.model.clone(),
            new_items: space.new_items.clone(),
            popularity,
            boost: space.boost,
        })
    }

    /// Item `id`'s row of the text table, dequantized.
    pub fn row(&self, id: u32) -> Vec<f32> {
        let mut out = vec![0f32; self.table.width()];
        self.table.row_into(id as usize, &mut out);
        out
    }

    /// A text-model vector placed in the text space (unit length), as the items' rows were.
    pub fn place(&self, vector: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        self.map.forward(vector, &mut out);
        normalise(&mut out);
        out
    }

    /// Adds the text term to `scores` (`n_items + 1` slots) for a session of valid ids. `best` and
    /// `row` are scratch buffers.
    pub fn add_boost(
        &self,
        session: &[u32],
        scores: &mut [f32],
        best: &mut Vec<f32>,
        row: &mut Vec<f32>,
    ) {
        let b = self.boost;
        if !b.is_on() {
            return;
        }
        let recent = &session[session.len().saturating_sub(b.recent)..];
        best.clear();
        best.resize(scores.len(), f32::NEG_INFINITY);
        row.resize(self.table.width(), 0.0);
        let mut sims = vec![0f32; scores.len()];
        for &id in recent {
            self.table.row_into(id as usize, row);
            sims.iter_mut().for_each(|s| *s = 0.0);
            self.table.add_scores(row, &mut sims);
            for (m, s) in best.iter_mut().zip(&sims) {
                *m = m.max(*s);
            }
        }
        for (i, (s, m)) in scores.iter_mut().zip(best.iter()).enumerate().skip(1) {
            if b.below_popularity == 0 || self.popularity[i] < b.below_popularity {
                *s += b.weight * m;
            }
        }
    }

    /// The text model whose vectors this space takes, and their width.
    pub fn model(&self) -> (&str, usize) {
        (&self.model, self.input_dim)
    }

    /// How the bundle places new items, when it can.
    pub fn new_items(&self) -> Option<&NewItems> {
        self.new_items.as_ref()
    }

    /// A new item's rows from its text vector: the ID view's (zeros without an ID map), the
    /// semantic view's (the folded adapter), and its text-space row.
    pub fn new_rows(&self, vector: &[f32], hidden: usize) -> NewRows {
        let apply = |m: &Option<Dense>| {
            m.as_ref().map(|m| {
                let mut out = Vec::new();
                m.forward(vector, &mut out);
                out
            })
        };
        NewRows {
            id: apply(&self.id_map).unwrap_or_else(|| vec![0.0; hidden]),
            semantic: apply(&self.sem_map),
            text: self.place(vector),
        }
    }

    /// Inserts new items' text rows before row `at`; they have no training popularity.
    pub fn insert(&mut self, at: usize, rows: &[NewRows]) {
        let values: Vec<f32> = rows.iter().flat_map(|r| r.text.iter().copied()).collect();
        self.table.insert_rows(at, &values);
        self.popularity.extend(std::iter::repeat_n(0, rows.len()));
    }

    pub fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }
}
