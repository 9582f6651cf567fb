//! Scores from a trained encoder: pad each input, encode in eval mode, dot with the item table.

use super::evaluate::Scorer;
use crate::data::split::pad_left;
use crate::model::{SasRec, SeqBatch};
use crate::Result;

impl Scorer for SasRec {
    fn score(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let cfg = self.config();
        let padded: Vec<Vec<u32>> = inputs.iter().map(|s| pad_left(s, cfg.max_len)).collect();
        let device = self.item_table().device().clone();
        let batch = SeqBatch::new(&padded, cfg.mode, &device)?;
        let users = self.user_repr(&batch, None)?;
        Ok(self.score_all(&users)?.to_vec2()?)
    }
}
