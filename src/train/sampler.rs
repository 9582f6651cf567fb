//! Training batches in the reference's seq-to-seq form: every position predicts the next item,
//! against one uniform negative outside the user's training items.

use crate::data::split::{pad_left, train_part};
use crate::data::Dataset;
use rand::rngs::SmallRng;
use rand::Rng;
use std::collections::HashSet;

/// Host-side batch: left-padded inputs with aligned positive and negative targets (0 = no target).
pub struct TrainBatch {
    pub inputs: Vec<Vec<u32>>,
    pub positives: Vec<u32>,
    pub negatives: Vec<u32>,
}

/// Users whose training part has at least one (input, next item) pair.
pub fn trainable_users(data: &Dataset) -> Vec<usize> {
    (0..data.n_users())
        .filter(|&u| train_part(&data.sequences[u]).len() >= 2)
        .collect()
}

pub fn make_batch(
    data: &Dataset,
    users: &[usize],
    max_len: usize,
    rng: &mut SmallRng,
) -> TrainBatch {
    let n_items = data.n_items() as u32;
    let mut out = TrainBatch {
        inputs: Vec::with_capacity(users.len()),
        positives: Vec::with_capacity(users.len() * max_len),
        negatives: Vec::with_capacity(users.len() * max_len),
    };
    for &u in users {
        let train = train_part(&data.sequences[u]);
        let seen: HashSet<u32> = train.iter().copied().collect();
        out.inputs
            .push(pad_left(&train[..train.len() - 1], max_len));
        let targets = pad_left(&train[1..], max_len);
        for &t in &targets {
            out.positives.push(t);
            let neg = if t == 0 || seen.len() >= n_items as usize {
                0
            } else {
                loop {
                    let c = rng.random_range(1..=n_items);
                    if !seen.contains(&c) {
                        break c;
                    }
                }
            };
            out.negatives.push(if t == 0 { 0 } else { neg });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn targets_shift_by_one_and_negatives_avoid_history() {
        let d = Dataset {
            name: "t".into(),
            item_keys: (0..=6).map(|i| i.to_string()).collect(),
            item_titles: (0..=6).map(|i| i.to_string()).collect(),
            user_keys: vec!["a".into()],
            sequences: vec![vec![1, 2, 3, 4, 5]],
        };
        let mut rng = SmallRng::seed_from_u64(0);
        for _ in 0..50 {
            let b = make_batch(&d, &[0], 4, &mut rng);
            assert_eq!(b.inputs, vec![vec![0, 0, 1, 2]]);
            assert_eq!(b.positives, vec![0, 0, 2, 3]);
            assert_eq!(b.negatives[..2], [0, 0]);
            assert!(b.negatives[2..].iter().all(|&n| n == 4 || n == 5 || n == 6));
        }
    }
}
