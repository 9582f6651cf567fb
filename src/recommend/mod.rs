//! The recommender used natively and in the browser: a bundle in, top-k items for a session out.

pub mod add_items;
pub mod rerank;

use crate::bundle::{Bundle, ItemEntry, Manifest, Precision};
use crate::infer::Engine;
use crate::{Error, Result};
use serde::Serialize;

/// One recommended item.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recommendation {
    pub id: u32,
    pub key: String,
    pub title: String,
    pub score: f32,
    /// Whether the item is in the long tail (popularity below the bundle's cut).
    pub tail: bool,
    /// Whether the item is new: added after training from its text alone.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub new: bool,
    /// The session item nearest to this one (cosine of item vectors, the semantic view where the
    /// model has one): a short "because you added …" for the page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub because: Option<u32>,
}

/// How `recommend_with` serves a session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Leave session items out of the results.
    pub exclude_session: bool,
    /// Tail exposure ([`rerank::tail_rerank`]): 0 is the model's ranking.
    pub tail_weight: f32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            exclude_session: true,
            tail_weight: 0.0,
        }
    }
}

/// Candidates re-ranked for tail exposure: the model's best `max(POOL, 20k)`. Wide enough that a
/// model whose top 100 is all head items still has tail items to offer.
const POOL: usize = 500;

/// A loaded model and catalogue, ready to answer sessions.
pub struct Recommender {
    engine: Engine,
    manifest: Manifest,
    precision: Precision,
    bytes: usize,
}

impl Recommender {
    /// Loads and validates a bundle (see [`Bundle::from_bytes`]) and builds its inference engine.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Self::from_bundle(Bundle::from_bytes(bytes)?)?;
        r.bytes = bytes.len();
        Ok(r)
    }

    pub fn from_bundle(bundle: Bundle) -> Result<Self> {
        let engine = Engine::new(&bundle)?;
        Ok(Recommender {
            engine,
            precision: bundle.precision,
            manifest: bundle.manifest,
            bytes: 0,
        })
    }

    /// The storage types of the loaded bundle.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Size of the bundle file this was loaded from (0 when built from a parsed bundle).
    pub fn bundle_bytes(&self) -> usize {
        self.bytes
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves with other settings of the bundle's text term (see [`crate::bundle::TextBoost`]).
    pub fn set_text_boost(&mut self, boost: crate::bundle::TextBoost) -> Result<()> {
        self.engine.set_text_boost(boost)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn n_items(&self) -> usize {
        self.manifest.items.len()
    }

    /// The catalogue entry for an item id (`1..=n_items`).
    pub fn item(&self, id: u32) -> Result<&ItemEntry> {
        if id == 0 || id as usize > self.n_items() {
            return Err(Error::Request(format!(
                "unknown item id {id}: ids run from 1 to {}",
                self.n_items()
            )));
        }
        Ok(&self.manifest.items[id as usize - 1])
    }

    pub fn is_tail(&self, id: u32) -> bool {
        self.item(id)
            .is_ok_and(|e| e.popularity < self.manifest.item_tail_cut)
    }

    /// Refuses an empty session or an unknown id.
    fn check(&self, session: &[u32]) -> Result<()> {
        if session.is_empty() {
            return Err(Error::Request(
                "empty session: add at least one item".to_string(),
            ));
        }
        for &id in session {
            self.item(id)?;
        }
        Ok(())
    }

    /// Scores every item for a session (oldest first). Sessions longer than `max_len` keep their
    /// newest `max_len` items, as in training. Index 0 of the result is the padding slot.
    pub fn scores(&self, session: &[u32]) -> Result<Vec<f32>> {
        self.check(session)?;
        Ok(self.engine.scores(session))
    }

    /// The user vector for a session (views concatenated).
    pub fn user_vector(&self, session: &[u32]) -> Result<Vec<f32>> {
        self.check(session)?;
        let mut u = Vec::new();
        self.engine.user_vector(session, &mut u);
        Ok(u)
    }

    /// The `k` best items, best first (ties by lower id). Session items are left out when
    /// `exclude_session` is set. Fewer than `k` come back only when the catalogue runs out.
    pub fn recommend(
        &self,
        session: &[u32],
        k: usize,
        exclude_session: bool,
    ) -> Result<Vec<Recommendation>> {
        self.recommend_with(
            session,
            k,
            Options {
                exclude_session,
                ..Options::default()
            },
        )
    }

    /// [`Self::recommend`] with serving options: with a tail weight above 0 the model's best
    /// candidates are re-ranked toward less-popular items (scores stay the model's). Any `k` from 1
    /// up is served; one above the catalogue means every candidate, and allocates no more.
    pub fn recommend_with(
        &self,
        session: &[u32],
        k: usize,
        opts: Options,
    ) -> Result<Vec<Recommendation>> {
        crate::infer::topk::check_k(k)?;
        let k = k.min(self.n_items());
        if !(opts.tail_weight.is_finite() && opts.tail_weight >= 0.0) {
            return Err(Error::Request(format!(
                "tail weight must be a finite number of at least 0, got {}",
                opts.tail_weight
            )));
        }
        self.check(session)?;
        let mut unique: Vec<u32> = session.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let excluded: &[u32] = if opts.exclude_session { &unique } else { &[] };
        let best: Vec<(u32, f32)> = if opts.tail_weight > 0.0 {
            let pool = self
                .engine
                .top_k(session, POOL.max(k.saturating_mul(20)), excluded);
            let items = &self.manifest.items;
            let max_pop = items.iter().map(|e| e.popularity).max().unwrap_or(0);
            rerank::tail_rerank(
                &pool,
                |id| items[id as usize - 1].popularity,
                max_pop,
                opts.tail_weight,
                k,
            )
            .into_iter()
            .map(|(id, s, _)| (id, s))
            .collect()
        } else {
            self.engine.top_k(session, k, excluded)
        };
        // Each session item's vector once, not once per recommendation.
        let view = self.engine.n_views() - 1;
        let session_vectors: Vec<(u32, Vec<f32>)> = unique
            .iter()
            .map(|&s| (s, self.engine.item_view(s, view)))
            .collect();
        best.into_iter()
            .map(|(id, score)| {
                let mut r = self.recommendation(id, score)?;
                r.because = nearest(&self.engine.item_view(id, view), id, &session_vectors);
                Ok(r)
            })
            .collect()
    }

    /// Catalogue data for a scored item.
    pub fn recommendation(&self, id: u32, score: f32) -> Result<Recommendation> {
        let e = self.item(id)?;
        Ok(Recommendation {
            id,
            key: e.key.clone(),
            title: e.title.clone(),
            score,
            tail: self.is_tail(id),
            new: e.new,
            because: None,
        })
    }
}

/// The item of `among` (other than `id` itself) whose vector is nearest (cosine) to `target`.
fn nearest(target: &[f32], id: u32, among: &[(u32, Vec<f32>)]) -> Option<u32> {
    among
        .iter()
        .filter(|(s, _)| *s != id)
        .map(|(s, v)| (*s, cosine(target, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(s, _)| s)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot = crate::kernels::dot::dot(a, b);
    let na = crate::kernels::dot::dot(a, a).sqrt();
    let nb = crate::kernels::dot::dot(b, b).sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
