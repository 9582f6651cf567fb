//! Evaluation: ranking metrics, the full-ranking and sampled protocols, the most-popular floor and
//! result rows for `reports/quality.json`.

pub mod buckets;
pub mod evaluate;
pub mod metrics;
mod model_scorer;
pub mod popularity;
pub mod report;
pub mod semantic_knn;
pub mod views;

pub use evaluate::{evaluate, rank_all, EvalReport, Protocol, Ranked, Scorer};
pub use metrics::Accum;
pub use popularity::MostPopular;
pub use report::QualityRow;
