//! Native training: configuration, batch sampling, the epoch loop with early stopping, checkpoints.

pub mod adam;
pub mod config;
pub mod distill;
pub mod loss;
pub mod progress;
pub mod run;
pub mod sampler;
pub mod trainer;

pub use config::{IdInit, Teacher, TrainConfig};
pub use loss::{step_loss, Distill, LossConfig, LossKind, StepLoss};
pub use run::RunRecord;
pub use trainer::{train, SemanticInputs, TrainOutcome};
