//! The model's tensor names, derived from its config in one place: the names `SeqRec::new` gives its
//! variables, the names a checkpoint and a bundle hold, and the names the inference engine reads.

use super::config::ModelConfig;

/// The ID (collaborative) item table, initialised from the PCA of the semantic table in LLM-ESR.
pub const ID_TABLE: &str = "item_emb.weight";
/// The frozen language-model item table of a trained LLM-ESR model; the optimiser never updates it.
pub const FROZEN_TABLE: &str = "llm_emb.weight";
/// The semantic view folded through the adapter (`adapter(FROZEN_TABLE)`), as bundles store it.
pub const SEMANTIC_TABLE: &str = "se_emb.weight";
/// A bundle's items in its text space ([`crate::bundle::TextSpace`]).
pub const TEXT_TABLE: &str = "text_emb.weight";
/// The map from the text model's vectors into that space (`.weight`, `.bias`).
pub const TEXT_MAP: &str = "text_map";
/// The position table of the transformer backbones.
pub const POS_TABLE: &str = "pos_emb.weight";
/// The two linear layers of the semantic adapter, in order.
pub const ADAPTER: [&str; 2] = ["adapter.0", "adapter.1"];
/// LLM-ESR's cross-attentions: semantic queries over ID keys, then ID queries over semantic keys.
pub const CROSS: [&str; 2] = ["llm2id", "id2llm"];

/// The parts of one transformer block, under `blocks.{i}.`.
const BLOCK_PARTS: [&str; 16] = [
    "ln_attn.weight",
    "ln_attn.bias",
    "attn.q.weight",
    "attn.q.bias",
    "attn.k.weight",
    "attn.k.bias",
    "attn.v.weight",
    "attn.v.bias",
    "attn.out.weight",
    "attn.out.bias",
    "ln_ffn.weight",
    "ln_ffn.bias",
    "ff1.weight",
    "ff1.bias",
    "ff2.weight",
    "ff2.bias",
];
/// The parts of one cross-attention: bias-free Q/K/V, a biased output.
const CROSS_PARTS: [&str; 5] = ["q.weight", "k.weight", "v.weight", "out.weight", "out.bias"];

/// Every tensor a model of `cfg` has, sorted: the trained form (frozen table and adapter) or, when
/// `cfg.semantic.folded`, the exported form (the folded semantic table).
pub fn tensor_names(cfg: &ModelConfig) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let sem = cfg.semantic.as_ref();
    if sem.is_none_or(|s| s.has_id_view()) {
        names.push(ID_TABLE.into());
    }
    if let Some(s) = sem.filter(|s| s.has_semantic_view()) {
        if s.folded {
            names.push(SEMANTIC_TABLE.into());
        } else {
            names.push(FROZEN_TABLE.into());
            for a in ADAPTER {
                names.extend([format!("{a}.weight"), format!("{a}.bias")]);
            }
        }
    }
    if sem.is_some_and(|s| s.uses_cross()) {
        for c in CROSS {
            names.extend(CROSS_PARTS.iter().map(|p| format!("{c}.{p}")));
        }
    }
    if cfg.backbone.is_transformer() {
        names.push(POS_TABLE.into());
        for i in 0..cfg.n_layers {
            names.extend(BLOCK_PARTS.iter().map(|p| format!("blocks.{i}.{p}")));
        }
        names.extend(["ln_last.weight".into(), "ln_last.bias".into()]);
    } else {
        names.extend(["gru.weight_ih".into(), "gru.weight_hh".into()]);
    }
    names.sort();
    names
}

/// New items: text vector → semantic row (the folded adapter), and → ID row.
pub const SEMANTIC_MAP: &str = "sem_map";
pub const ID_MAP: &str = "id_map";

/// The tensors a bundle's text space adds to the model's: its table and map, and the maps that
/// place new items (the semantic one where the model has a semantic view, the ID one where it has
/// an ID view and new ID rows are not zero).
pub fn text_names(cfg: &ModelConfig, space: &crate::bundle::TextSpace) -> Vec<String> {
    let mut maps = vec![TEXT_MAP];
    if let Some(n) = &space.new_items {
        let sem = cfg.semantic.as_ref();
        if sem.is_some_and(|s| s.has_semantic_view()) {
            maps.push(SEMANTIC_MAP);
        }
        if sem.is_none_or(|s| s.has_id_view()) && n.id != crate::bundle::NewItemId::Zero {
            maps.push(ID_MAP);
        }
    }
    let mut names = vec![TEXT_TABLE.to_string()];
    for m in maps {
        names.extend([format!("{m}.weight"), format!("{m}.bias")]);
    }
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{Backbone, Mode, SemanticConfig, Views};
    use crate::model::SeqRec;
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    /// Every backbone, base and LLM-ESR with each ablation's parts, trained and folded, one and
    /// three layers, both modes.
    fn configs() -> Vec<ModelConfig> {
        let mut out = Vec::new();
        for backbone in [Backbone::Sasrec, Backbone::Gru4rec, Backbone::Bert4rec] {
            for mode in [Mode::Corrected, Mode::Faithful] {
                let mut base = ModelConfig::reference(backbone, 9);
                base.mode = mode;
                base.max_len = 6;
                base.hidden = 8;
                base.n_heads = 2;
                out.push(base.clone());
                if backbone.is_transformer() {
                    let mut deep = base.clone();
                    deep.n_layers = 3;
                    out.push(deep);
                }
                for views in [Views::Both, Views::Collaborative, Views::Semantic] {
                    for (cross, residual) in [(true, false), (true, true), (false, false)] {
                        if residual && views != Views::Both {
                            continue; // refused by the config: residual needs the cross-attentions
                        }
                        for folded in [false, true] {
                            let mut c = base.clone();
                            let mut s = SemanticConfig::reference(12);
                            (s.views, s.cross_attention, s.cross_residual, s.folded) =
                                (views, cross, residual, folded);
                            if folded {
                                s.input_dim = c.hidden;
                            }
                            c.semantic = Some(s);
                            out.push(c);
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_schema_is_the_models_variable_names() {
        for cfg in configs() {
            let vars = VarMap::new();
            SeqRec::new(
                &cfg,
                VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
            )
            .unwrap();
            let mut keys: Vec<String> = vars.data().lock().unwrap().keys().cloned().collect();
            keys.sort();
            assert_eq!(tensor_names(&cfg), keys, "{cfg:?}");
        }
    }
}
