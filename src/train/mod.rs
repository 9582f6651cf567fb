//! Native training, one concept a file: the configuration, batch sampling, the loss, semantic
//! initialisation, the epoch loop, checkpoints and resume state, the run record, validation curves
//! and the export of a run as a bundle.

pub mod adam;
pub mod checkpoint;
pub mod config;
pub mod curves;
pub mod distill;
pub mod export;
pub mod init;
pub mod loss;
pub mod new_items;
pub mod preset;
pub mod run;
pub mod sampler;
pub mod text_space;
pub mod trainer;

pub use config::{IdInit, Teacher, TrainConfig};
pub use init::SemanticInputs;
pub use loss::{step_loss, Distill, LossConfig, LossKind, StepLoss};
pub use preset::{Preset, PresetSettings};
pub use run::{RunRecord, TrainOutcome};
pub use trainer::{train, TrainInputs, Trained};
