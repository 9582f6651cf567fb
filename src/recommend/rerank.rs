//! Serving-time re-ranking for tail exposure: a model trained on popular-heavy data keeps showing
//! the same head items (the filter bubble LLM-ESR's paper worries about). This trades relevance for
//! less-popular items, in the open, with one weight a visitor can move.

/// Re-ranks a pool of `(id, score)` candidates (the model's best, in any order) and returns the
/// best `k` as `(id, score, adjusted)`, best adjusted first. The adjusted value is the score
/// min-max scaled over the pool, minus `weight` times the item's log popularity scaled by the
/// catalogue's largest: `weight` 0 keeps the model's order, 1 lets popularity cost as much as the
/// whole spread of scores in the pool, 2 twice that.
pub fn tail_rerank(
    pool: &[(u32, f32)],
    popularity: impl Fn(u32) -> u32,
    max_popularity: u32,
    weight: f32,
    k: usize,
) -> Vec<(u32, f32, f32)> {
    let (lo, hi) = pool
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &(_, s)| {
            (lo.min(s), hi.max(s))
        });
    let spread = if hi > lo { hi - lo } else { 1.0 };
    let denom = (1.0 + max_popularity as f32).ln().max(f32::MIN_POSITIVE);
    let mut out: Vec<(u32, f32, f32)> = pool
        .iter()
        .map(|&(id, s)| {
            let pop = (1.0 + popularity(id) as f32).ln() / denom;
            (id, s, (s - lo) / spread - weight * pop)
        })
        .collect();
    out.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    out.truncate(k);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_zero_keeps_the_order_and_weight_moves_toward_the_tail() {
        // Item i has score i; even items are very popular, odd ones obscure.
        let pool: Vec<(u32, f32)> = (1..=50).map(|i| (i, i as f32)).collect();
        let pop = |i: u32| if i % 2 == 0 { 10_000 } else { 1 };
        let ids = |w: f32| -> Vec<u32> {
            tail_rerank(&pool, pop, 10_000, w, 10)
                .iter()
                .map(|r| r.0)
                .collect()
        };
        assert_eq!(ids(0.0), (41..=50).rev().collect::<Vec<_>>());
        let mean_pop = |w: f32| ids(w).iter().map(|&i| pop(i) as f32).sum::<f32>() / 10.0;
        assert!(mean_pop(0.1) < mean_pop(0.0));
        assert!(mean_pop(0.5) < mean_pop(0.1));
        assert!(mean_pop(2.0) <= mean_pop(0.5));
        // Scores come back unchanged, and the order is by the adjusted value.
        let r = tail_rerank(&pool, pop, 10_000, 1.0, 10);
        assert!(r.iter().all(|x| x.1 == x.0 as f32));
        assert!(r.windows(2).all(|w| w[0].2 >= w[1].2));
    }
}
