//! Model hyper-parameters, serialised into checkpoints and bundles.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Paper-faithful reproduces the reference code's attention exactly; corrected fixes its leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Causal mask and key-padding mask in every self-attention block; popularity groups count
    /// training interactions only.
    #[default]
    Corrected,
    /// No causal mask and no padding mask (each position can see its own target during training);
    /// popularity groups count all data, as `LLM-ESR/generators/generator.py` does.
    Faithful,
}

impl Mode {
    pub fn label(&self) -> &'static str {
        match self {
            Mode::Corrected => "corrected",
            Mode::Faithful => "faithful",
        }
    }
}

/// The sequence encoder family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backbone {
    #[default]
    Sasrec,
}

/// Shapes and switches of a model. Everything inference needs to rebuild the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub backbone: Backbone,
    pub mode: Mode,
    /// Catalogue size; item ids run 1..=n_items, 0 is padding.
    pub n_items: usize,
    pub hidden: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub max_len: usize,
    pub dropout: f32,
    /// LayerNorm epsilon; the reference uses 1e-8.
    pub ln_eps: f64,
}

impl ModelConfig {
    /// The reference's SASRec settings for a catalogue of `n_items`.
    pub fn sasrec(n_items: usize) -> Self {
        ModelConfig {
            backbone: Backbone::Sasrec,
            mode: Mode::Corrected,
            n_items,
            hidden: 64,
            n_layers: 2,
            n_heads: 1,
            max_len: 200,
            dropout: 0.5,
            ln_eps: 1e-8,
        }
    }

    /// Rejects shapes the model cannot be built with.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.n_items == 0 {
            return bad("n_items must be at least 1".into());
        }
        if self.hidden == 0 || self.n_heads == 0 || self.hidden % self.n_heads != 0 {
            return bad(format!(
                "hidden ({}) must be a positive multiple of heads ({})",
                self.hidden, self.n_heads
            ));
        }
        if self.n_layers == 0 {
            return bad("layers must be at least 1".into());
        }
        if self.max_len == 0 || self.max_len > 4096 {
            return bad(format!("max_len must be in 1..=4096, got {}", self.max_len));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if !(self.ln_eps > 0.0 && self.ln_eps < 1.0) {
            return bad(format!("ln_eps must be in (0, 1), got {}", self.ln_eps));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let mut c = ModelConfig::sasrec(10);
        assert!(c.validate().is_ok());
        c.dropout = 1.5;
        assert!(c.validate().unwrap_err().to_string().contains("dropout"));
        c = ModelConfig::sasrec(10);
        c.max_len = 0;
        assert!(c.validate().unwrap_err().to_string().contains("max_len"));
        c = ModelConfig::sasrec(10);
        c.n_heads = 3;
        assert!(c.validate().unwrap_err().to_string().contains("heads"));
    }
}
