//! Which view carries a dual-view model's ranking: the concat fusion's score is a sum of one part
//! per view, so each part can be ranked alone to see what it recommends and how popularity-bound
//! it is.

use super::evaluate::rank_of;
use crate::data::split::{eval_case, Stage};
use crate::data::Dataset;
use crate::model::ModelConfig;
use crate::recommend::Recommender;
use crate::{Error, Result};
use serde::Serialize;
use std::collections::HashSet;

/// One set of views ranked on its own over every user of a stage (full ranking, the user's
/// history left out, as the evaluation does).
#[derive(Debug, Clone, Serialize)]
pub struct ViewRow {
    /// `both`, `collaborative` or `semantic`.
    pub views: String,
    pub ndcg10: f64,
    /// NDCG@10 over the users whose target is a tail item.
    pub tail_item_ndcg10: f64,
    /// Share of the top-10 lists that are tail items.
    pub tail_share: f64,
    /// Share of the catalogue that appears in some top-10 list.
    pub coverage: f64,
    /// Spearman correlation between an item's mean score over the users and its popularity.
    pub popularity_spearman: f64,
    /// Mean over users of the standard deviation of the scores across items: how much this part
    /// moves the ranking.
    pub score_spread: f64,
}

/// What each of the model's tables is, in the engine's order (the semantic view last), by the
/// predicates the engine builds its tables with: a semantic-only ablation has one table, and it
/// is not the ID table.
fn table_names(cfg: &ModelConfig) -> Vec<&'static str> {
    let sem = cfg.semantic.as_ref();
    let mut names = Vec::with_capacity(2);
    if sem.is_none_or(|s| s.has_id_view()) {
        names.push("collaborative");
    }
    if sem.is_some_and(|s| s.has_semantic_view()) {
        names.push("semantic");
    }
    names
}

fn name(set: &[usize], tables: &[&'static str]) -> &'static str {
    match set {
        [v] => tables[*v],
        _ => "both",
    }
}

/// Ranks of `xs` (ties share their mean rank), for Spearman's correlation.
fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut out = vec![0f64; xs.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && xs[idx[j + 1]] == xs[idx[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0;
        for &k in &idx[i..=j] {
            out[k] = mean;
        }
        i = j + 1;
    }
    out
}

/// Spearman's rank correlation (Pearson's over ranks); 0 when either side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - ma) * (y - mb);
        va += (x - ma) * (x - ma);
        vb += (y - mb) * (y - mb);
    }
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

/// Ranks every view on its own, and all views together, for each user of `stage`.
pub fn view_report(rec: &Recommender, data: &Dataset, stage: Stage) -> Result<Vec<ViewRow>> {
    let n = rec.n_items();
    if data.n_items() != n {
        return Err(Error::Dataset(format!(
            "the bundle has {n} items, the dataset {} has {}",
            data.name,
            data.n_items()
        )));
    }
    let engine = rec.engine();
    let n_views = engine.n_views();
    let tables = table_names(&rec.manifest().model);
    if tables.len() != n_views {
        return Err(Error::Bundle(format!(
            "the bundle's model config names {} item views but it holds {n_views} tables",
            tables.len()
        )));
    }
    let mut sets: Vec<Vec<usize>> = Vec::new();
    if n_views > 1 {
        sets.push((0..n_views).collect());
    }
    sets.extend((0..n_views).map(|v| vec![v]));
    let popularity: Vec<f64> = (1..=n as u32)
        .map(|id| rec.item(id).map(|e| e.popularity as f64))
        .collect::<Result<_>>()?;

    struct Acc {
        ndcg: f64,
        tail_ndcg: f64,
        tail_shown: usize,
        shown: usize,
        seen: HashSet<u32>,
        mean_score: Vec<f64>,
        spread: f64,
    }
    let mut accs: Vec<Acc> = sets
        .iter()
        .map(|_| Acc {
            ndcg: 0.0,
            tail_ndcg: 0.0,
            tail_shown: 0,
            shown: 0,
            seen: HashSet::new(),
            mean_score: vec![0.0; n],
            spread: 0.0,
        })
        .collect();
    let (mut users, mut tail_users) = (0usize, 0usize);
    let mut scores = vec![0f32; n + 1];
    for seq in &data.sequences {
        let (input, target) = eval_case(seq, stage);
        if input.is_empty() {
            continue;
        }
        let user = rec.user_vector(input)?;
        let mut history: Vec<u32> = input.to_vec();
        history.sort_unstable();
        history.dedup();
        let target_tail = rec.is_tail(target);
        users += 1;
        tail_users += usize::from(target_tail);
        for (set, acc) in sets.iter().zip(&mut accs) {
            scores.iter_mut().for_each(|s| *s = 0.0);
            for &v in set {
                engine.add_view_scores(&user, v, &mut scores);
            }
            let items = &scores[1..];
            let mean = items.iter().map(|&s| s as f64).sum::<f64>() / n as f64;
            let var = items
                .iter()
                .map(|&s| (s as f64 - mean).powi(2))
                .sum::<f64>()
                / n as f64;
            acc.spread += var.sqrt();
            for (m, &s) in acc.mean_score.iter_mut().zip(items) {
                *m += s as f64;
            }
            let rank = rank_of(
                &scores,
                target,
                (1..=n as u32).filter(|c| *c != target && history.binary_search(c).is_err()),
            );
            if rank < 10 {
                let gain = super::metrics::ndcg_gain(rank);
                acc.ndcg += gain;
                if target_tail {
                    acc.tail_ndcg += gain;
                }
            }
            for (id, _) in crate::infer::topk::top_k(&scores, 10, &history) {
                acc.shown += 1;
                acc.tail_shown += usize::from(rec.is_tail(id));
                acc.seen.insert(id);
            }
        }
    }
    if users == 0 {
        return Err(Error::Dataset(format!(
            "no user of {} has an input to rank",
            data.name
        )));
    }
    Ok(sets
        .iter()
        .zip(accs)
        .map(|(set, a)| ViewRow {
            views: name(set, &tables).to_string(),
            ndcg10: a.ndcg / users as f64,
            tail_item_ndcg10: a.tail_ndcg / tail_users.max(1) as f64,
            tail_share: a.tail_shown as f64 / a.shown.max(1) as f64,
            coverage: a.seen.len() as f64 / n as f64,
            popularity_spearman: spearman(&a.mean_score, &popularity),
            score_spread: a.spread / users as f64,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_and_reversed_orders() {
        let a = [1.0, 2.0, 3.0, 10.0];
        assert!((spearman(&a, &[0.1, 0.2, 0.5, 0.9]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&a, &[1.0; 4]), 0.0);
    }

    #[test]
    fn each_single_table_is_named_by_the_view_it_holds() {
        use crate::model::Views;
        let mut cfg = ModelConfig::sasrec(10);
        assert_eq!(table_names(&cfg), ["collaborative"]);
        let mut sem = crate::model::SemanticConfig::reference(8);
        cfg.semantic = Some(sem.clone());
        let both = table_names(&cfg);
        assert_eq!(both, ["collaborative", "semantic"]);
        assert_eq!(name(&[0, 1], &both), "both");
        assert_eq!(name(&[1], &both), "semantic");
        sem.views = Views::Semantic;
        cfg.semantic = Some(sem.clone());
        assert_eq!(name(&[0], &table_names(&cfg)), "semantic");
        sem.views = Views::Collaborative;
        cfg.semantic = Some(sem);
        assert_eq!(name(&[0], &table_names(&cfg)), "collaborative");
    }

    #[test]
    fn ties_share_their_mean_rank() {
        assert_eq!(ranks(&[5.0, 1.0, 5.0, 0.0]), vec![2.5, 1.0, 2.5, 0.0]);
    }
}
