//! Input preparation shared by training, evaluation and inference: left padding, positions counted
//! from the oldest kept item, the timeline mask and the attention key masks.

use super::config::{Backbone, Mode, ModelConfig};
use candle_core::{Device, Result, Tensor};
use std::sync::Arc;

/// Which keys each query of a batch of left-padded sequences may read: keys at or after the row's
/// padding, and with `causal` only those up to the query's own position (a block of `Lq < L`
/// queries holds the newest `Lq` positions).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyMask {
    /// Padding length of each row of the batch.
    pub pads: Arc<Vec<usize>>,
    pub causal: bool,
    /// How many identical keys key 0 stands for (1: only itself). Where padding keys are visible
    /// (the reference's encoder), every padding key is the same vector, so `lead` of them can be
    /// one column weighted `lead` times: exact, and far less work than the padded length.
    pub lead: usize,
}

impl KeyMask {
    /// Hides each row's `pads` leading keys, and with `causal` the future.
    pub fn new(pads: Vec<usize>, causal: bool) -> Self {
        KeyMask {
            pads: Arc::new(pads),
            causal,
            lead: 1,
        }
    }

    /// Every key visible, key 0 standing for `lead` identical ones.
    pub fn lead(rows: usize, lead: usize) -> Self {
        KeyMask {
            lead,
            ..KeyMask::new(vec![0; rows], false)
        }
    }

    /// The same mask for a batch made of `n` copies of this one, stacked.
    pub fn repeat(&self, n: usize) -> KeyMask {
        KeyMask {
            pads: Arc::new((0..n).flat_map(|_| self.pads.iter().copied()).collect()),
            ..self.clone()
        }
    }

    /// An error unless the mask covers a batch of `n` rows over `l` keys.
    pub(crate) fn check(&self, n: usize, l: usize) -> Result<()> {
        if self.pads.len() != n || self.pads.iter().any(|&p| p > l) {
            candle_core::bail!(
                "key mask covers {} rows for a batch of {n} (or pads past {l} keys)",
                self.pads.len()
            );
        }
        if self.lead == 0 || (self.lead > 1 && self.pads.iter().any(|&p| p > 0)) {
            candle_core::bail!(
                "key mask: key 0 stands for {} keys; only a mask that hides none may weight it",
                self.lead
            );
        }
        Ok(())
    }

    /// The visible keys `lo..=hi` of query `qi` in row `n`, or `None` when it sees none.
    pub(crate) fn range(&self, n: usize, qi: usize, lq: usize, l: usize) -> Option<(usize, usize)> {
        let lo = self.pads[n];
        let hi = if self.causal { qi + (l - lq) } else { l - 1 };
        (lo <= hi).then_some((lo, hi))
    }
}

/// The reference's additive bias on hidden keys (large and finite, so a row that sees no key is
/// uniform rather than NaN); the fused attention weights reproduce its effect.
pub const MASKED: f32 = -1e9;

/// Which keys a self-attention query may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Every key, padding included (the reference code).
    All,
    /// Every non-padding key (bidirectional, corrected BERT4Rec).
    Items,
    /// Non-padding keys at or before the query (corrected SASRec).
    Past,
}

impl Visibility {
    pub fn of(cfg: &ModelConfig) -> Self {
        let cross = cfg.semantic.as_ref().is_some_and(|s| s.uses_cross());
        match (cfg.mode, cfg.backbone) {
            (Mode::Faithful, _) => Visibility::All,
            // A GRU has no self-attention; LLM-ESR's cross-attentions read the causal mask.
            (Mode::Corrected, Backbone::Gru4rec) if !cross => Visibility::All,
            (Mode::Corrected, Backbone::Bert4rec) => Visibility::Items,
            (Mode::Corrected, _) => Visibility::Past,
        }
    }
}

/// What a batch may drop of its padding without changing any output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Padding is masked (corrected mode): columns that are padding in every row go.
    Trim,
    /// Padding keys are visible but all the same vector (the reference's SASRec and BERT4Rec
    /// encoders zero padding rows before every block, so each padding key and value is the
    /// projection's bias): the columns that are padding in every row become one, weighted by
    /// their count in the self-attention (see [`KeyMask::lead`]).
    Collapse,
    /// Padding changes the state (the reference's GRU reads every padded step): all of it stays.
    Keep,
}

impl Padding {
    pub fn of(cfg: &ModelConfig) -> Self {
        match (cfg.mode, cfg.backbone) {
            (Mode::Corrected, _) => Padding::Trim,
            (Mode::Faithful, Backbone::Gru4rec) => Padding::Keep,
            (Mode::Faithful, _) => Padding::Collapse,
        }
    }

    /// Drops what this policy allows from rows left-padded to one length; returns how many
    /// padding keys column 0 then stands for (1: only itself), for [`SeqBatch::collapsed`].
    pub fn fit(self, padded: &mut [Vec<u32>]) -> usize {
        match self {
            Padding::Trim => {
                trim_common_padding(padded);
                1
            }
            Padding::Keep => 1,
            Padding::Collapse => {
                let common = common_padding(padded);
                if common > 1 {
                    for s in padded.iter_mut() {
                        s.drain(..common - 1);
                    }
                }
                common.max(1)
            }
        }
    }
}

/// A batch of left-padded sequences as tensors.
pub struct SeqBatch {
    /// `[B, L]` u32 item ids, 0 = padding.
    pub ids: Tensor,
    /// `[B, L]` u32 positions: 0 for padding, then 1..=n from the oldest kept item.
    pub positions: Tensor,
    /// `[B, L, 1]` f32: 1 for items, 0 for padding.
    pub keep: Tensor,
    /// The self-attention's key mask (`None` when every key is visible, padding included, and
    /// none stands for several: [`SeqBatch::collapsed`]).
    pub attn_mask: Option<KeyMask>,
    /// Hides padding keys only (the cross-attentions, in every mode).
    pub key_mask: KeyMask,
    pub batch: usize,
    pub len: usize,
}

/// Drops the leading columns that are padding in every row. Exact wherever padding is masked
/// (corrected mode): positions count from the oldest item, so they do not change.
pub fn trim_common_padding(padded: &mut [Vec<u32>]) {
    let cut = common_padding(padded);
    // Keep at least one column so an all-padding batch still has a shape.
    let cut = cut.min(padded.first().map_or(0, |s| s.len().saturating_sub(1)));
    if cut > 0 {
        for s in padded.iter_mut() {
            s.drain(..cut);
        }
    }
}

/// The number of leading columns that are padding in every row.
fn common_padding(padded: &[Vec<u32>]) -> usize {
    padded
        .iter()
        .map(|s| s.iter().take_while(|&&i| i == 0).count())
        .min()
        .unwrap_or(0)
}

/// One row's positions: 0 on its `pad` leading padding slots, then `1 + shift` upward.
fn row_positions(pad: usize, shift: usize, len: usize) -> impl Iterator<Item = u32> {
    (0..len).map(move |j| {
        if j < pad {
            0
        } else {
            (j - pad + 1 + shift) as u32
        }
    })
}

impl SeqBatch {
    /// Builds a batch from sequences already left-padded to one length.
    pub fn new(padded: &[Vec<u32>], visibility: Visibility, device: &Device) -> Result<Self> {
        let b = padded.len();
        let l = padded.first().map_or(0, Vec::len);
        if padded.iter().any(|s| s.len() != l) {
            candle_core::bail!("SeqBatch: sequences must share one padded length {l}");
        }
        let mut ids = Vec::with_capacity(b * l);
        let mut positions = Vec::with_capacity(b * l);
        let mut keep = Vec::with_capacity(b * l);
        let mut pads = Vec::with_capacity(b);
        for s in padded {
            let pad = s.iter().take_while(|&&i| i == 0).count();
            pads.push(pad);
            ids.extend_from_slice(s);
            positions.extend(row_positions(pad, 0, l));
            keep.extend((0..l).map(|j| if j < pad { 0f32 } else { 1.0 }));
        }
        let key_mask = KeyMask::new(pads, false);
        let attn_mask = match visibility {
            Visibility::All => None,
            Visibility::Items => Some(key_mask.clone()),
            Visibility::Past => Some(KeyMask {
                causal: true,
                ..key_mask.clone()
            }),
        };
        Ok(SeqBatch {
            ids: Tensor::from_vec(ids, (b, l), device)?,
            positions: Tensor::from_vec(positions, (b, l), device)?,
            keep: Tensor::from_vec(keep, (b, l, 1), device)?,
            attn_mask,
            key_mask,
            batch: b,
            len: l,
        })
    }

    /// The batch `cfg`'s model reads from rows left-padded to one length: their padding fitted to
    /// the mode ([`Padding::fit`]), collapsed padding counted ([`SeqBatch::collapsed`]).
    pub fn fitted(mut padded: Vec<Vec<u32>>, cfg: &ModelConfig, device: &Device) -> Result<Self> {
        let lead = Padding::of(cfg).fit(&mut padded);
        SeqBatch::new(&padded, Visibility::of(cfg), device)?.collapsed(lead)
    }

    /// Lets column 0 stand for `lead` padding keys in the self-attention, as [`Padding::fit`]
    /// collapsed them; an error unless the self-attention sees every key and column 0 is padding
    /// in every row.
    pub fn collapsed(mut self, lead: usize) -> Result<Self> {
        if lead <= 1 {
            return Ok(self);
        }
        if self.attn_mask.is_some() || self.key_mask.pads.contains(&0) {
            candle_core::bail!(
                "SeqBatch: only padding that every key sees and every row has can be collapsed"
            );
        }
        self.attn_mask = Some(KeyMask::lead(self.batch, lead));
        Ok(self)
    }

    /// Moves each row's positions up by its shift (padding stays 0): the reference's BERT4Rec
    /// predict, whose positions do not start at 1 for histories that fill the window.
    pub fn shift_positions(&mut self, shifts: &[usize]) -> Result<()> {
        if shifts.len() != self.batch {
            candle_core::bail!("SeqBatch: {} shifts for {} rows", shifts.len(), self.batch);
        }
        let l = self.len;
        let positions: Vec<u32> = self
            .key_mask
            .pads
            .iter()
            .zip(shifts)
            .flat_map(|(&pad, &shift)| row_positions(pad, shift, l))
            .collect();
        self.positions = Tensor::from_vec(positions, (self.batch, l), self.positions.device())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_from_the_oldest_item() {
        let b = SeqBatch::new(
            &[vec![0, 0, 5, 6], vec![1, 2, 3, 4]],
            Visibility::All,
            &Device::Cpu,
        )
        .unwrap();
        let pos: Vec<Vec<u32>> = b.positions.to_vec2().unwrap();
        assert_eq!(pos, vec![vec![0, 0, 1, 2], vec![1, 2, 3, 4]]);
        assert!(b.attn_mask.is_none());
        assert_eq!(b.key_mask.pads.as_slice(), &[2, 0]);
    }

    fn open_rows(v: Visibility) -> Vec<Vec<bool>> {
        // Weights of all-zero scores: a key is open where its weight is nonzero.
        let b = SeqBatch::new(&[vec![0, 7, 8]], v, &Device::Cpu).unwrap();
        let scores = Tensor::zeros((1, 1, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let w = crate::model::ops::fused_attention::reference::attention_weights(
            &scores,
            1.0,
            b.attn_mask.as_ref(),
            0.0,
            None,
        )
        .unwrap();
        let m: Vec<Vec<f32>> = w.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        m.iter()
            .map(|r| r.iter().map(|&x| x > 0.0).collect())
            .collect()
    }

    #[test]
    fn past_visibility_is_causal_and_hides_padding() {
        let m = open_rows(Visibility::Past);
        // Query 2 (item 8) sees keys 1 and 2, not the pad at 0.
        assert_eq!(m[2], vec![false, true, true]);
        // Query 1 (item 7) cannot see the future key 2.
        assert_eq!(m[1], vec![false, true, false]);
    }

    #[test]
    fn item_visibility_is_bidirectional_without_padding() {
        let m = open_rows(Visibility::Items);
        assert_eq!(m[1], vec![false, true, true]);
    }

    #[test]
    fn trimming_keeps_positions_and_one_column() {
        let mut rows = vec![vec![0, 0, 0, 5, 6], vec![0, 0, 1, 2, 3]];
        trim_common_padding(&mut rows);
        assert_eq!(rows, vec![vec![0, 5, 6], vec![1, 2, 3]]);
        let mut empty = vec![vec![0, 0]];
        trim_common_padding(&mut empty);
        assert_eq!(empty, vec![vec![0]]);
    }
}
