//! Export-time folding of LLM-ESR's semantic view: the frozen language-model table goes through
//! the (linear) adapter once, and the bundle carries the `[rows, hidden]` result instead of the
//! wide table and the adapter — exact, and far smaller (384 → 64 values per item for MiniLM).

use super::config::ModelConfig;
use crate::{Error, Result};
use candle_core::Tensor;
use std::collections::HashMap;

/// Returns the folded config and weights; models without an unfolded semantic view pass through.
pub fn fold_semantic(
    cfg: &ModelConfig,
    weights: &HashMap<String, Tensor>,
) -> Result<(ModelConfig, HashMap<String, Tensor>)> {
    let mut cfg = cfg.clone();
    let mut out = weights.clone();
    let Some(sem) = cfg.semantic.as_mut() else {
        return Ok((cfg, out));
    };
    if sem.folded || !sem.has_semantic_view() {
        sem.folded = true;
        out.remove(super::network::FROZEN_TABLE);
        return Ok((cfg, out));
    }
    let mut take = |name: &str| {
        out.remove(name)
            .ok_or_else(|| Error::Config(format!("checkpoint lacks {name}")))
    };
    let table = take(super::network::FROZEN_TABLE)?;
    let (w0, b0) = (take("adapter.0.weight")?, take("adapter.0.bias")?);
    let (w1, b1) = (take("adapter.1.weight")?, take("adapter.1.bias")?);
    let hidden = table.matmul(&w0.t()?)?.broadcast_add(&b0)?;
    let folded = hidden.matmul(&w1.t()?)?.broadcast_add(&b1)?;
    out.insert("se_emb.weight".to_string(), folded);
    sem.folded = true;
    Ok((cfg, out))
}
