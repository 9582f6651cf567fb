//! The recommender used natively and in the browser: a bundle in, top-k items for a session out.

use crate::bundle::{Bundle, ItemEntry, Manifest, Precision};
use crate::infer::Engine;
use crate::model::SeqRec;
use crate::{Error, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
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
}

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
        if k == 0 {
            return Err(Error::Request("k must be at least 1".to_string()));
        }
        self.check(session)?;
        let mut excluded: Vec<u32> = if exclude_session {
            session.to_vec()
        } else {
            Vec::new()
        };
        excluded.sort_unstable();
        excluded.dedup();
        self.engine
            .top_k(session, k, &excluded)
            .into_iter()
            .map(|(id, score)| self.recommendation(id, score))
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
        })
    }
}

/// Scores from the candle model rebuilt from the bundle's (dequantized) weights: the
/// straightforward path the fast engine is tested against. Sessions must hold valid ids.
pub fn reference_scores(bundle: &Bundle, sessions: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
    let vb = VarBuilder::from_tensors(bundle.dequantized()?, DType::F32, &Device::Cpu);
    let model = SeqRec::new(&bundle.manifest.model, vb)
        .map_err(|e| Error::Bundle(format!("weights do not match the model config: {e}")))?;
    Ok(model.score_histories(sessions)?)
}
