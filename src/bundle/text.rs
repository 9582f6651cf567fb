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
