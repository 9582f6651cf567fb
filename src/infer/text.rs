//! A bundle's text space at serving time: the items' normalised text vectors, the map that places
//! a text-model vector in that space, and the text term that raises long-tail candidates similar
//! to the session's newest items ([`crate::bundle::TextBoost`]).

use super::dense::{Dense, Weights};
use super::table::ItemTable;
use crate::bundle::{Bundle, TextBoost, TextSpace};
use crate::kernels::dot::dot;
use crate::model::names::{TEXT_MAP, TEXT_TABLE};
use crate::{Error, Result};

pub struct TextTables {
    /// One row per item id (row 0, and BERT4Rec's mask row, are zeros).
    table: ItemTable,
    /// Text-model vector → text space, before normalising.
    map: Dense,
    /// Training popularity per item id (index 0 unused), for the term's routing.
    popularity: Vec<u32>,
    pub boost: TextBoost,
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalise(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

impl TextTables {
    pub fn load(bundle: &Bundle, space: &TextSpace, rows: usize) -> Result<Self> {
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
        let popularity = std::iter::once(0)
            .chain(bundle.manifest.items.iter().map(|e| e.popularity))
            .collect();
        Ok(TextTables {
            table,
            map,
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

    pub fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }
}
