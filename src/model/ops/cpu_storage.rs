//! Reading candle's CPU storage inside the model's custom ops (attention weights, LayerNorm,
//! dropout), which all take contiguous f32 tensors.

use candle_core::{CpuStorage, Layout, Result, Storage};

/// The f32 values `layout` covers, or an error naming the op's input `what`.
pub fn contiguous_f32<'a>(s: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    match (s, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("{what} must be contiguous f32"),
    }
}

/// The same for a tensor's storage, read in a custom op's backward (`Tensor::storage_and_layout`).
pub fn storage_f32<'a>(storage: &'a Storage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(s) => contiguous_f32(s, layout, what),
        _ => candle_core::bail!("{what}: the training ops run on the CPU"),
    }
}
