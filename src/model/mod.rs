//! The candle models and what they share: configuration, seeded initialisation, dropout, input
//! preparation, linear layers, attention, the encoders (transformer stack, GRU) and the dual-view
//! network.

pub mod attention;
pub mod batch;
pub mod candidate_loss;
pub mod config;
pub mod cpu_storage;
pub mod cross_attention;
pub mod dropout;
pub mod fast_exp;
pub mod fold;
pub mod fused_attention;
pub mod fused_gru;
pub mod gemm;
pub mod gru;
pub mod init;
pub mod layer_norm;
pub mod linear;
pub mod masked_softmax;
pub mod network;
#[cfg(test)]
pub(crate) mod testing;
pub mod transformer;

pub use batch::{Padding, SeqBatch, Visibility};
pub use config::{Backbone, Mode, ModelConfig, SemanticConfig, Views};
pub use network::SeqRec;
