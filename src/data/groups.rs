//! Long-tail groups: tail/head users by history length and tail/head items by popularity.
//!
//! Defaults follow the method notes for MovieLens (every user has ≥ 20 ratings, so the paper's absolute
//! thresholds would leave no tail users): the 80% shortest histories are tail users and the 80% least
//! popular items are tail items. Absolute thresholds (`ts_user`/`ts_item`) reproduce the paper's datasets.

use super::dataset::Dataset;
use super::split::{eval_case, train_part, Stage};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// How a tail/head cut is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// This share of users/items (the lowest values) is tail: the cut is the value at that quantile.
    TailShare(f64),
    /// Values strictly below this integer are tail (the reference's `ts_user`/`ts_item`).
    Absolute(usize),
}

/// Which interactions item popularity counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PopularityScope {
    /// Training interactions only (all but each user's last two): no test leakage.
    Train,
    /// Train, validation and test, repeats within a user counted once, as the reference code does.
    AllDistinctUsers,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupConfig {
    pub user: Threshold,
    pub item: Threshold,
    pub popularity: PopularityScope,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            user: Threshold::TailShare(0.8),
            item: Threshold::TailShare(0.8),
            popularity: PopularityScope::Train,
        }
    }
}

impl GroupConfig {
    /// The default 80/20 cuts with popularity counted as `mode` counts it (training interactions
    /// in corrected mode; all of them, repeats once per user, in faithful mode).
    pub fn for_mode(mode: crate::model::Mode) -> Self {
        GroupConfig {
            popularity: match mode {
                crate::model::Mode::Corrected => PopularityScope::Train,
                crate::model::Mode::Faithful => PopularityScope::AllDistinctUsers,
            },
            ..GroupConfig::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        for (what, t) in [("user", self.user), ("item", self.item)] {
            if let Threshold::TailShare(s) = t {
                if !(s > 0.0 && s < 1.0) {
                    return Err(Error::Config(format!(
                        "{what} tail share must be in (0, 1), got {s}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The cuts as computed on one dataset, stored with every result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Groups {
    pub config: GroupConfig,
    /// Popularity per item id (index 0 unused), in the configured scope.
    pub item_popularity: Vec<u32>,
    /// Items with popularity below this are tail.
    pub item_cut: u32,
    /// Users whose evaluated input (capped at `max_len`) is shorter than this are tail.
    pub user_cut: usize,
    pub max_len: usize,
    pub n_tail_items: usize,
    pub n_tail_users_test: usize,
}

fn cut_at(mut values: Vec<usize>, t: Threshold) -> usize {
    match t {
        Threshold::Absolute(v) => v,
        Threshold::TailShare(s) => {
            values.sort_unstable();
            let idx = ((s * values.len() as f64).floor() as usize).min(values.len() - 1);
            values[idx]
        }
    }
}

/// Item popularity in the given scope.
pub fn popularity(data: &Dataset, scope: PopularityScope) -> Vec<u32> {
    let mut pop = vec![0u32; data.n_items() + 1];
    for seq in &data.sequences {
        match scope {
            PopularityScope::Train => train_part(seq).iter().for_each(|&i| pop[i as usize] += 1),
            PopularityScope::AllDistinctUsers => {
                let distinct: HashSet<u32> = seq.iter().copied().collect();
                distinct.into_iter().for_each(|i| pop[i as usize] += 1);
            }
        }
    }
    pop
}

impl Groups {
    pub fn compute(data: &Dataset, config: GroupConfig, max_len: usize) -> Result<Self> {
        config.validate()?;
        let item_popularity = popularity(data, config.popularity);
        let item_cut = cut_at(
            item_popularity[1..].iter().map(|&p| p as usize).collect(),
            config.item,
        ) as u32;
        let lengths: Vec<usize> = data
            .sequences
            .iter()
            .map(|s| eval_case(s, Stage::Test).0.len().min(max_len))
            .collect();
        let user_cut = cut_at(lengths.clone(), config.user);
        let n_tail_items = item_popularity[1..]
            .iter()
            .filter(|&&p| p < item_cut)
            .count();
        let n_tail_users_test = lengths.iter().filter(|&&l| l < user_cut).count();
        Ok(Groups {
            config,
            item_popularity,
            item_cut,
            user_cut,
            max_len,
            n_tail_items,
            n_tail_users_test,
        })
    }

    pub fn is_tail_item(&self, item: u32) -> bool {
        self.item_popularity[item as usize] < self.item_cut
    }

    /// `input_len` is the uncapped length of the evaluated input.
    pub fn is_tail_user(&self, input_len: usize) -> bool {
        input_len.min(self.max_len) < self.user_cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(seqs: Vec<Vec<u32>>, n_items: usize) -> Dataset {
        Dataset {
            name: "t".into(),
            item_keys: (0..=n_items).map(|i| i.to_string()).collect(),
            item_titles: (0..=n_items).map(|i| i.to_string()).collect(),
            user_keys: (0..seqs.len()).map(|i| i.to_string()).collect(),
            sequences: seqs,
        }
    }

    #[test]
    fn train_popularity_ignores_held_out_items() {
        let d = data(vec![vec![1, 1, 2, 3, 4], vec![1, 2, 3]], 4);
        assert_eq!(popularity(&d, PopularityScope::Train), vec![0, 3, 1, 0, 0]);
        assert_eq!(
            popularity(&d, PopularityScope::AllDistinctUsers),
            vec![0, 2, 2, 2, 1]
        );
    }

    #[test]
    fn quantile_cuts_and_group_sizes() {
        // Ten items with popularity 0..9 in the training part of one long user.
        let mut seq = Vec::new();
        for item in 1..=10u32 {
            for _ in 1..item {
                seq.push(item);
            }
        }
        seq.extend([1, 1]);
        let mut seqs = vec![seq];
        for len in 3..=6 {
            seqs.push(vec![11; len]); // item 11: popularity 1+2+3+4 = 10
        }
        let d = data(seqs, 11);
        let g = Groups::compute(&d, GroupConfig::default(), 200).unwrap();
        assert_eq!(g.item_cut, 8); // popularity values 0..=10: value at index floor(0.8·11) = 8
        assert_eq!(g.n_tail_items, 8);
        assert!(g.is_tail_item(1) && !g.is_tail_item(10));
        // Test-input lengths 46, 2, 3, 4, 5 → sorted [2,3,4,5,46]; index 4 → cut 46.
        assert_eq!(g.user_cut, 46);
        assert_eq!(g.n_tail_users_test, 4);
        assert!(g.is_tail_user(45) && !g.is_tail_user(46));
    }

    #[test]
    fn absolute_thresholds_and_length_cap() {
        let d = data(vec![vec![1, 2, 3, 4]], 4);
        let cfg = GroupConfig {
            user: Threshold::Absolute(12),
            item: Threshold::Absolute(4),
            popularity: PopularityScope::Train,
        };
        let g = Groups::compute(&d, cfg, 5).unwrap();
        assert_eq!((g.user_cut, g.item_cut), (12, 4));
        assert!(g.is_tail_user(100 /* capped to 5 */));
    }

    #[test]
    fn bad_share_is_refused() {
        let cfg = GroupConfig {
            user: Threshold::TailShare(1.5),
            ..GroupConfig::default()
        };
        assert!(cfg.validate().is_err());
    }
}
