//! Hit@k, NDCG@k and MRR from 0-based ranks.

use serde::Serialize;

/// Cut-offs reported for Hit and NDCG.
pub const CUTOFFS: [usize; 3] = [5, 10, 20];

/// The NDCG gain of a single relevant item at 0-based `rank`: 1 / log2(rank + 2).
pub fn ndcg_gain(rank: usize) -> f64 {
    1.0 / ((rank + 2) as f64).log2()
}

/// Running sums of per-user metrics for one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Accum {
    pub users: usize,
    hit: [f64; 3],
    ndcg: [f64; 3],
    rr: f64,
}

impl Accum {
    /// Adds one user whose target ranked `rank` (0 = first).
    pub fn add(&mut self, rank: usize) {
        self.users += 1;
        for (j, &k) in CUTOFFS.iter().enumerate() {
            if rank < k {
                self.hit[j] += 1.0;
                self.ndcg[j] += ndcg_gain(rank);
            }
        }
        self.rr += 1.0 / (rank + 1) as f64;
    }

    /// Means as (metric name, value) pairs: `hit@5`, …, `ndcg@20`, `mrr`. Empty groups give NaN.
    pub fn means(&self) -> Vec<(String, f64)> {
        let n = self.users as f64;
        let mut out = Vec::with_capacity(7);
        for (j, k) in CUTOFFS.iter().enumerate() {
            out.push((format!("hit@{k}"), self.hit[j] / n));
        }
        for (j, k) in CUTOFFS.iter().enumerate() {
            out.push((format!("ndcg@{k}"), self.ndcg[j] / n));
        }
        out.push(("mrr".to_string(), self.rr / n));
        out
    }

    pub fn mean(&self, metric: &str) -> f64 {
        self.means()
            .into_iter()
            .find(|(m, _)| m == metric)
            .map_or(f64::NAN, |(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values() {
        let mut a = Accum::default();
        a.add(0); // hit everywhere, ndcg 1, rr 1
        a.add(6); // misses @5, ndcg@10 = 1/log2(8) = 1/3, rr = 1/7
        a.add(30); // misses all, rr = 1/31
        assert!((a.mean("hit@5") - 1.0 / 3.0).abs() < 1e-12);
        assert!((a.mean("hit@10") - 2.0 / 3.0).abs() < 1e-12);
        assert!((a.mean("ndcg@10") - (1.0 + 1.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((a.mean("ndcg@5") - 1.0 / 3.0).abs() < 1e-12);
        assert!((a.mean("mrr") - (1.0 + 1.0 / 7.0 + 1.0 / 31.0) / 3.0).abs() < 1e-12);
        assert_eq!(a.users, 3);
    }

    #[test]
    fn rank_nine_is_inside_at_ten_and_rank_ten_is_not() {
        let mut a = Accum::default();
        a.add(9);
        assert_eq!(a.mean("hit@10"), 1.0);
        assert!((a.mean("ndcg@10") - 1.0 / 11f64.log2()).abs() < 1e-12);
        let mut b = Accum::default();
        b.add(10);
        assert_eq!(b.mean("hit@10"), 0.0);
        assert_eq!(b.mean("hit@20"), 1.0);
    }
}
