//! Model hyper-parameters, serialised into checkpoints and bundles.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Paper-faithful reproduces the reference code's attention exactly; corrected fixes its leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
pub enum Mode {
    /// Causal mask (SASRec) and key-padding mask in every self-attention block and in LLM-ESR's
    /// cross-attentions, padding zeroed before the GRU; popularity groups count training
    /// interactions only.
    #[default]
    Corrected,
    /// No causal mask and no padding mask (each SASRec position can see its own target during
    /// training, directly and through the cross-attentions); popularity groups count all data, as
    /// `LLM-ESR/generators/generator.py` does.
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
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
pub enum Backbone {
    /// Self-attention, causal in corrected mode, trained seq-to-seq.
    #[default]
    Sasrec,
    /// One bias-free GRU layer, trained on the last position only.
    Gru4rec,
    /// Bidirectional self-attention trained as a cloze task with a mask token.
    Bert4rec,
}

impl Backbone {
    pub fn label(&self) -> &'static str {
        match self {
            Backbone::Sasrec => "sasrec",
            Backbone::Gru4rec => "gru4rec",
            Backbone::Bert4rec => "bert4rec",
        }
    }

    /// Whether the backbone uses positions and the transformer blocks.
    pub fn is_transformer(&self) -> bool {
        !matches!(self, Backbone::Gru4rec)
    }
}

/// The backbone alone or with the LLM-ESR method around it (what `--variant` chooses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
pub enum Variant {
    /// The backbone alone, ID embeddings only.
    #[default]
    Base,
    /// LLM-ESR: semantic + collaborative views, cross-attention, self-distillation.
    Llmesr,
}

impl Variant {
    pub fn label(&self) -> &'static str {
        match self {
            Variant::Base => "base",
            Variant::Llmesr => "llmesr",
        }
    }
}

/// Which item views feed the shared encoder (LLM-ESR ablations drop one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
pub enum Views {
    /// Collaborative (ID) and semantic (language-model) views, fused by concatenation.
    #[default]
    Both,
    /// The ID view only ("w/o semantic view"); its table can still start from the PCA.
    Collaborative,
    /// The semantic view only ("w/o collaborative view").
    Semantic,
}

/// The LLM-ESR part of a model: the frozen semantic table, its adapter and the cross-attentions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SemanticConfig {
    /// Width of the frozen language-model item table (384 for MiniLM, 1536 for ada-002).
    pub input_dim: usize,
    /// Width between the adapter's two linear layers (the reference halves the input).
    pub adapter_hidden: usize,
    pub views: Views,
    /// The two cross-attentions between the views (off = "w/o cross-attention").
    pub cross_attention: bool,
    pub cross_heads: usize,
    /// Add each cross-attention's output to its query view instead of replacing it (not in the
    /// reference). Replacing leaves no position holding its own item's embedding, only a mix over
    /// the sequence; on long MovieLens histories that mix is what slows the model down.
    /// Left out of the JSON when off, so configs (and the fingerprints of resumable runs) written
    /// before the option existed read back unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cross_residual: bool,
    /// Exported bundles store `adapter(table)` as one `[rows, hidden]` table instead of the
    /// frozen table and the adapter: exact, since the table is frozen and the adapter is linear.
    #[serde(default)]
    pub folded: bool,
}

impl SemanticConfig {
    /// The reference's settings for a table of width `input_dim`.
    pub fn reference(input_dim: usize) -> Self {
        SemanticConfig {
            input_dim,
            adapter_hidden: (input_dim / 2).max(1),
            views: Views::Both,
            cross_attention: true,
            cross_heads: 2,
            cross_residual: false,
            folded: false,
        }
    }

    pub fn has_id_view(&self) -> bool {
        self.views != Views::Semantic
    }

    pub fn has_semantic_view(&self) -> bool {
        self.views != Views::Collaborative
    }

    /// Cross-attention needs both views.
    pub fn uses_cross(&self) -> bool {
        self.cross_attention && self.views == Views::Both
    }
}

/// Shapes and switches of a model. Everything inference needs to rebuild the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub backbone: Backbone,
    pub mode: Mode,
    /// Catalogue size; item ids run 1..=n_items, 0 is padding (and n_items + 1 the BERT4Rec mask).
    pub n_items: usize,
    pub hidden: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub max_len: usize,
    pub dropout: f32,
    /// LayerNorm epsilon; the reference uses 1e-8.
    pub ln_eps: f64,
    /// `None` is the plain backbone ("base"); `Some` is LLM-ESR.
    #[serde(default)]
    pub semantic: Option<SemanticConfig>,
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
            semantic: None,
        }
    }

    /// The reference's settings for `backbone` (GRU4Rec: one layer).
    pub fn reference(backbone: Backbone, n_items: usize) -> Self {
        let mut c = Self::sasrec(n_items);
        c.backbone = backbone;
        if backbone == Backbone::Gru4rec {
            c.n_layers = 1;
        }
        c
    }

    /// `base` or `llmesr`.
    pub fn variant(&self) -> &'static str {
        if self.semantic.is_some() {
            Variant::Llmesr.label()
        } else {
            Variant::Base.label()
        }
    }

    /// Rows of each item table: padding, the items, and the BERT4Rec mask token.
    pub fn item_rows(&self) -> usize {
        self.n_items + 1 + usize::from(self.backbone == Backbone::Bert4rec)
    }

    /// Rows of the position table: padding and positions 1..=max_len, plus, in paper-faithful
    /// BERT4Rec, position max_len+1 (see [`ModelConfig::position_shift`]).
    pub fn pos_rows(&self) -> usize {
        self.max_len + 1 + self.faithful_shift()
    }

    /// How far the positions of an inference input of `len` items move past "1 for the oldest
    /// kept item". The reference's BERT4Rec predict appends the mask token to the positions of
    /// the `max_len` newest items and drops the first: a history that fills the window keeps its
    /// positions 2..=max_len and gives the mask max_len+1, a row training never reaches. Corrected
    /// mode counts from the oldest kept item, as training does.
    pub fn position_shift(&self, len: usize) -> usize {
        if len >= self.max_len {
            self.faithful_shift()
        } else {
            0
        }
    }

    fn faithful_shift(&self) -> usize {
        usize::from(self.mode == Mode::Faithful && self.backbone == Backbone::Bert4rec)
    }

    /// The BERT4Rec mask token id.
    pub fn mask_token(&self) -> Option<u32> {
        (self.backbone == Backbone::Bert4rec).then_some(self.n_items as u32 + 1)
    }

    /// Number of views fused by concatenation (the user vector is `views × hidden` wide).
    pub fn n_views(&self) -> usize {
        match &self.semantic {
            Some(s) if s.views == Views::Both => 2,
            _ => 1,
        }
    }

    /// Width of a user representation: the views' encoder states side by side.
    pub fn user_width(&self) -> usize {
        self.hidden * self.n_views()
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
        if self.backbone == Backbone::Gru4rec && self.n_layers != 1 {
            return bad(format!(
                "gru4rec has one GRU layer, got layers = {}",
                self.n_layers
            ));
        }
        if self.max_len == 0 || self.max_len > 4096 {
            return bad(format!("max_len must be in 1..=4096, got {}", self.max_len));
        }
        if self.backbone == Backbone::Bert4rec && self.max_len < 2 {
            return bad("bert4rec needs max_len of at least 2 (one item and the mask)".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if !(self.ln_eps > 0.0 && self.ln_eps < 1.0) {
            return bad(format!("ln_eps must be in (0, 1), got {}", self.ln_eps));
        }
        if let Some(s) = &self.semantic {
            if s.input_dim == 0 || s.adapter_hidden == 0 {
                return bad("semantic input_dim and adapter_hidden must be at least 1".into());
            }
            if s.uses_cross() && (s.cross_heads == 0 || self.hidden % s.cross_heads != 0) {
                return bad(format!(
                    "hidden ({}) must be a positive multiple of cross-attention heads ({})",
                    self.hidden, s.cross_heads
                ));
            }
            if s.cross_residual && !s.uses_cross() {
                return bad(
                    "cross_residual needs the cross-attentions (both views, cross_attention on)"
                        .into(),
                );
            }
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
        c = ModelConfig::reference(Backbone::Gru4rec, 10);
        assert!(c.validate().is_ok());
        c.n_layers = 2;
        assert!(c.validate().unwrap_err().to_string().contains("gru4rec"));
        c = ModelConfig::sasrec(10);
        let mut s = SemanticConfig::reference(384);
        s.cross_heads = 3;
        c.semantic = Some(s);
        assert!(c.validate().unwrap_err().to_string().contains("cross"));
    }

    #[test]
    fn rows_views_and_mask_token() {
        let mut c = ModelConfig::reference(Backbone::Bert4rec, 10);
        assert_eq!(
            (c.item_rows(), c.mask_token(), c.n_views()),
            (12, Some(11), 1)
        );
        c.semantic = Some(SemanticConfig::reference(384));
        assert_eq!((c.n_views(), c.variant()), (2, "llmesr"));
        let s = ModelConfig::sasrec(10);
        assert_eq!(
            (s.item_rows(), s.mask_token(), s.variant()),
            (11, None, "base")
        );
    }

    #[test]
    fn residual_cross_attention_stays_out_of_old_configs() {
        // The JSON of a reference config, as written before the option existed.
        let old = r#"{"input_dim":384,"adapter_hidden":192,"views":"both","cross_attention":true,"cross_heads":2,"folded":false}"#;
        let s = SemanticConfig::reference(384);
        assert_eq!(serde_json::to_string(&s).unwrap(), old);
        assert_eq!(serde_json::from_str::<SemanticConfig>(old).unwrap(), s);
        let on = SemanticConfig {
            cross_residual: true,
            ..s
        };
        let json = serde_json::to_string(&on).unwrap();
        assert!(json.contains(r#""cross_residual":true"#));
        assert_eq!(serde_json::from_str::<SemanticConfig>(&json).unwrap(), on);
    }
}
