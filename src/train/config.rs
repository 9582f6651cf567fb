//! Training hyper-parameters, checked before any work starts.

use super::loss::LossConfig;
use crate::data::ColdConfig;
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
    /// LLM-ESR self-distillation: weight α of the MSE to the similar users' mean (0 = off).
    #[serde(default = "default_distill_weight")]
    pub distill_weight: f64,
    /// How many of each user's most similar users form the teacher.
    #[serde(default = "default_distill_users")]
    pub distill_users: usize,
    #[serde(default)]
    pub teacher: Teacher,
    /// How LLM-ESR's ID table starts.
    #[serde(default)]
    pub id_init: IdInit,
    /// BERT4Rec: share of positions masked in the random-masking half of the samples.
    #[serde(default = "default_mask_prob")]
    pub mask_prob: f64,
    /// Group users of similar history length into batches (within windows of
    /// [`BUCKET_WINDOW`] batches, batch order shuffled). With corrected mode's padding trimming
    /// this cuts the attention work several-fold; the reference draws batches uniformly.
    #[serde(default)]
    pub bucket: bool,
    /// The recommendation loss (`loss`, `negatives`, `gbce_t`, `logq` in the JSON).
    #[serde(flatten)]
    pub loss: LossConfig,
    /// Cold-start evaluation: the share of items held out as new items, and its seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold: Option<ColdConfig>,
    /// SASRec: the share of training sequences that start at a random item of the user's
    /// history instead of its oldest kept one (0 = the reference: never). Each such window keeps
    /// the newest items and counts positions from its own first item, as a visitor's short
    /// session does; without it, short contexts are only ever the oldest items of a history.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub crop: f64,
    /// The named configuration the run was trained as, if any (its rows carry the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<crate::train::Preset>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// Batches per length-sorting window when bucketing.
pub const BUCKET_WINDOW: usize = 32;

fn default_distill_weight() -> f64 {
    0.1
}
fn default_distill_users() -> usize {
    10
}
fn default_mask_prob() -> f64 {
    0.6
}

/// Where the self-distillation teacher's representations come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[derive(clap::ValueEnum)]
pub enum Teacher {
    /// The reference: encode the similar users' sequences at every step (dropout on), detached.
    #[default]
    Fresh,
    /// Reuse each similar user's representation from the last time that user was in a batch (at
    /// most one epoch old). For SASRec and GRU4Rec the training input of a user is exactly the
    /// sequence the teacher encodes, so this skips the 10 extra sequences per user; BERT4Rec's
    /// training inputs are masked, so it encodes each batch user's sequence once more (one extra
    /// sequence per user where the fresh teacher encodes ten). Measured on ML-100k over three seeds
    /// (BENCHMARKS.md §1): level with the fresh teacher for SASRec, 7% lower NDCG@10 for BERT4Rec.
    Cached,
}

/// Initial values of the LLM-ESR ID table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[derive(clap::ValueEnum)]
pub enum IdInit {
    /// The reference: the semantic table's first principal components (PCA to `hidden` dims).
    #[default]
    Pca,
    /// Xavier-normal, as in the base models (the "random init" ablation).
    Random,
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
            distill_weight: default_distill_weight(),
            distill_users: default_distill_users(),
            teacher: Teacher::Fresh,
            id_init: IdInit::Pca,
            mask_prob: default_mask_prob(),
            bucket: false,
            loss: LossConfig::default(),
            cold: None,
            crop: 0.0,
            preset: None,
        }
    }
}

impl TrainConfig {
    /// The loss as report rows and run names carry it: `None` for the reference's BCE.
    pub fn loss_label(&self) -> Option<String> {
        (self.loss.kind != super::loss::LossKind::Bce).then(|| self.loss.kind.label().to_string())
    }

    /// The preset's name as report rows and bundles carry it.
    pub fn preset_label(&self) -> Option<String> {
        self.preset.map(|p| p.label().to_string())
    }

    /// Refuses a crop where it has no meaning: backbones other than SASRec (GRU4Rec is trained
    /// on the last item only, BERT4Rec's cloze samples mask whole histories) and self-distillation,
    /// whose teacher encodes each user's whole training input.
    pub fn check_crop(&self, backbone: crate::model::Backbone, distilling: bool) -> Result<()> {
        if self.crop == 0.0 {
            return Ok(());
        }
        if backbone != crate::model::Backbone::Sasrec {
            return Err(Error::Config(format!(
                "--crop applies to SASRec only, not {}",
                format!("{backbone:?}").to_lowercase()
            )));
        }
        if distilling {
            return Err(Error::Config(
                "--crop needs --distill-weight 0: the self-distillation teacher encodes whole training inputs".into(),
            ));
        }
        Ok(())
    }

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
        if !(self.distill_weight.is_finite() && self.distill_weight >= 0.0) {
            return bad(format!(
                "distill weight must be a non-negative number, got {}",
                self.distill_weight
            ));
        }
        if self.distill_users == 0 {
            return bad("distill users must be at least 1".into());
        }
        if !(self.mask_prob > 0.0 && self.mask_prob <= 1.0) {
            return bad(format!(
                "mask_prob must be in (0, 1], got {}",
                self.mask_prob
            ));
        }
        if !(self.crop.is_finite() && (0.0..=1.0).contains(&self.crop)) {
            return bad(format!("crop must be a share in [0, 1], got {}", self.crop));
        }
        if let Some(c) = &self.cold {
            c.validate()?;
            if self.loss.kind == super::loss::LossKind::Bce {
                return Err(Error::Config(
                    "new items (--cold-items) need a softmax-family loss (--loss ce, sampled or gbce): BCE's negatives do not leave them out".into(),
                ));
            }
        }
        self.loss.validate()
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

    #[test]
    fn a_crop_outside_its_range_or_backbone_is_refused() {
        use crate::model::Backbone;
        for crop in [-0.1, 1.5, f64::NAN] {
            let c = TrainConfig {
                crop,
                ..TrainConfig::default()
            };
            assert!(c.validate().unwrap_err().to_string().contains("crop"));
        }
        let c = TrainConfig {
            crop: 0.5,
            ..TrainConfig::default()
        };
        assert!(c.validate().is_ok());
        assert!(c.check_crop(Backbone::Sasrec, false).is_ok());
        let e = c
            .check_crop(Backbone::Gru4rec, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SASRec only"), "{e}");
        let e = c
            .check_crop(Backbone::Sasrec, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--distill-weight 0"), "{e}");
        assert!(TrainConfig::default()
            .check_crop(Backbone::Bert4rec, true)
            .is_ok());
    }
}
