//! The candle models and what they share: configuration, seeded initialisation, dropout, input
//! preparation and attention.

pub mod attention;
pub mod batch;
pub mod config;
pub mod dropout;
pub mod init;
pub mod sasrec;

pub use batch::SeqBatch;
pub use config::{Backbone, Mode, ModelConfig};
pub use sasrec::SasRec;
