//! The candle models: configuration, the tensor-name schema, seeded initialisation, input
//! preparation, attention, the encoders (transformer stack, GRU), the dual-view network, and the
//! custom ops they are built from ([`ops`]).

pub mod attention;
pub mod batch;
pub mod config;
pub mod gru;
pub mod init;
pub mod names;
pub mod network;
pub mod ops;
#[cfg(test)]
pub(crate) mod testing;
pub mod transformer;

pub use batch::{Padding, SeqBatch, Visibility};
pub use config::{Backbone, Mode, ModelConfig, SemanticConfig, Variant, Views};
pub use network::SeqRec;
