//! Input preparation shared by training, evaluation and inference: left padding, positions counted
//! from the oldest kept item, the timeline mask and the attention bias.

use super::config::Mode;
use candle_core::{Device, Result, Tensor};

/// Added to masked attention scores; large and finite so fully masked rows stay finite.
pub const MASKED: f32 = -1e9;

/// A batch of left-padded sequences as tensors.
pub struct SeqBatch {
    /// `[B, L]` u32 item ids, 0 = padding.
    pub ids: Tensor,
    /// `[B, L]` u32 positions: 0 for padding, then 1..=n from the oldest kept item.
    pub positions: Tensor,
    /// `[B, L, 1]` f32: 1 for items, 0 for padding.
    pub keep: Tensor,
    /// `[B, 1, L, L]` f32 additive attention bias (corrected mode only).
    pub attn_bias: Option<Tensor>,
    pub batch: usize,
    pub len: usize,
}

impl SeqBatch {
    /// Builds a batch from sequences already left-padded to one length.
    pub fn new(padded: &[Vec<u32>], mode: Mode, device: &Device) -> Result<Self> {
        let b = padded.len();
        let l = padded.first().map_or(0, Vec::len);
        if padded.iter().any(|s| s.len() != l) {
            candle_core::bail!("SeqBatch: sequences must share one padded length {l}");
        }
        let mut ids = Vec::with_capacity(b * l);
        let mut positions = Vec::with_capacity(b * l);
        let mut keep = Vec::with_capacity(b * l);
        for s in padded {
            let pad = s.iter().take_while(|&&i| i == 0).count();
            ids.extend_from_slice(s);
            positions.extend((0..l).map(|j| if j < pad { 0 } else { (j - pad + 1) as u32 }));
            keep.extend((0..l).map(|j| if j < pad { 0f32 } else { 1.0 }));
        }
        let attn_bias = match mode {
            Mode::Faithful => None,
            Mode::Corrected => {
                let mut bias = vec![0f32; b * l * l];
                for (r, s) in padded.iter().enumerate() {
                    let pad = s.iter().take_while(|&&i| i == 0).count();
                    let m = &mut bias[r * l * l..(r + 1) * l * l];
                    for q in 0..l {
                        for k in 0..l {
                            if k > q || k < pad {
                                m[q * l + k] = MASKED;
                            }
                        }
                    }
                }
                Some(Tensor::from_vec(bias, (b, 1, l, l), device)?)
            }
        };
        Ok(SeqBatch {
            ids: Tensor::from_vec(ids, (b, l), device)?,
            positions: Tensor::from_vec(positions, (b, l), device)?,
            keep: Tensor::from_vec(keep, (b, l, 1), device)?,
            attn_bias,
            batch: b,
            len: l,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_from_the_oldest_item() {
        let b = SeqBatch::new(
            &[vec![0, 0, 5, 6], vec![1, 2, 3, 4]],
            Mode::Faithful,
            &Device::Cpu,
        )
        .unwrap();
        let pos: Vec<Vec<u32>> = b.positions.to_vec2().unwrap();
        assert_eq!(pos, vec![vec![0, 0, 1, 2], vec![1, 2, 3, 4]]);
        assert!(b.attn_bias.is_none());
    }

    #[test]
    fn corrected_mask_is_causal_and_hides_padding() {
        let b = SeqBatch::new(&[vec![0, 7, 8]], Mode::Corrected, &Device::Cpu).unwrap();
        let m: Vec<Vec<f32>> = b
            .attn_bias
            .unwrap()
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        let open = |v: f32| v == 0.0;
        // Query 2 (item 8) sees keys 1 and 2, not the pad at 0.
        assert_eq!(
            m[2].iter().map(|&v| open(v)).collect::<Vec<_>>(),
            vec![false, true, true]
        );
        // Query 1 (item 7) cannot see the future key 2.
        assert_eq!(
            m[1].iter().map(|&v| open(v)).collect::<Vec<_>>(),
            vec![false, true, false]
        );
    }
}
