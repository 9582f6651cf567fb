//! The fast inference path shared by the native CLI and the browser: one session in, scores or the
//! top k out, computed on plain buffers straight from the bundle's stored tables.
//!
//! It does only the work the newest position needs (the last block computes one query row, the
//! GRU keeps one state), none on padding that corrected mode masks, reuses its buffers between
//! calls, scores the catalogue from the stored (possibly quantized) rows and keeps the top k in a
//! k-sized heap. The candle model ([`crate::model::SeqRec`]) stays the reference: tests check that
//! both give the same scores for every backbone, variant, mode and table type.

pub mod attention;
pub mod dense;
pub mod encoder;
pub mod projected;
pub mod table;
pub mod text;
pub mod topk;

use crate::bundle::Bundle;
use crate::kernels::dot::add_into;
use crate::model::{names, Mode, ModelConfig, Visibility};
use crate::{Error, Result};
use attention::{CrossAttention, CrossScratch, Reach};
use dense::Weights;
use encoder::{Encoder, EncoderScratch};
use projected::{Gathered, Projected};
use std::sync::Mutex;
use table::ItemTable;
use text::TextTables;

#[derive(Default)]
struct Scratch {
    views: Vec<Vec<f32>>,
    crossed: Vec<Vec<f32>>,
    pad_rows: Vec<Vec<f32>>,
    rows: Vec<usize>,
    ids: Vec<u32>,
    cross: CrossScratch,
    gathered: Gathered,
    enc: EncoderScratch,
    user: Vec<f32>,
    scores: Vec<f32>,
    text_best: Vec<f32>,
    text_row: Vec<f32>,
}

/// Items scored per chunk by [`Engine::top_k`]: 4 KB of scores, small beside the first cache level.
const CHUNK: usize = 1024;

pub struct Engine {
    cfg: ModelConfig,
    /// One table per view, the ID view first (the order of the user vector's halves).
    tables: Vec<ItemTable>,
    pos: Option<Vec<f32>>,
    /// `llm2id` (semantic queries over ID keys) and `id2llm`.
    cross: Option<(CrossAttention, CrossAttention)>,
    /// The cross-attentions' projections of every item and position, when the catalogue is small
    /// enough to keep them.
    projected: Option<Projected>,
    cross_reach: Reach,
    encoder: Encoder,
    /// The bundle's text space, when it carries one: the serving-time text term and new items.
    text: Option<TextTables>,
    /// Buffers reused between calls. Taken out for the length of a call, so concurrent callers
    /// never wait: one that finds it taken works with fresh buffers.
    scratch: Mutex<Scratch>,
}

fn reach_of(v: Visibility) -> Reach {
    match v {
        Visibility::Past => Reach::Past,
        Visibility::All | Visibility::Items => Reach::All,
    }
}

impl Engine {
    /// Builds the engine from a validated bundle; every tensor must be one the config uses, with
    /// the shape it needs.
    pub fn new(bundle: &Bundle) -> Result<Self> {
        let cfg = bundle.manifest.model.clone();
        let d = cfg.hidden;
        let rows = cfg.item_rows();
        let ws = Weights(&bundle.tensors);
        let mut tables = Vec::with_capacity(2);
        let sem = cfg.semantic.as_ref();
        let table = |name: &'static str| -> Result<ItemTable> {
            let q = bundle
                .tensors
                .get(name)
                .ok_or_else(|| Error::Bundle(format!("missing tensor {name}")))?;
            let t = ItemTable::from_qtensor(name, q)?;
            if (t.n_rows(), t.width()) != (rows, d) {
                return Err(Error::Bundle(format!(
                    "tensor {name} has shape [{}, {}], the model config needs [{rows}, {d}]",
                    t.n_rows(),
                    t.width()
                )));
            }
            Ok(t)
        };
        if sem.is_none_or(|s| s.has_id_view()) {
            tables.push(table(names::ID_TABLE)?);
        }
        if let Some(s) = sem.filter(|s| s.has_semantic_view()) {
            if !s.folded {
                return Err(Error::Bundle(
                    "the semantic view is not folded into an item table; re-export the run with `llmesr export`".into(),
                ));
            }
            tables.push(table(names::SEMANTIC_TABLE)?);
        }
        let visibility = Visibility::of(&cfg);
        let pos = if cfg.backbone.is_transformer() {
            Some(ws.get(names::POS_TABLE, &[cfg.pos_rows(), d])?)
        } else {
            None
        };
        let cross = match sem {
            Some(s) if s.uses_cross() => Some((
                CrossAttention::load(&ws, names::CROSS[0], d, s.cross_heads)?,
                CrossAttention::load(&ws, names::CROSS[1], d, s.cross_heads)?,
            )),
            _ => None,
        };
        let cross_reach = match cfg.mode {
            Mode::Corrected => reach_of(visibility),
            Mode::Faithful => Reach::All,
        };
        let encoder = Encoder::load(&cfg, &ws, reach_of(visibility))?;
        let text = bundle
            .manifest
            .text
            .as_ref()
            .map(|t| TextTables::load(bundle, t, &cfg))
            .transpose()?;
        // Every tensor was read above; one the schema does not list means another model's bundle.
        let mut expected = names::tensor_names(&cfg);
        if let Some(t) = &bundle.manifest.text {
            expected.extend(names::text_names(&cfg, t));
        }
        let mut extra: Vec<&String> = bundle
            .tensors
            .keys()
            .filter(|n| !expected.contains(n))
            .collect();
        extra.sort();
        if let Some(name) = extra.first() {
            return Err(Error::Bundle(format!(
                "unexpected tensor {name} for a {} {} model with {} layers",
                cfg.backbone.label(),
                cfg.variant(),
                cfg.n_layers
            )));
        }
        let projected = cross
            .as_ref()
            .and_then(|c| Projected::build(&tables, pos.as_deref(), c));
        Ok(Engine {
            cfg,
            tables,
            pos,
            cross,
            projected,
            cross_reach,
            encoder,
            text,
            scratch: Mutex::new(Scratch::default()),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Width of the user vector (views × hidden).
    pub fn user_width(&self) -> usize {
        self.tables.len() * self.cfg.hidden
    }

    /// Bytes of item tables held in memory (the text table included).
    pub fn table_bytes(&self) -> usize {
        self.tables
            .iter()
            .map(ItemTable::memory_bytes)
            .sum::<usize>()
            + self.text.as_ref().map_or(0, TextTables::memory_bytes)
            + self.projected.as_ref().map_or(0, Projected::memory_bytes)
    }

    /// Whether the cross-attentions' projections of every item are held ([`projected`]): made at
    /// load when they fit [`projected::BUDGET_BYTES`].
    pub fn has_projections(&self) -> bool {
        self.projected.is_some()
    }

    /// Drops the projection tables (their memory, for more work per session), or makes them again
    /// if they fit the budget. Both ways give the same scores up to rounding.
    pub fn set_projections(&mut self, keep: bool) {
        self.projected = if keep {
            self.cross
                .as_ref()
                .and_then(|c| Projected::build(&self.tables, self.pos.as_deref(), c))
        } else {
            None
        };
    }

    /// The bundle's text space, if it has one.
    pub fn text(&self) -> Option<&TextTables> {
        self.text.as_ref()
    }

    /// Replaces the serving-time text term's settings; an error when the bundle has no text space.
    pub fn set_text_boost(&mut self, boost: crate::bundle::TextBoost) -> Result<()> {
        boost.validate()?;
        match self.text.as_mut() {
            Some(t) => {
                t.boost = boost;
                Ok(())
            }
            None => Err(Error::Request(
                "this bundle has no text space (export it with --text-width)".into(),
            )),
        }
    }

    /// The user vector for a session of valid item ids (oldest first; the newest `max_len` kept).
    pub fn user_vector(&self, session: &[u32], out: &mut Vec<f32>) {
        let mut s = self.take_scratch();
        self.encode(session, &mut s, out);
        self.put_scratch(s);
    }

    fn take_scratch(&self) -> Scratch {
        self.scratch
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default()
    }

    fn put_scratch(&self, s: Scratch) {
        if let Ok(mut g) = self.scratch.lock() {
            *g = s;
        }
    }

    fn encode(&self, session: &[u32], s: &mut Scratch, out: &mut Vec<f32>) {
        let cfg = &self.cfg;
        let d = cfg.hidden;
        s.ids.clear();
        match cfg.mask_token() {
            Some(mask) => {
                s.ids
                    .extend_from_slice(&session[session.len().saturating_sub(cfg.max_len - 1)..]);
                s.ids.push(mask);
            }
            None => s
                .ids
                .extend_from_slice(&session[session.len().saturating_sub(cfg.max_len)..]),
        }
        let n = s.ids.len();
        let shift = cfg.position_shift(session.len());
        let pad = match cfg.mode {
            Mode::Faithful => cfg.max_len - n,
            Mode::Corrected => 0,
        };
        let n_views = self.tables.len();
        s.views.resize_with(n_views, Vec::new);
        let scale = (d as f32).sqrt();
        for (t, x) in self.tables.iter().zip(s.views.iter_mut()) {
            x.clear();
            x.resize(n * d, 0.0);
            for (r, &id) in x.chunks_exact_mut(d).zip(&s.ids) {
                t.row_into(id as usize, r);
            }
            if let Some(pos) = &self.pos {
                for (i, r) in x.chunks_exact_mut(d).enumerate() {
                    // Positions count from the oldest kept item, 1..=n, moved by the
                    // paper-faithful BERT4Rec's shift.
                    let at = i + 1 + shift;
                    for (v, p) in r.iter_mut().zip(&pos[at * d..(at + 1) * d]) {
                        *v = *v * scale + p;
                    }
                }
            }
        }
        // Paper-faithful GRU4Rec reads its padding steps too: row 0 of each table, through the
        // cross-attentions when there are any.
        let gru_pad = pad > 0 && !cfg.backbone.is_transformer();
        s.pad_rows.resize_with(n_views, Vec::new);
        if gru_pad {
            for (t, p) in self.tables.iter().zip(s.pad_rows.iter_mut()) {
                p.clear();
                p.resize(d, 0.0);
                t.row_into(0, p);
            }
        }
        if let Some((llm2id, id2llm)) = &self.cross {
            let residual = cfg.semantic.as_ref().is_some_and(|s| s.cross_residual);
            s.rows.clear();
            s.rows.extend(0..n);
            s.crossed.resize_with(2, Vec::new);
            let (a, b) = s.crossed.split_at_mut(1);
            match self.projected.as_ref().filter(|_| !gru_pad) {
                Some(p) => {
                    let first_pos = 1 + shift;
                    for (which, (c, out)) in [(llm2id, &mut a[0]), (id2llm, &mut b[0])]
                        .into_iter()
                        .enumerate()
                    {
                        p.gather(which, &s.ids, first_pos, scale, &mut s.gathered);
                        let g = &s.gathered;
                        c.forward_projected(
                            &g.q,
                            &g.k,
                            &g.v,
                            &s.rows,
                            self.cross_reach,
                            &mut s.cross.att,
                            &mut s.cross.ctx,
                            out,
                        );
                    }
                }
                None => {
                    llm2id.forward(
                        &s.views[1],
                        &s.rows,
                        &s.views[0],
                        self.cross_reach,
                        &mut s.cross,
                        &mut a[0],
                    );
                    id2llm.forward(
                        &s.views[0],
                        &s.rows,
                        &s.views[1],
                        self.cross_reach,
                        &mut s.cross,
                        &mut b[0],
                    );
                }
            }
            if gru_pad {
                let (e_id, e_se) = (s.pad_rows[0].clone(), s.pad_rows[1].clone());
                llm2id.forward(
                    &e_se,
                    &[0],
                    &s.views[0],
                    Reach::All,
                    &mut s.cross,
                    &mut s.pad_rows[0],
                );
                id2llm.forward(
                    &e_id,
                    &[0],
                    &s.views[1],
                    Reach::All,
                    &mut s.cross,
                    &mut s.pad_rows[1],
                );
                if residual {
                    add_into(&mut s.pad_rows[0], &e_id);
                    add_into(&mut s.pad_rows[1], &e_se);
                }
            }
            if residual {
                for (x, e) in s.crossed.iter_mut().zip(&s.views) {
                    add_into(x, e);
                }
            }
            std::mem::swap(&mut s.views, &mut s.crossed);
        }
        out.clear();
        out.resize(n_views * d, 0.0);
        for (v, o) in out.chunks_exact_mut(d).enumerate() {
            match &self.encoder {
                Encoder::Transformer(t) => t.forward(&s.views[v], pad, &mut s.enc, o),
                Encoder::Gru(g) => {
                    let p = gru_pad.then(|| s.pad_rows[v].as_slice());
                    g.forward(&s.views[v], p, pad, &mut s.enc, o)
                }
            }
        }
    }

    /// Scores of a user vector against items `0..=n_items` (index 0 is the padding slot).
    pub fn scores_into(&self, user: &[f32], scores: &mut Vec<f32>) {
        let d = self.cfg.hidden;
        scores.clear();
        scores.resize(self.cfg.n_items + 1, 0.0);
        for (t, u) in self.tables.iter().zip(user.chunks_exact(d)) {
            t.add_scores(u, scores);
        }
    }

    /// Adds one view's part of the scores (`user` is the whole user vector; `scores` has
    /// `n_items + 1` slots): the concat fusion's score is the sum of these parts over the views.
    pub fn add_view_scores(&self, user: &[f32], view: usize, scores: &mut [f32]) {
        let d = self.cfg.hidden;
        self.tables[view].add_scores(&user[view * d..(view + 1) * d], scores);
    }

    /// Scores every item for a session: `n_items + 1` values, index 0 the padding slot; the text
    /// term included when the bundle has one.
    pub fn scores(&self, session: &[u32]) -> Vec<f32> {
        let mut s = self.take_scratch();
        let mut user = Vec::new();
        self.encode(session, &mut s, &mut user);
        let mut scores = Vec::new();
        self.scores_into(&user, &mut scores);
        self.add_text(session, &mut scores, &mut s);
        self.put_scratch(s);
        scores
    }

    fn add_text(&self, session: &[u32], scores: &mut [f32], s: &mut Scratch) {
        if let Some(t) = &self.text {
            t.add_boost(session, scores, &mut s.text_best, &mut s.text_row);
        }
    }

    /// The `k` best `(id, score)`, best first, skipping the sorted ids in `excluded`.
    pub fn top_k(&self, session: &[u32], k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
        let mut s = self.take_scratch();
        let mut user = std::mem::take(&mut s.user);
        self.encode(session, &mut s, &mut user);
        let best = if self.text.as_ref().is_some_and(|t| t.boost.is_on()) {
            // The text term needs every item's similarity to the session before it adds any.
            let mut scores = std::mem::take(&mut s.scores);
            self.scores_into(&user, &mut scores);
            self.add_text(session, &mut scores, &mut s);
            let best = topk::top_k(&scores, k, excluded);
            s.scores = scores;
            best
        } else {
            self.best_for_user(&user, k, excluded, &mut s.scores)
        };
        s.user = user;
        self.put_scratch(s);
        best
    }

    /// Scores a given user vector and returns the top `k` (the scoring half of [`Self::top_k`],
    /// used by the browser benchmark to time it alone).
    pub fn top_k_for_user(&self, user: &[f32], k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
        let mut s = self.take_scratch();
        let best = self.best_for_user(user, k, excluded, &mut s.scores);
        self.put_scratch(s);
        best
    }

    /// The catalogue scored [`CHUNK`] items at a time, each chunk's scores summed over the views
    /// and offered to the top-k heap while they are in cache: no catalogue-sized buffer is
    /// filled, written once per view and read back (16 MB of traffic a call at 1M items).
    fn best_for_user(
        &self,
        user: &[f32],
        k: usize,
        excluded: &[u32],
        buf: &mut Vec<f32>,
    ) -> Vec<(u32, f32)> {
        let d = self.cfg.hidden;
        let n = self.cfg.n_items + 1;
        let queries: Vec<_> = self
            .tables
            .iter()
            .zip(user.chunks_exact(d))
            .map(|(t, u)| t.query(u))
            .collect();
        let mut best = topk::TopK::new(k.min(n - 1));
        // Index 0 is the padding slot, never a candidate.
        let mut first = 1;
        while first < n {
            let len = CHUNK.min(n - first);
            buf.clear();
            buf.resize(len, 0.0);
            for (t, q) in self.tables.iter().zip(&queries) {
                t.add_scores_from(q, first, buf);
            }
            best.offer(first as u32, buf, excluded);
            first += len;
        }
        best.into_sorted()
    }

    /// Appends new items (one [`text::NewRows`] each, from [`TextTables::new_rows`]) to every
    /// table, before BERT4Rec's mask row; they get the next ids.
    pub fn add_items(&mut self, rows: &[text::NewRows]) {
        if rows.is_empty() {
            return;
        }
        let at = self.cfg.n_items + 1;
        let d = self.cfg.hidden;
        let sem = self.cfg.semantic.as_ref();
        let (has_id, has_semantic) = (
            sem.is_none_or(|s| s.has_id_view()),
            sem.is_some_and(|s| s.has_semantic_view()),
        );
        // The ID view's table comes first, the semantic view's after it.
        if has_id {
            let values: Vec<f32> = rows.iter().flat_map(|r| r.id.iter().copied()).collect();
            self.tables[0].insert_rows(at, &values);
        }
        if has_semantic {
            let values: Vec<f32> = rows
                .iter()
                .flat_map(|r| r.semantic.clone().unwrap_or_else(|| vec![0.0; d]))
                .collect();
            self.tables[usize::from(has_id)].insert_rows(at, &values);
        }
        if let Some(t) = self.text.as_mut() {
            t.insert(at, rows);
        }
        self.cfg.n_items += rows.len();
        if self.projected.is_some() {
            self.set_projections(true);
        }
    }

    /// Number of item views (tables): 1 or 2, the semantic view last.
    pub fn n_views(&self) -> usize {
        self.tables.len()
    }

    /// Row `id` of one view's table, dequantized.
    pub fn item_view(&self, id: u32, view: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.cfg.hidden];
        self.tables[view].row_into(id as usize, &mut out);
        out
    }

    /// Row `id` of every table, dequantized and concatenated (the item's vector).
    pub fn item_vector(&self, id: u32, out: &mut Vec<f32>) {
        let d = self.cfg.hidden;
        out.clear();
        out.resize(self.tables.len() * d, 0.0);
        for (t, o) in self.tables.iter().zip(out.chunks_exact_mut(d)) {
            t.row_into(id as usize, o);
        }
    }
}
