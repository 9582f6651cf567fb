//! The most-popular baseline: every user gets the items ranked by training popularity.

use super::evaluate::Scorer;
use crate::data::groups::{popularity, PopularityScope};
use crate::data::Dataset;
use crate::Result;

/// Scores each item by its number of training interactions.
pub struct MostPopular {
    scores: Vec<f32>,
}

impl MostPopular {
    pub fn fit(data: &Dataset) -> Self {
        MostPopular {
            scores: popularity(data, PopularityScope::Train)
                .into_iter()
                .map(|p| p as f32)
                .collect(),
        }
    }
}

impl Scorer for MostPopular {
    fn score(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        Ok(inputs.iter().map(|_| self.scores.clone()).collect())
    }
}
