//! Evaluation: ranking metrics, the full-ranking and sampled protocols, the most-popular floor and
//! result rows for `reports/quality.json`.

pub mod buckets;
pub mod evaluate;
pub mod exposure;
#[cfg(not(target_arch = "wasm32"))]
pub mod figure;
pub mod metrics;
mod model_scorer;
pub mod popularity;
pub mod report;
pub mod semantic_knn;
pub mod views;

pub use evaluate::{
    evaluate, evaluate_protocols, evaluate_with, rank_all, rank_all_with, EvalOptions, EvalReport,
    Protocol, Ranked, Scorer, COLD_GROUPS, PROTOCOLS,
};
pub use metrics::{ndcg_gain, Accum};
pub use popularity::MostPopular;
pub use report::QualityRow;
