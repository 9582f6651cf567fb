//! How good the similar-user lists are for self-distillation: do a user's language-model neighbours
//! share its items, and are they typical of it or of the mainstream? A teacher that is the mean of
//! a few over-represented, popular-item users ("hubs") pulls every user toward the head.

use crate::data::split::train_part;
use crate::data::Dataset;
use crate::{Error, Result};
use rand::rngs::SmallRng;
use rand::seq::index::sample;
use rand::SeedableRng;
use serde::Serialize;
use std::collections::HashSet;

#[derive(Debug, Clone, Serialize)]
pub struct NeighbourQuality {
    /// Users with a similar-user list.
    pub users: usize,
    /// Neighbours used per user.
    pub k: usize,
    /// Mean Jaccard overlap of training items with the `k` listed neighbours.
    pub jaccard_listed: f64,
    /// The same with `k` users drawn at random.
    pub jaccard_random: f64,
    /// The same with the `k` users of largest overlap (the best any list could do), over a seeded
    /// sample of at most `sample` users.
    pub jaccard_best: f64,
    pub sample: usize,
    /// Mean training popularity of a user's items, for the user and for its listed neighbours.
    pub popularity_own: f64,
    pub popularity_listed: f64,
    /// Share of all neighbour slots filled by the 10% of users listed most often.
    pub hub_slot_share: f64,
    /// Mean item popularity of those hub users.
    pub popularity_hubs: f64,
    /// Users that are nobody's neighbour.
    pub never_listed: usize,
}

fn jaccard(a: &HashSet<u32>, b: &HashSet<u32>) -> f64 {
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Measures `similar` (per dataset user, dataset user indices, most similar first; the user itself
/// is skipped) with the first `k` neighbours of each user.
pub fn neighbour_quality(
    data: &Dataset,
    similar: &[Vec<u32>],
    k: usize,
    sample_size: usize,
    seed: u64,
) -> Result<NeighbourQuality> {
    let n = data.n_users();
    if similar.len() != n {
        return Err(Error::Dataset(format!(
            "similar-user lists cover {} users, the dataset has {n}",
            similar.len()
        )));
    }
    if k == 0 || n < 2 {
        return Err(Error::Config(
            "neighbour quality needs k ≥ 1 and at least two users".into(),
        ));
    }
    let items: Vec<HashSet<u32>> = data
        .sequences
        .iter()
        .map(|s| train_part(s).iter().copied().collect())
        .collect();
    let mut pop = vec![0u32; data.n_items() + 1];
    for set in &items {
        for &i in set {
            pop[i as usize] += 1;
        }
    }
    let mean_pop = |u: usize| {
        let s = &items[u];
        s.iter().map(|&i| pop[i as usize] as f64).sum::<f64>() / s.len().max(1) as f64
    };
    let lists: Vec<Vec<usize>> = similar
        .iter()
        .enumerate()
        .map(|(u, l)| {
            l.iter()
                .map(|&v| v as usize)
                .filter(|&v| v != u && v < n)
                .take(k)
                .collect()
        })
        .collect();
    let mut rng = SmallRng::seed_from_u64(seed);
    let (mut users, mut listed, mut random, mut own, mut nb_pop) = (0usize, 0.0, 0.0, 0.0, 0.0);
    let mut count = vec![0usize; n];
    for (u, list) in lists.iter().enumerate() {
        if list.is_empty() {
            continue;
        }
        users += 1;
        listed += list
            .iter()
            .map(|&v| jaccard(&items[u], &items[v]))
            .sum::<f64>()
            / list.len() as f64;
        nb_pop += list.iter().map(|&v| mean_pop(v)).sum::<f64>() / list.len() as f64;
        own += mean_pop(u);
        let draws: Vec<usize> = sample(&mut rng, n - 1, k.min(n - 1))
            .into_iter()
            .map(|v| if v >= u { v + 1 } else { v })
            .collect();
        random += draws
            .iter()
            .map(|&v| jaccard(&items[u], &items[v]))
            .sum::<f64>()
            / draws.len() as f64;
        for &v in list {
            count[v] += 1;
        }
    }
    if users == 0 {
        return Err(Error::Dataset("no user has a similar-user list".into()));
    }
    let sampled: Vec<usize> = sample(&mut rng, n, sample_size.min(n)).into_vec();
    let mut best = 0.0;
    for &u in &sampled {
        let mut overlaps: Vec<f64> = (0..n)
            .filter(|&v| v != u)
            .map(|v| jaccard(&items[u], &items[v]))
            .collect();
        overlaps.sort_by(|a, b| b.total_cmp(a));
        let top = &overlaps[..k.min(overlaps.len())];
        best += top.iter().sum::<f64>() / top.len() as f64;
    }
    let mut by_count: Vec<usize> = (0..n).collect();
    by_count.sort_by_key(|&v| std::cmp::Reverse(count[v]));
    let hubs = &by_count[..(n / 10).max(1)];
    let slots: usize = count.iter().sum();
    Ok(NeighbourQuality {
        users,
        k,
        jaccard_listed: listed / users as f64,
        jaccard_random: random / users as f64,
        jaccard_best: best / sampled.len() as f64,
        sample: sampled.len(),
        popularity_own: own / users as f64,
        popularity_listed: nb_pop / users as f64,
        hub_slot_share: hubs.iter().map(|&v| count[v]).sum::<usize>() as f64 / slots.max(1) as f64,
        popularity_hubs: hubs.iter().map(|&v| mean_pop(v)).sum::<f64>() / hubs.len() as f64,
        never_listed: count.iter().filter(|&&c| c == 0).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten users with 7 items each (5 for training); users u and u + 5 share their training items,
    /// other pairs share none.
    fn data() -> Dataset {
        let sequences: Vec<Vec<u32>> = (0..10u32)
            .map(|u| {
                let b = (u % 5) * 5;
                (1..=7).map(|j| b + j).collect()
            })
            .collect();
        let n_items = 5 * 5 + 2;
        Dataset {
            name: "blocks".into(),
            item_keys: (0..=n_items).map(|i| i.to_string()).collect(),
            item_titles: (0..=n_items).map(|i| i.to_string()).collect(),
            user_keys: (0..10).map(|u| u.to_string()).collect(),
            sequences,
        }
    }

    #[test]
    fn exact_neighbours_beat_random_and_hubs_are_counted() {
        let d = data();
        // User u's twin (same block) is u ± 5.
        let twins: Vec<Vec<u32>> = (0..10u32).map(|u| vec![u, (u + 5) % 10]).collect();
        let q = neighbour_quality(&d, &twins, 1, 10, 1).unwrap();
        assert_eq!(q.users, 10);
        assert!((q.jaccard_listed - 1.0).abs() < 1e-12, "{q:?}");
        assert!(q.jaccard_random < 0.5, "{q:?}");
        assert!((q.jaccard_best - 1.0).abs() < 1e-12);
        assert_eq!(q.never_listed, 0);
        assert!(
            (q.hub_slot_share - 0.1).abs() < 1e-12,
            "each user fills one slot: {q:?}"
        );
        // Everyone lists user 0 (and user 0 lists user 1): user 0 is a hub.
        let hub: Vec<Vec<u32>> = (0..10u32)
            .map(|u| vec![if u == 0 { 1 } else { 0 }])
            .collect();
        let q = neighbour_quality(&d, &hub, 1, 10, 1).unwrap();
        assert_eq!(q.never_listed, 8);
        assert!((q.hub_slot_share - 0.9).abs() < 1e-12, "{q:?}");
        assert!(neighbour_quality(&d, &hub[..3], 1, 10, 1).is_err());
    }
}
