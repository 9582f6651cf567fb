//! Training hyper-parameters, checked before any work starts.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Upper bound on epochs; early stopping usually ends sooner.
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam learning rate (constant, as the reference's StepLR is never stepped).
    pub lr: f64,
    /// Stop after this many epochs without a better validation NDCG@10 (full ranking).
    pub patience: usize,
    pub seed: u64,
    /// Users per forward pass during evaluation.
    pub eval_batch_size: usize,
}

impl Default for TrainConfig {
    /// The reference's settings: batch 128, Adam 1e-3, 200 epochs, patience 20.
    fn default() -> Self {
        TrainConfig {
            epochs: 200,
            batch_size: 128,
            lr: 1e-3,
            patience: 20,
            seed: 42,
            eval_batch_size: 256,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("batch sizes must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be a positive number, got {}", self.lr));
        }
        if self.patience == 0 {
            return bad("patience must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_epochs_and_bad_lr_are_refused() {
        let mut c = TrainConfig {
            epochs: 0,
            ..TrainConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("epochs"));
        c = TrainConfig {
            lr: f64::NAN,
            ..TrainConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("lr"));
        assert!(TrainConfig::default().validate().is_ok());
    }
}
