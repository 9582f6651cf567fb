//! Training batches for the three backbones, each against one uniform negative outside the user's
//! training items: seq-to-seq (SASRec: every position predicts the next item), last position
//! (GRU4Rec) and cloze (BERT4Rec: masked positions predict the item they hide); and the order in
//! which an epoch visits them (shuffled, optionally length-bucketed).

use super::config::{TrainConfig, BUCKET_WINDOW};
use crate::data::split::{pad_left, train_part};
use crate::data::Dataset;
use crate::model::{Backbone, ModelConfig, Padding};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashSet;

/// Host-side batch: left-padded inputs with aligned positive and negative targets (0 = no target).
/// Targets are `[B, L]` for seq-to-seq and cloze batches and `[B]` for last-position batches.
pub struct TrainBatch {
    pub inputs: Vec<Vec<u32>>,
    pub positives: Vec<u32>,
    pub negatives: Vec<u32>,
    /// How many padding keys column 0 of the inputs stands for ([`TrainBatch::fit_padding`]).
    pub lead: usize,
}

impl TrainBatch {
    /// Drops what `padding` allows of the inputs' padding ([`Padding::fit`]) and the same columns
    /// of per-position targets, and records in `lead` how many padding keys column 0 stands for.
    pub fn fit_padding(&mut self, padding: Padding) {
        let width = |b: &Self| b.inputs.first().map_or(0, Vec::len);
        let before = width(self);
        self.lead = padding.fit(&mut self.inputs);
        let cut = before - width(self);
        if cut > 0 && self.positives.len() == self.inputs.len() * before {
            let trim = |v: &[u32]| -> Vec<u32> {
                v.chunks(before)
                    .flat_map(|r| r[cut..].iter().copied())
                    .collect()
            };
            self.positives = trim(&self.positives);
            self.negatives = trim(&self.negatives);
        }
    }
}

/// Users whose training part has at least one (input, next item) pair.
pub fn trainable_users(data: &Dataset) -> Vec<usize> {
    (0..data.n_users())
        .filter(|&u| train_part(&data.sequences[u]).len() >= 2)
        .collect()
}

/// The sequence a user is represented by in training and self-distillation: the training part
/// without its last item.
pub fn user_input(data: &Dataset, user: usize) -> &[u32] {
    let train = train_part(&data.sequences[user]);
    &train[..train.len() - 1]
}

fn negative(seen: &HashSet<u32>, n_items: u32, rng: &mut SmallRng) -> u32 {
    if seen.len() >= n_items as usize {
        return 0;
    }
    loop {
        let c = rng.random_range(1..=n_items);
        if !seen.contains(&c) {
            break c;
        }
    }
}

/// SASRec: inputs `train[..-1]`, targets `train[1..]`, one negative per position. With
/// probability `crop` a user's sequence starts at a uniformly drawn item of its training part
/// instead (keeping at least one input and one target), so positions count from that item.
pub fn seq2seq_batch(
    data: &Dataset,
    users: &[usize],
    max_len: usize,
    crop: f64,
    rng: &mut SmallRng,
) -> TrainBatch {
    let n_items = data.n_items() as u32;
    let mut out = TrainBatch {
        inputs: Vec::with_capacity(users.len()),
        positives: Vec::with_capacity(users.len() * max_len),
        negatives: Vec::with_capacity(users.len() * max_len),
        lead: 1,
    };
    for &u in users {
        let whole = train_part(&data.sequences[u]);
        let seen: HashSet<u32> = whole.iter().copied().collect();
        // The draw is skipped at crop 0, so the reference's batches use the generator as before.
        let start = if crop > 0.0 && rng.random::<f64>() < crop {
            rng.random_range(0..whole.len() - 1)
        } else {
            0
        };
        let train = &whole[start..];
        out.inputs
            .push(pad_left(&train[..train.len() - 1], max_len));
        for t in pad_left(&train[1..], max_len) {
            out.positives.push(t);
            out.negatives.push(if t == 0 {
                0
            } else {
                negative(&seen, n_items, rng)
            });
        }
    }
    out
}

/// GRU4Rec: inputs `train[..-1]`, one target (the last training item) per user.
pub fn last_item_batch(
    data: &Dataset,
    users: &[usize],
    max_len: usize,
    rng: &mut SmallRng,
) -> TrainBatch {
    let n_items = data.n_items() as u32;
    let mut out = TrainBatch {
        inputs: Vec::with_capacity(users.len()),
        positives: Vec::with_capacity(users.len()),
        negatives: Vec::with_capacity(users.len()),
        lead: 1,
    };
    for &u in users {
        let train = train_part(&data.sequences[u]);
        let seen: HashSet<u32> = train.iter().copied().collect();
        out.inputs.push(pad_left(user_input(data, u), max_len));
        out.positives
            .push(*train.last().expect("trainable users have 2+ items"));
        out.negatives.push(negative(&seen, n_items, rng));
    }
    out
}

/// One BERT4Rec sample: a user's training items with positions masked either at random or only
/// at the end (the reference trains on both kinds, one of each per user and epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClozeSample {
    pub user: usize,
    pub last_only: bool,
}

/// BERT4Rec: the newest `max_len` training items; random samples mask each position with
/// probability `mask_prob` (80% mask token, 10% a random item, 10% unchanged), last-only samples
/// mask the newest item. Masked positions carry their original item as the target.
pub fn cloze_batch(
    data: &Dataset,
    samples: &[ClozeSample],
    max_len: usize,
    mask_prob: f64,
    rng: &mut SmallRng,
) -> TrainBatch {
    let n_items = data.n_items() as u32;
    let mask = n_items + 1;
    let mut out = TrainBatch {
        inputs: Vec::with_capacity(samples.len()),
        positives: Vec::with_capacity(samples.len() * max_len),
        negatives: Vec::with_capacity(samples.len() * max_len),
        lead: 1,
    };
    for s in samples {
        let train = train_part(&data.sequences[s.user]);
        let seen: HashSet<u32> = train.iter().copied().collect();
        let mut input = pad_left(train, max_len);
        let mut targets = vec![0u32; max_len];
        let first = input.iter().take_while(|&&i| i == 0).count();
        for j in first..max_len {
            let masked = if s.last_only {
                j == max_len - 1
            } else {
                rng.random::<f64>() < mask_prob
            };
            if !masked {
                continue;
            }
            targets[j] = input[j];
            if s.last_only {
                input[j] = mask;
                continue;
            }
            let r = rng.random::<f64>();
            if r < 0.8 {
                input[j] = mask;
            } else if r < 0.9 {
                input[j] = rng.random_range(1..=n_items);
            }
        }
        for t in targets {
            out.positives.push(t);
            out.negatives.push(if t == 0 {
                0
            } else {
                negative(&seen, n_items, rng)
            });
        }
        out.inputs.push(input);
    }
    out
}

/// Training units of one epoch: users (SASRec, GRU4Rec) or two cloze samples per user (BERT4Rec),
/// shuffled; with `bucket`, each window of batches is sorted by history length, cut into batches,
/// and the batches of the epoch are shuffled.
pub(crate) fn epoch_samples(
    data: &Dataset,
    cfg: &ModelConfig,
    train: &TrainConfig,
    users: &[usize],
    rng: &mut SmallRng,
) -> Vec<ClozeSample> {
    let mut samples: Vec<ClozeSample> = users
        .iter()
        .map(|&user| ClozeSample {
            user,
            last_only: false,
        })
        .collect();
    if cfg.backbone == Backbone::Bert4rec {
        samples.extend(users.iter().map(|&user| ClozeSample {
            user,
            last_only: true,
        }));
    }
    samples.shuffle(rng);
    if !train.bucket {
        return samples;
    }
    let len = |s: &ClozeSample| data.sequences[s.user].len().min(cfg.max_len + 3);
    let mut batches: Vec<Vec<ClozeSample>> = Vec::new();
    for window in samples.chunks(train.batch_size * BUCKET_WINDOW) {
        let mut w = window.to_vec();
        w.sort_by_key(len);
        batches.extend(w.chunks(train.batch_size).map(<[ClozeSample]>::to_vec));
    }
    batches.shuffle(rng);
    batches.concat()
}

pub(crate) fn host_batch(
    data: &Dataset,
    cfg: &ModelConfig,
    train: &TrainConfig,
    samples: &[ClozeSample],
    rng: &mut SmallRng,
) -> TrainBatch {
    let users: Vec<usize> = samples.iter().map(|s| s.user).collect();
    let mut host = match cfg.backbone {
        Backbone::Sasrec => seq2seq_batch(data, &users, cfg.max_len, train.crop, rng),
        Backbone::Gru4rec => last_item_batch(data, &users, cfg.max_len, rng),
        Backbone::Bert4rec => cloze_batch(data, samples, cfg.max_len, train.mask_prob, rng),
    };
    // Columns that are padding in every row are dead work (corrected mode masks them) or copies of
    // one key (paper-faithful mode).
    host.fit_padding(Padding::of(cfg));
    host
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn data() -> Dataset {
        Dataset {
            name: "t".into(),
            item_keys: (0..=6).map(|i| i.to_string()).collect(),
            item_titles: (0..=6).map(|i| i.to_string()).collect(),
            user_keys: vec!["a".into()],
            sequences: vec![vec![1, 2, 3, 4, 5]],
        }
    }

    #[test]
    fn targets_shift_by_one_and_negatives_avoid_history() {
        let d = data();
        let mut rng = SmallRng::seed_from_u64(0);
        for _ in 0..50 {
            let b = seq2seq_batch(&d, &[0], 4, 0.0, &mut rng);
            assert_eq!(b.inputs, vec![vec![0, 0, 1, 2]]);
            assert_eq!(b.positives, vec![0, 0, 2, 3]);
            assert_eq!(b.negatives[..2], [0, 0]);
            assert!(b.negatives[2..].iter().all(|&n| n == 4 || n == 5 || n == 6));
            let g = last_item_batch(&d, &[0], 4, &mut rng);
            assert_eq!(
                (g.inputs[0].clone(), g.positives.clone()),
                (vec![0, 0, 1, 2], vec![3])
            );
            assert!(matches!(g.negatives[0], 4..=6));
        }
    }

    /// Cropped sequences are suffixes of the training part with an input and a target, shifted by
    /// one like the whole ones, and every start is drawn.
    #[test]
    fn crops_are_suffixes_of_the_training_part() {
        let d = data();
        let mut rng = SmallRng::seed_from_u64(2);
        let mut starts = HashSet::new();
        for _ in 0..300 {
            let b = seq2seq_batch(&d, &[0], 6, 1.0, &mut rng);
            let input: Vec<u32> = b.inputs[0].iter().copied().filter(|&i| i != 0).collect();
            let targets: Vec<u32> = b.positives.iter().copied().filter(|&i| i != 0).collect();
            // The training part of [1, 2, 3, 4, 5] is [1, 2, 3] (validation and test keep 4, 5).
            let start = input[0] as usize - 1;
            assert_eq!(input, (1 + start as u32..3).collect::<Vec<_>>());
            assert_eq!(targets, (2 + start as u32..=3).collect::<Vec<_>>());
            starts.insert(start);
        }
        assert_eq!(starts, HashSet::from([0, 1]));
        let plain = seq2seq_batch(&d, &[0], 6, 0.0, &mut rng);
        assert_eq!(plain.inputs, vec![vec![0, 0, 0, 0, 1, 2]]);
    }

    #[test]
    fn cloze_masks_only_real_positions_and_keeps_targets() {
        let d = data();
        let mut rng = SmallRng::seed_from_u64(1);
        let last = cloze_batch(
            &d,
            &[ClozeSample {
                user: 0,
                last_only: true,
            }],
            5,
            0.6,
            &mut rng,
        );
        assert_eq!(last.inputs, vec![vec![0, 0, 1, 2, 7]]);
        assert_eq!(last.positives, vec![0, 0, 0, 0, 3]);
        let mut masked = 0;
        for _ in 0..200 {
            let b = cloze_batch(
                &d,
                &[ClozeSample {
                    user: 0,
                    last_only: false,
                }],
                5,
                0.6,
                &mut rng,
            );
            assert_eq!(b.inputs[0][..2], [0, 0]);
            assert_eq!(b.positives[..2], [0, 0]);
            for j in 2..5 {
                if b.positives[j] != 0 {
                    masked += 1;
                    assert_eq!(b.positives[j], [1, 2, 3][j - 2]);
                    assert!(b.negatives[j] >= 4);
                } else {
                    assert_eq!(b.inputs[0][j], [1, 2, 3][j - 2]);
                }
            }
        }
        let share = masked as f64 / 600.0;
        assert!((share - 0.6).abs() < 0.07, "{share}");
    }
}
