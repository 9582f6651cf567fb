//! The text side a bundle can carry beside the model: each item's language-model vector in a small
//! normalised space (standardised, PCA-reduced, unit length), the map into that space from the text
//! model's vectors, and the serving-time text term that uses it. The map lets a new item be placed
//! from its text alone; the term adds, for candidates below a popularity cut, their largest cosine
//! to the session's newest items — a training-free boost for the long tail.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// The serving-time text term: `score += weight · max_{t ∈ newest recent items} cos(t, candidate)`
/// for every candidate whose training popularity is below `below_popularity` (0: every candidate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TextBoost {
    /// 0 turns the term off.
    pub weight: f32,
    pub below_popularity: u32,
    /// How many of the session's newest items the candidate is compared with.
    pub recent: usize,
}

impl Default for TextBoost {
    fn default() -> Self {
        TextBoost {
            weight: 0.0,
            below_popularity: 0,
            recent: 1,
        }
    }
}

impl TextBoost {
    pub fn validate(&self) -> Result<()> {
        if !self.weight.is_finite() || self.weight < 0.0 {
            return Err(Error::Config(format!(
                "text weight must be a finite number ≥ 0, got {}",
                self.weight
            )));
        }
        if self.recent == 0 {
            return Err(Error::Config(
                "text recent must be at least 1 (items compared with each candidate)".into(),
            ));
        }
        Ok(())
    }

    pub fn is_on(&self) -> bool {
        self.weight > 0.0
    }
}

/// How a new item's ID-view row is made from its text vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
pub enum NewItemId {
    /// All zeros: the item is scored by its semantic view (and the text term) alone.
    #[default]
    Zero,
    /// The PCA projection of its text vector, as LLM-ESR initialises every ID row.
    Pca,
    /// A ridge regression from text vectors to the trained ID rows, fitted on the trained items.
    Ridge,
}

/// What a bundle keeps to place items that were not in training: their semantic row is the
/// folded adapter applied to the text vector, their ID row as `id` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewItems {
    pub id: NewItemId,
    /// What an item is called in the prompt its text vector is made from (`movie`).
    pub noun: String,
}

/// The text space of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextSpace {
    /// The text model whose vectors the map takes (as the embedding cache names it, e.g.
    /// `all-minilm-l6-v2-8f2dab45`); vectors of another model are refused.
    pub model: String,
    /// Width of that model's vectors (384 for MiniLM).
    pub input_dim: usize,
    /// Width of the stored text table.
    pub width: usize,
    #[serde(default)]
    pub boost: TextBoost,
    /// Present when the bundle can place new items (`llmesr add-items`, `rec.addItems`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_items: Option<NewItems>,
}

impl TextSpace {
    pub fn validate(&self) -> Result<()> {
        if self.model.is_empty() || self.input_dim == 0 || self.width == 0 {
            return Err(Error::Bundle(format!(
                "text space: model {:?}, input width {} and width {} must all be set",
                self.model, self.input_dim, self.width
            )));
        }
        self.boost
            .validate()
            .map_err(|e| Error::Bundle(format!("text space: {e}")))
    }
}
