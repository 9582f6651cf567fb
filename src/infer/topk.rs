//! Top-k selection over the catalogue's scores in one pass, with a k-sized heap: no sort of the
//! catalogue, no copy of it, and excluded items (the session) skipped in place. Also the checks on
//! what a caller asks of it (k, a user vector), shared by the CLI and the browser.

use crate::{Error, Result};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Refuses `k = 0`. Any larger k is served: a k above the number of candidates means all of them.
pub fn check_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::Request("k must be at least 1".to_string()));
    }
    Ok(())
}

/// Refuses a user vector that is not `width` finite values (a NaN or infinity would rank every
/// item arbitrarily).
pub fn check_user(user: &[f32], width: usize) -> Result<()> {
    if user.len() != width {
        return Err(Error::Request(format!(
            "user vector has {} values, the model's has {width}",
            user.len()
        )));
    }
    if let Some((i, v)) = user.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::Request(format!(
            "user vector[{i}] must be a finite number, got {v}"
        )));
    }
    Ok(())
}

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

/// The `k` best candidates seen so far, in a `k`-slot heap: candidates are offered a stretch of
/// consecutive ids at a time, so a catalogue can be scored in cache-sized chunks and never held
/// whole.
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    /// Keeps the best `k`; the caller bounds `k` by the number of candidates, as the heap's
    /// memory follows it.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Offers ids `first..first + scores.len()`, skipping the sorted ids in `excluded`.
    pub fn offer(&mut self, first: u32, scores: &[f32], excluded: &[u32]) {
        if self.k == 0 {
            return;
        }
        for (i, &score) in scores.iter().enumerate() {
            let c = Worst {
                score,
                id: first + i as u32,
            };
            if self.heap.len() == self.k {
                // Only a candidate that beats the current k-th best costs anything more.
                if c >= *self.heap.peek().expect("k > 0") {
                    continue;
                }
            }
            if excluded.binary_search(&c.id).is_ok() {
                continue;
            }
            if self.heap.len() == self.k {
                self.heap.pop();
            }
            self.heap.push(c);
        }
    }

    /// The kept `(id, score)`, best first, ties to the lower id.
    pub fn into_sorted(self) -> Vec<(u32, f32)> {
        let mut out: Vec<(u32, f32)> = self.heap.into_iter().map(|w| (w.id, w.score)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

/// The `k` best `(id, score)` over ids `1..scores.len()`, best first, ties to the lower id;
/// `excluded` (sorted) ids are skipped. Index 0 is the padding slot and never a candidate. A `k`
/// above the number of candidates returns all of them; memory follows the candidates, not `k`.
pub fn top_k(scores: &[f32], k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
    let mut best = TopK::new(k.min(scores.len().saturating_sub(1)));
    if scores.len() > 1 {
        best.offer(1, &scores[1..], excluded);
    }
    best.into_sorted()
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

    /// Offering the candidates in chunks of any size keeps exactly what one offer keeps.
    #[test]
    fn chunked_offers_keep_what_one_offer_keeps() {
        let scores: Vec<f32> = (0..300).map(|i| ((i * 53) % 29) as f32 * 0.5).collect();
        let excluded = vec![2u32, 57, 58, 299];
        for k in [1, 10, 298] {
            let want = top_k(&scores, k, &excluded);
            for chunk in [1, 7, 64, 299] {
                let mut best = TopK::new(k);
                for (c, part) in scores[1..].chunks(chunk).enumerate() {
                    best.offer(1 + (c * chunk) as u32, part, &excluded);
                }
                assert_eq!(best.into_sorted(), want, "k={k} chunk={chunk}");
            }
        }
    }

    #[test]
    fn a_k_beyond_the_catalogue_is_every_candidate_without_allocating_k() {
        let scores: Vec<f32> = (0..50).map(|i| ((i * 7) % 11) as f32).collect();
        let all = top_k(&scores, 49, &[4]);
        assert_eq!(all.len(), 48);
        // A heap of usize::MAX (or k + 1 of it) would overflow or exhaust memory.
        for k in [50, 1 << 20, u32::MAX as usize, usize::MAX] {
            assert_eq!(top_k(&scores, k, &[4]), all, "k={k}");
        }
        assert!(top_k(&[], usize::MAX, &[]).is_empty());
        assert!(top_k(&[0.5], usize::MAX, &[]).is_empty());
    }

    #[test]
    fn checks_name_the_argument_and_the_value() {
        assert_eq!(
            check_k(0).unwrap_err().to_string(),
            "request: k must be at least 1"
        );
        assert!(check_k(1).is_ok() && check_k(usize::MAX).is_ok());
        assert!(check_user(&[0.0, -1.5, 3e38], 3).is_ok());
        assert_eq!(
            check_user(&[0.0; 3], 4).unwrap_err().to_string(),
            "request: user vector has 3 values, the model's has 4"
        );
        for (v, shown) in [
            (f32::NAN, "NaN"),
            (f32::INFINITY, "inf"),
            (f32::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(
                check_user(&[1.0, v, 2.0], 3).unwrap_err().to_string(),
                format!("request: user vector[1] must be a finite number, got {shown}")
            );
        }
    }

    proptest::proptest! {
        /// Any k (0 to usize::MAX), any finite scores, any exclusions: no panic, and the answer
        /// is the best `min(k, candidates)`, sorted, without excluded ids or NaN.
        #[test]
        fn any_k_is_answered_with_at_most_the_candidates(
            scores in proptest::collection::vec(-1e30f32..1e30, 0..80),
            k in proptest::prop_oneof![0usize..100, proptest::num::usize::ANY],
            excluded in proptest::collection::btree_set(0u32..90, 0..10),
        ) {
            let excluded: Vec<u32> = excluded.into_iter().collect();
            let out = top_k(&scores, k, &excluded);
            let candidates = (1..scores.len() as u32)
                .filter(|i| excluded.binary_search(i).is_err())
                .count();
            proptest::prop_assert_eq!(out.len(), k.min(candidates));
            proptest::prop_assert!(out.windows(2).all(|w| w[0].1 >= w[1].1));
            proptest::prop_assert!(out.iter().all(|&(id, s)| !s.is_nan()
                && id >= 1
                && (id as usize) < scores.len()
                && excluded.binary_search(&id).is_err()));
        }
    }

    /// The native side of every method the browser exports, on a small random model: requests
    /// with any k, ids, tail weight and user vector are answered or refused, never a panic, and
    /// an answer holds no NaN. (The browser suite sends JS values of every kind to the wasm build.)
    mod requests {
        use super::*;
        use crate::bundle::{self, Manifest};
        use crate::model::{init::random_weights, Mode, ModelConfig};
        use crate::recommend::{Options, Recommender};
        use proptest::prelude::*;
        use std::sync::OnceLock;

        const N: usize = 30;

        fn rec() -> &'static Recommender {
            static R: OnceLock<Recommender> = OnceLock::new();
            R.get_or_init(|| {
                let mut cfg = ModelConfig::sasrec(N);
                cfg.max_len = 8;
                cfg.hidden = 8;
                cfg.n_heads = 2;
                cfg.mode = Mode::Corrected;
                let w = random_weights(&cfg, 5).unwrap();
                let bytes = bundle::write(&Manifest::synthetic("requests", &cfg), &w).unwrap();
                Recommender::from_bytes(&bytes).unwrap()
            })
        }

        fn id() -> impl Strategy<Value = u32> {
            prop_oneof![8 => 1..=N as u32, 1 => Just(0u32), 1 => Just(N as u32 + 1), 1 => any::<u32>()]
        }

        fn k() -> impl Strategy<Value = usize> {
            prop_oneof![
                0usize..3 * N,
                Just(usize::MAX),
                Just(u32::MAX as usize),
                any::<usize>()
            ]
        }

        fn weight() -> impl Strategy<Value = f32> {
            prop_oneof![Just(0.0f32), 0.0f32..4.0, any::<f32>()]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]

            #[test]
            fn recommend_item_and_user_vector(
                session in prop::collection::vec(id(), 0..20),
                k in k(),
                exclude: bool,
                tail_weight in weight(),
                item in id(),
            ) {
                let rec = rec();
                let opts = Options { exclude_session: exclude, tail_weight };
                match rec.recommend_with(&session, k, opts) {
                    Ok(out) => {
                        let distinct: std::collections::BTreeSet<u32> = session.iter().copied().collect();
                        let available = if exclude { N - distinct.len() } else { N };
                        prop_assert_eq!(out.len(), k.min(available));
                        prop_assert!(out.iter().all(|r| r.score.is_finite()));
                        prop_assert!(tail_weight > 0.0 || out.windows(2).all(|w| w[0].score >= w[1].score));
                    }
                    Err(e) => {
                        let m = e.to_string();
                        prop_assert!(k == 0 || !tail_weight.is_finite() || tail_weight < 0.0
                            || session.is_empty() || m.contains("unknown item id"), "{}", m);
                    }
                }
                prop_assert_eq!(rec.item(item).is_ok(), (1..=N as u32).contains(&item));
                if let Ok(u) = rec.user_vector(&session) {
                    prop_assert!(u.iter().all(|v| v.is_finite()));
                }
            }

            #[test]
            fn top_k_for_any_user_vector(
                user in prop::collection::vec(
                    prop_oneof![8 => -4.0f32..4.0, 1 => any::<f32>()], 0..20),
                k in k(),
            ) {
                let engine = rec().engine();
                let width = engine.user_width();
                match check_user(&user, width).and_then(|_| check_k(k)) {
                    Ok(()) => {
                        let out = engine.top_k_for_user(&user, k, &[]);
                        prop_assert_eq!(out.len(), k.min(N));
                        prop_assert!(out.iter().all(|&(id, s)| (1..=N as u32).contains(&id) && !s.is_nan()));
                    }
                    Err(_) => prop_assert!(k == 0 || user.len() != width
                        || user.iter().any(|v| !v.is_finite())),
                }
            }
        }
    }
}
