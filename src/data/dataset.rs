//! A dataset with dense ids: per-user item sequences in time order, plus item keys and titles.

use super::filter::{keep_mask, FilterOptions};
use super::raw::RawData;
use crate::{Error, Result};
use std::collections::HashMap;

/// Users need a training part, a validation item and a test item.
pub const MIN_SEQUENCE: usize = 3;

/// Interaction sequences with items numbered `1..=n_items` (0 is padding).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    /// Original item key per id; index 0 is the padding slot and holds "".
    pub item_keys: Vec<String>,
    /// Display title per id; falls back to the key when the data has no item file.
    pub item_titles: Vec<String>,
    pub user_keys: Vec<String>,
    /// One sequence per user, oldest first.
    pub sequences: Vec<Vec<u32>>,
}

impl Dataset {
    /// Groups interactions by user, orders each user's by timestamp (stable on ties), applies the
    /// count filter, drops users left with fewer than [`MIN_SEQUENCE`] items and numbers the items in
    /// order of first appearance. Ids are assigned after every drop, so each id occurs in the data.
    pub fn from_raw(raw: &RawData, filter: &FilterOptions) -> Result<Self> {
        if raw.interactions.is_empty() {
            return Err(Error::Dataset(format!("{}: no interactions", raw.name)));
        }
        let pairs: Vec<(&str, &str)> = raw
            .interactions
            .iter()
            .map(|r| (r.user.as_str(), r.item.as_str()))
            .collect();
        let keep = keep_mask(&pairs, filter);

        let mut user_index: HashMap<&str, usize> = HashMap::new();
        let mut per_user: Vec<(&str, Vec<(f64, &str)>)> = Vec::new();
        for (r, _) in raw.interactions.iter().zip(&keep).filter(|(_, k)| **k) {
            let idx = *user_index.entry(r.user.as_str()).or_insert_with(|| {
                per_user.push((r.user.as_str(), Vec::new()));
                per_user.len() - 1
            });
            per_user[idx].1.push((r.timestamp, r.item.as_str()));
        }
        per_user.retain(|(_, s)| s.len() >= MIN_SEQUENCE);
        if per_user.is_empty() {
            return Err(Error::Dataset(format!(
                "{}: no user has {MIN_SEQUENCE} or more interactions after filtering ({:?}, min_user={}, min_item={})",
                raw.name, filter.kind, filter.min_user, filter.min_item
            )));
        }

        let mut item_ids: HashMap<&str, u32> = HashMap::new();
        let mut item_keys = vec![String::new()];
        let mut user_keys = Vec::with_capacity(per_user.len());
        let mut sequences = Vec::with_capacity(per_user.len());
        for (user, mut events) in per_user {
            // sort_by is stable, so equal timestamps keep file order.
            events.sort_by(|a, b| a.0.total_cmp(&b.0));
            let seq = events
                .iter()
                .map(|&(_, item)| {
                    *item_ids.entry(item).or_insert_with(|| {
                        item_keys.push(item.to_string());
                        (item_keys.len() - 1) as u32
                    })
                })
                .collect();
            user_keys.push(user.to_string());
            sequences.push(seq);
        }
        let item_titles = item_keys
            .iter()
            .map(|k| {
                raw.items
                    .get(k)
                    .map(|m| m.display_title())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| k.clone())
            })
            .collect();
        Ok(Dataset {
            name: raw.name.clone(),
            item_keys,
            item_titles,
            user_keys,
            sequences,
        })
    }

    pub fn n_items(&self) -> usize {
        self.item_keys.len() - 1
    }

    pub fn n_users(&self) -> usize {
        self.sequences.len()
    }

    pub fn n_interactions(&self) -> usize {
        self.sequences.iter().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::raw::RawInteraction;
    use crate::data::FilterKind;

    fn raw(rows: &[(&str, &str, f64)]) -> RawData {
        RawData {
            name: "t".into(),
            interactions: rows
                .iter()
                .map(|&(u, i, t)| RawInteraction {
                    user: u.into(),
                    item: i.into(),
                    timestamp: t,
                })
                .collect(),
            items: HashMap::new(),
        }
    }

    const NONE: FilterOptions = FilterOptions {
        kind: FilterKind::Single,
        min_user: 0,
        min_item: 0,
    };

    #[test]
    fn orders_by_time_stable_on_ties_and_numbers_by_first_appearance() {
        let d = Dataset::from_raw(
            &raw(&[
                ("u", "x", 5.0),
                ("u", "y", 1.0),
                ("u", "z", 5.0),
                ("v", "z", 0.0),
                ("v", "w", 0.0),
                ("v", "x", 0.0),
            ]),
            &NONE,
        )
        .unwrap();
        // u: y(1) x(5) z(5) — x before z as in the file.
        assert_eq!(d.item_keys, vec!["", "y", "x", "z", "w"]);
        assert_eq!(d.sequences, vec![vec![1, 2, 3], vec![3, 4, 2]]);
        assert_eq!(d.item_titles[1], "y");
    }

    #[test]
    fn duplicate_interactions_are_kept_as_in_the_reference() {
        let d = Dataset::from_raw(
            &raw(&[("u", "a", 1.0), ("u", "a", 2.0), ("u", "b", 3.0)]),
            &NONE,
        )
        .unwrap();
        assert_eq!(d.sequences, vec![vec![1, 1, 2]]);
    }

    #[test]
    fn short_users_are_dropped_and_empty_result_is_refused() {
        let d = Dataset::from_raw(&raw(&[("u", "a", 1.0), ("u", "b", 2.0)]), &NONE);
        let err = d.unwrap_err().to_string();
        assert!(err.contains("no user has 3 or more"), "{err}");
    }
}
