//! LLM-ESR's cross-attention input projections of every item and every position, made once at
//! load, so that a session gathers its queries, keys and values instead of multiplying them.
//!
//! The cross-attentions project their inputs without a bias, and an input row is
//! `√d · e_item + p_position` (or `e_item` alone without positions, GRU4Rec), so each projection
//! is `√d · W e_item + W p_position`: six of a 200-item session's eight cross-attention products
//! become lookups. The values differ from projecting the sum only in rounding (the fast-path
//! parity tests hold them to the candle model). The tables cost `2 · 3 · rows · d` floats, so they
//! are made only for catalogues that fit [`BUDGET_BYTES`]; larger ones multiply as before.

use super::attention::CrossAttention;
use super::table::ItemTable;

/// The most memory the tables may take: a 64-wide model's catalogue of about 20,000 items.
pub const BUDGET_BYTES: usize = 32 << 20;

/// Queries, keys and values of one cross-attention, for every item row and every position row.
struct Tables {
    /// `[q, k, v]`, each `rows × d`: the query view's rows through Q, the other view's through K, V.
    items: [Vec<f32>; 3],
    /// The same projections of the position table, when the backbone has one.
    pos: Option<[Vec<f32>; 3]>,
}

/// The tables of both cross-attentions: `llm2id` (semantic queries over ID keys), then `id2llm`.
pub struct Projected {
    cross: [Tables; 2],
    d: usize,
}

/// One cross-attention's gathered inputs for a session.
#[derive(Default)]
pub struct Gathered {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

impl Projected {
    /// `None` when the catalogue's tables would not fit the budget. `tables` are the ID view's and
    /// the semantic view's; `pos` the position table (rows × d), if any.
    pub fn build(
        tables: &[ItemTable],
        pos: Option<&[f32]>,
        cross: &(CrossAttention, CrossAttention),
    ) -> Option<Self> {
        let [id, semantic] = tables else {
            return None;
        };
        let d = id.width();
        let rows = id.n_rows() + pos.map_or(0, |p| p.len() / d);
        if 2 * 3 * rows * d * std::mem::size_of::<f32>() > BUDGET_BYTES {
            return None;
        }
        let dequantized = |t: &ItemTable| {
            let mut all = vec![0f32; t.n_rows() * d];
            for (i, r) in all.chunks_exact_mut(d).enumerate() {
                t.row_into(i, r);
            }
            all
        };
        let (e_id, e_sem) = (dequantized(id), dequantized(semantic));
        let (llm2id, id2llm) = cross;
        let tables = |c: &CrossAttention, query: &[f32], kv: &[f32]| Tables {
            items: c.project(query, kv),
            pos: pos.map(|p| c.project(p, p)),
        };
        Some(Projected {
            cross: [tables(llm2id, &e_sem, &e_id), tables(id2llm, &e_id, &e_sem)],
            d,
        })
    }

    pub fn memory_bytes(&self) -> usize {
        let floats: usize = self
            .cross
            .iter()
            .flat_map(|t| t.items.iter().chain(t.pos.iter().flatten()))
            .map(Vec::len)
            .sum();
        floats * std::mem::size_of::<f32>()
    }

    /// The inputs of cross-attention `which` (0: `llm2id`, 1: `id2llm`) for the items `ids`,
    /// at position rows `first_pos..` (scaled by `scale`, as the encoder's input rows are).
    pub fn gather(
        &self,
        which: usize,
        ids: &[u32],
        first_pos: usize,
        scale: f32,
        g: &mut Gathered,
    ) {
        let d = self.d;
        let t = &self.cross[which];
        for (out, (table, pos)) in [&mut g.q, &mut g.k, &mut g.v].into_iter().zip(
            t.items
                .iter()
                .zip([0, 1, 2].map(|m| t.pos.as_ref().map(|p| &p[m]))),
        ) {
            out.clear();
            out.resize(ids.len() * d, 0.0);
            for (i, (o, &id)) in out.chunks_exact_mut(d).zip(ids).enumerate() {
                let e = &table[id as usize * d..(id as usize + 1) * d];
                match pos {
                    Some(p) => {
                        let at = first_pos + i;
                        for ((o, e), p) in o.iter_mut().zip(e).zip(&p[at * d..(at + 1) * d]) {
                            *o = e * scale + p;
                        }
                    }
                    None => o.copy_from_slice(e),
                }
            }
        }
    }
}
