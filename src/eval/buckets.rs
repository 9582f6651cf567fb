//! NDCG@10 by item-popularity bucket and by user-history-length bucket: the breakdown behind the
//! paper's long-tail figures. Buckets are quantiles of the evaluated users (five by default), so
//! each holds about the same number of users whatever the dataset's scale.

use super::evaluate::Ranked;
use super::metrics::Accum;
use serde::{Deserialize, Serialize};

/// One axis of the breakdown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Buckets {
    /// `item popularity` or `history length`.
    pub axis: String,
    /// Human-readable range per bucket, e.g. `12–40`.
    pub labels: Vec<String>,
    pub ndcg10: Vec<f64>,
    pub users: Vec<usize>,
}

/// Splits `ranked` into `n` quantile buckets of `key` (ties kept together, so buckets can be
/// uneven) and reports NDCG@10 per bucket.
pub fn by_quantile(
    axis: &str,
    ranked: &[Ranked],
    key: impl Fn(&Ranked) -> u64,
    n: usize,
) -> Buckets {
    let mut keyed: Vec<(u64, usize)> = ranked.iter().map(|r| (key(r), r.rank)).collect();
    keyed.sort_unstable();
    let mut out = Buckets {
        axis: axis.to_string(),
        labels: Vec::new(),
        ndcg10: Vec::new(),
        users: Vec::new(),
    };
    let total = keyed.len();
    let mut start = 0;
    for b in 0..n.max(1) {
        if start >= total {
            break;
        }
        let mut end = ((b + 1) * total / n.max(1)).max(start + 1).min(total);
        // Keep equal keys in one bucket.
        while end < total && keyed[end].0 == keyed[end - 1].0 {
            end += 1;
        }
        let mut acc = Accum::default();
        keyed[start..end]
            .iter()
            .for_each(|&(_, rank)| acc.add(rank));
        out.labels
            .push(format!("{}–{}", keyed[start].0, keyed[end - 1].0));
        out.ndcg10.push(acc.mean("ndcg@10"));
        out.users.push(acc.users);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_keep_ties_together_and_cover_everyone() {
        let ranked: Vec<Ranked> = (0..10)
            .map(|i| Ranked {
                input_len: [1, 1, 1, 1, 2, 3, 4, 5, 6, 7][i],
                target: 1,
                rank: if i < 5 { 0 } else { 100 },
            })
            .collect();
        let b = by_quantile("history length", &ranked, |r| r.input_len as u64, 5);
        assert_eq!(b.users.iter().sum::<usize>(), 10);
        assert_eq!(b.labels[0], "1–1");
        assert_eq!(b.users[0], 4);
        assert_eq!(b.ndcg10[0], 1.0);
        assert_eq!(*b.ndcg10.last().unwrap(), 0.0);
    }
}
