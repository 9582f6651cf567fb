//! Scores from a trained network: pad each input as its backbone expects, encode in eval mode, dot
//! with the item tables.

use super::evaluate::Scorer;
use crate::model::SeqRec;
use crate::Result;

impl Scorer for SeqRec {
    fn score(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        Ok(self.score_histories(inputs)?)
    }
}

/// A loaded bundle scores through the fast inference path, exactly what the browser runs.
impl Scorer for crate::recommend::Recommender {
    fn score(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        inputs.iter().map(|s| self.scores(s)).collect()
    }
}
