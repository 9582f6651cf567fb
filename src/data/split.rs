//! Leave-one-out split: the last item is the test target, the second-last the validation target.

/// Which held-out item is being predicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
pub enum Stage {
    /// The second-last item, the training part as input (model selection).
    Valid,
    /// The last item, everything before it as input.
    Test,
}

impl Stage {
    pub fn label(&self) -> &'static str {
        match self {
            Stage::Valid => "valid",
            Stage::Test => "test",
        }
    }
}

/// The training part of a sequence: all but the last two items.
pub fn train_part(seq: &[u32]) -> &[u32] {
    &seq[..seq.len().saturating_sub(2)]
}

/// The input and target for evaluating one user at `stage`.
pub fn eval_case(seq: &[u32], stage: Stage) -> (&[u32], u32) {
    let n = seq.len();
    match stage {
        Stage::Valid => (&seq[..n - 2], seq[n - 2]),
        Stage::Test => (&seq[..n - 1], seq[n - 1]),
    }
}

/// The most recent `max_len` items, left-padded with 0 to exactly `max_len`.
pub fn pad_left(seq: &[u32], max_len: usize) -> Vec<u32> {
    let kept = &seq[seq.len().saturating_sub(max_len)..];
    let mut out = vec![0; max_len - kept.len()];
    out.extend_from_slice(kept);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_one_out() {
        let s = [1, 2, 3, 4, 5];
        assert_eq!(train_part(&s), &[1, 2, 3]);
        assert_eq!(eval_case(&s, Stage::Valid), (&[1, 2, 3][..], 4));
        assert_eq!(eval_case(&s, Stage::Test), (&[1, 2, 3, 4][..], 5));
    }

    #[test]
    fn pads_and_truncates_keeping_the_newest() {
        assert_eq!(pad_left(&[7, 8], 4), vec![0, 0, 7, 8]);
        assert_eq!(pad_left(&[1, 2, 3, 4, 5], 3), vec![3, 4, 5]);
    }
}
