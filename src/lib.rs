//! LLM-ESR sequential recommendation: data, models, evaluation and a bundle format shared by native
//! training (candle on the CPU) and in-browser inference (wasm32 through wasm-bindgen).
//!
//! The module tree follows the pipeline: [`data`] turns interaction files into leave-one-out splits and
//! long-tail groups, [`model`] holds the candle models, [`semantic`] computes the language-model side of LLM-ESR (item and user
//! embeddings, similar users, PCA), [`train`] fits the models natively, [`eval`] scores
//! them under the full-ranking and sampled protocols, [`bundle`] packs a trained model into one GGUF
//! file, [`infer`] is the fast inference path over a loaded bundle, and [`recommend`] turns a session
//! into recommendations on either side.

pub mod bundle;
pub mod data;
pub mod error;
pub mod eval;
#[cfg(not(target_arch = "wasm32"))]
pub mod fsio;
pub mod infer;
pub mod kernels;
pub mod model;
#[cfg(not(target_arch = "wasm32"))]
pub mod progress;
pub mod recommend;
#[cfg(not(target_arch = "wasm32"))]
pub mod semantic;
#[cfg(not(target_arch = "wasm32"))]
pub mod train;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use error::{Error, Result};
