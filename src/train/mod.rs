//! Native training: configuration, batch sampling, the epoch loop with early stopping, checkpoints.

pub mod adam;
pub mod config;
pub mod distill;
pub mod progress;
pub mod run;
pub mod sampler;
pub mod trainer;

pub use config::{IdInit, Teacher, TrainConfig};
pub use run::RunRecord;
pub use trainer::{step_loss, train, Distill, SemanticInputs, StepLoss, TrainOutcome};
