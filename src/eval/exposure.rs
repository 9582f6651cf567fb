//! The tail-exposure trade-off at serving time: for each re-ranking weight, the top 10 of every
//! test user from a bundle, scored by NDCG@10 of the held-out item, the tail share of the lists
//! and the share of the catalogue they cover.

use super::metrics::ndcg_gain;
use crate::data::split::eval_case;
use crate::data::{Dataset, Stage};
use crate::recommend::{Options, Recommender};
use crate::Result;
use serde::Serialize;
use std::collections::HashSet;

/// One weight's lists over every test user.
#[derive(Debug, Clone, Serialize)]
pub struct ExposureRow {
    pub weight: f32,
    #[serde(rename = "ndcg@10")]
    pub ndcg10: f64,
    pub tail_share: f64,
    pub coverage: f64,
    pub users: usize,
}

/// Serves every test user of `data` at each tail weight (session items excluded).
pub fn exposure(rec: &Recommender, data: &Dataset, weights: &[f32]) -> Result<Vec<ExposureRow>> {
    let mut out = Vec::with_capacity(weights.len());
    for &w in weights {
        let opts = Options {
            exclude_session: true,
            tail_weight: w,
        };
        let (mut ndcg, mut tail, mut shown) = (0f64, 0usize, 0usize);
        let mut seen = HashSet::new();
        for seq in &data.sequences {
            let (input, target) = eval_case(seq, Stage::Test);
            let recs = rec.recommend_with(input, 10, opts)?;
            if let Some(r) = recs.iter().position(|r| r.id == target) {
                ndcg += ndcg_gain(r);
            }
            tail += recs.iter().filter(|r| r.tail).count();
            shown += recs.len();
            seen.extend(recs.iter().map(|r| r.id));
        }
        let users = data.sequences.len();
        out.push(ExposureRow {
            weight: w,
            ndcg10: ndcg / users as f64,
            tail_share: tail as f64 / shown.max(1) as f64,
            coverage: seen.len() as f64 / rec.n_items() as f64,
            users,
        });
    }
    Ok(out)
}
