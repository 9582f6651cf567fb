//! The recommender used natively and in the browser: a bundle in, top-k items for a session out.

use crate::bundle::{Bundle, ItemEntry, Manifest};
use crate::model::SeqRec;
use crate::{Error, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::HashSet;

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
    model: SeqRec,
    manifest: Manifest,
}

impl Recommender {
    /// Loads and validates a bundle (see [`Bundle::from_bytes`]) and rebuilds its encoder.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_bundle(Bundle::from_bytes(bytes)?)
    }

    pub fn from_bundle(bundle: Bundle) -> Result<Self> {
        // Tensor names do not depend on the catalogue or max_len, so a one-item probe model lists
        // every name this config uses; anything else in the file is refused rather than ignored.
        let mut probe = bundle.manifest.model.clone();
        probe.n_items = 1;
        probe.max_len = 2;
        let expected = crate::model::init::random_weights(&probe, 0)
            .map_err(|e| Error::Bundle(format!("model config: {e}")))?;
        let mut unexpected: Vec<&String> = bundle
            .tensors
            .keys()
            .filter(|n| !expected.contains_key(*n))
            .collect();
        unexpected.sort();
        if let Some(name) = unexpected.first() {
            return Err(Error::Bundle(format!(
                "unexpected tensor {name} for a {:?} model with {} layers",
                bundle.manifest.model.backbone, bundle.manifest.model.n_layers
            )));
        }
        let vb = VarBuilder::from_tensors(bundle.tensors, DType::F32, &Device::Cpu);
        let model = SeqRec::new(&bundle.manifest.model, vb)
            .map_err(|e| Error::Bundle(format!("weights do not match the model config: {e}")))?;
        Ok(Recommender {
            model,
            manifest: bundle.manifest,
        })
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

    /// Scores every item for a session (oldest first). Sessions longer than `max_len` keep their
    /// newest `max_len` items, as in training. Index 0 of the result is the padding slot.
    pub fn scores(&self, session: &[u32]) -> Result<Vec<f32>> {
        if session.is_empty() {
            return Err(Error::Request(
                "empty session: add at least one item".to_string(),
            ));
        }
        for &id in session {
            self.item(id)?;
        }
        let mut scores = self.model.score_histories(&[session])?;
        Ok(scores.pop().expect("one session in, one row out"))
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
        let scores = self.scores(session)?;
        let excluded: HashSet<u32> = if exclude_session {
            session.iter().copied().collect()
        } else {
            HashSet::new()
        };
        let mut cands: Vec<(u32, f32)> = (1..=self.n_items() as u32)
            .filter(|i| !excluded.contains(i))
            .map(|i| (i, scores[i as usize]))
            .collect();
        let order = |a: &(u32, f32), b: &(u32, f32)| -> Ordering {
            b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
        };
        if k < cands.len() {
            cands.select_nth_unstable_by(k - 1, order);
            cands.truncate(k);
        }
        cands.sort_by(order);
        cands
            .into_iter()
            .map(|(id, score)| {
                let e = self.item(id)?;
                Ok(Recommendation {
                    id,
                    key: e.key.clone(),
                    title: e.title.clone(),
                    score,
                    tail: self.is_tail(id),
                })
            })
            .collect()
    }
}
