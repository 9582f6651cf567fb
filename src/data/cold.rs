//! New items for the cold-start evaluation: a seeded share of the catalogue is held out of every
//! training and validation input and target, as if those items were launched after training;
//! they keep their ids and stay candidates at test time, where a user whose last item is one of
//! them is in the `cold_item` group.

use super::dataset::{Dataset, MIN_SEQUENCE};
use crate::{Error, Result};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// Which share of the items is new, drawn with which seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ColdConfig {
    pub share: f64,
    pub seed: u64,
}

impl ColdConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.share > 0.0 && self.share < 1.0) {
            return Err(Error::Config(format!(
                "cold item share must be in (0, 1), got {}",
                self.share
            )));
        }
        Ok(())
    }
}

/// The held-out items of one catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct ColdItems {
    /// Sorted item ids.
    ids: Vec<u32>,
    /// By item id (index 0, the padding slot, is never cold).
    mask: Vec<bool>,
}

impl ColdItems {
    /// `round(share · n_items)` items (at least one), uniformly at random from `seed`.
    pub fn draw(n_items: usize, cfg: ColdConfig) -> Result<Self> {
        cfg.validate()?;
        let k = ((cfg.share * n_items as f64).round() as usize).clamp(1, n_items.max(1));
        if n_items < 2 {
            return Err(Error::Dataset(format!(
                "{n_items} items: too few to hold any out"
            )));
        }
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let mut ids: Vec<u32> = rand::seq::index::sample(&mut rng, n_items, k)
            .into_iter()
            .map(|i| i as u32 + 1)
            .collect();
        ids.sort_unstable();
        let mut mask = vec![false; n_items + 1];
        for &i in &ids {
            mask[i as usize] = true;
        }
        Ok(ColdItems { ids, mask })
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    pub fn contains(&self, id: u32) -> bool {
        self.mask.get(id as usize).copied().unwrap_or(false)
    }

    /// An error unless `data` is held out: a new item may only be a user's last (test) item.
    pub fn check_held_out(&self, data: &Dataset) -> Result<()> {
        let leaked = data.sequences.iter().any(|s| {
            s[..s.len().saturating_sub(1)]
                .iter()
                .any(|&i| self.contains(i))
        });
        if leaked {
            return Err(Error::Dataset(
                "new items appear in training or validation inputs: hold them out of the dataset first".into(),
            ));
        }
        Ok(())
    }

    /// The dataset as training sees it: every sequence without its cold items except a cold last
    /// item (the test target), users left with fewer than [`MIN_SEQUENCE`] items dropped. Item ids
    /// do not change.
    pub fn hold_out(&self, data: &Dataset) -> Result<Dataset> {
        let mut user_keys = Vec::with_capacity(data.n_users());
        let mut sequences = Vec::with_capacity(data.n_users());
        for (key, seq) in data.user_keys.iter().zip(&data.sequences) {
            let Some((&last, before)) = seq.split_last() else {
                continue;
            };
            let mut kept: Vec<u32> = before
                .iter()
                .copied()
                .filter(|&i| !self.contains(i))
                .collect();
            kept.push(last);
            if kept.len() >= MIN_SEQUENCE {
                user_keys.push(key.clone());
                sequences.push(kept);
            }
        }
        if sequences.is_empty() {
            return Err(Error::Dataset(format!(
                "{}: no user keeps {MIN_SEQUENCE} items once the new items are held out",
                data.name
            )));
        }
        Ok(Dataset {
            name: data.name.clone(),
            item_keys: data.item_keys.clone(),
            item_titles: data.item_titles.clone(),
            user_keys,
            sequences,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Dataset {
        Dataset {
            name: "t".into(),
            item_keys: (0..=10).map(|i| i.to_string()).collect(),
            item_titles: (0..=10).map(|i| i.to_string()).collect(),
            user_keys: vec!["a".into(), "b".into(), "c".into()],
            sequences: vec![vec![1, 2, 3, 4, 5], vec![6, 7, 3], vec![8, 9, 10, 2]],
        }
    }

    #[test]
    fn the_draw_is_seeded_and_sized() {
        let c = ColdConfig {
            share: 0.3,
            seed: 7,
        };
        let a = ColdItems::draw(10, c).unwrap();
        assert_eq!(a, ColdItems::draw(10, c).unwrap());
        assert_eq!(a.ids().len(), 3);
        assert_ne!(a, ColdItems::draw(10, ColdConfig { seed: 8, ..c }).unwrap());
        assert!(ColdItems::draw(10, ColdConfig { share: 1.0, ..c }).is_err());
    }

    #[test]
    fn cold_items_leave_inputs_and_stay_as_the_test_target() {
        let cold = ColdItems {
            ids: vec![3, 9],
            mask: (0..=10).map(|i| i == 3 || i == 9).collect(),
        };
        let d = cold.hold_out(&data()).unwrap();
        // a: 3 leaves the middle; b: 3 is the test target and stays, leaving [6, 7, 3];
        // c: 9 leaves, [8, 10, 2] remains.
        assert_eq!(
            d.sequences,
            vec![vec![1, 2, 4, 5], vec![6, 7, 3], vec![8, 10, 2]]
        );
        assert_eq!(d.n_items(), 10, "ids keep their numbers");
        let short = ColdItems {
            ids: vec![6],
            mask: (0..=10).map(|i| i == 6).collect(),
        };
        assert_eq!(short.hold_out(&data()).unwrap().user_keys, vec!["a", "c"]);
    }
}
