//! Top-k selection over the catalogue's scores in one pass, with a k-sized heap: no sort of the
//! catalogue, no copy of it, and excluded items (the session) skipped in place.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A candidate ordered worst-first, so the heap's top is the one to evict.
#[derive(Clone, Copy)]
struct Worst {
    score: f32,
    id: u32,
}

impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        // Lower score is worse; on a tie the higher id is worse (ties go to the lower id).
        other
            .score
            .total_cmp(&self.score)
            .then(self.id.cmp(&other.id))
    }
}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}

/// The `k` best `(id, score)` over ids `1..scores.len()`, best first, ties to the lower id;
/// `excluded` (sorted) ids are skipped. Index 0 is the padding slot and never a candidate.
pub fn top_k(scores: &[f32], k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
    let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(k + 1);
    if k == 0 {
        return Vec::new();
    }
    for (i, &score) in scores.iter().enumerate().skip(1) {
        let c = Worst {
            score,
            id: i as u32,
        };
        if heap.len() == k {
            // Only a candidate that beats the current k-th best costs anything more.
            if c >= *heap.peek().expect("k > 0") {
                continue;
            }
        }
        if excluded.binary_search(&c.id).is_ok() {
            continue;
        }
        if heap.len() == k {
            heap.pop();
        }
        heap.push(c);
    }
    let mut out: Vec<(u32, f32)> = heap.into_iter().map(|w| (w.id, w.score)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_full_sort_with_ties_and_exclusions() {
        let scores: Vec<f32> = (0..200).map(|i| ((i * 37) % 23) as f32).collect();
        let excluded = vec![3u32, 26, 49];
        for k in [1, 5, 10, 196, 199, 500] {
            let mut all: Vec<(u32, f32)> = (1..200u32)
                .filter(|i| !excluded.contains(i))
                .map(|i| (i, scores[i as usize]))
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(k);
            assert_eq!(top_k(&scores, k, &excluded), all, "k={k}");
        }
        assert!(top_k(&scores, 0, &[]).is_empty());
    }
}
