//! Minimum-count filtering: the reference's single pass, or an iterative k-core.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How the minimum counts are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
pub enum FilterKind {
    /// One pass over raw counts, as the reference's `filter_common` does.
    Single,
    /// Repeat until every remaining user and item meets its minimum.
    Kcore,
}

/// Minimum interactions per user and per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterOptions {
    pub kind: FilterKind,
    pub min_user: usize,
    pub min_item: usize,
}

impl Default for FilterOptions {
    /// The reference code's defaults: 3 per user and item, single pass.
    fn default() -> Self {
        FilterOptions {
            kind: FilterKind::Single,
            min_user: 3,
            min_item: 3,
        }
    }
}

/// Returns a keep-flag per (user, item) pair index.
pub fn keep_mask<'a>(pairs: &[(&'a str, &'a str)], opts: &FilterOptions) -> Vec<bool> {
    let mut keep = vec![true; pairs.len()];
    loop {
        let mut users: HashMap<&str, usize> = HashMap::new();
        let mut items: HashMap<&str, usize> = HashMap::new();
        for (&(u, i), _) in pairs.iter().zip(&keep).filter(|(_, k)| **k) {
            *users.entry(u).or_default() += 1;
            *items.entry(i).or_default() += 1;
        }
        let mut changed = false;
        for (k, &(u, i)) in keep.iter_mut().zip(pairs) {
            if *k && (users[u] < opts.min_user || items[i] < opts.min_item) {
                *k = false;
                changed = true;
            }
        }
        if opts.kind == FilterKind::Single || !changed {
            return keep;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs() -> Vec<(&'static str, &'static str)> {
        // Item c is rare; once it goes, user 2 falls below 2 interactions.
        vec![
            ("1", "a"),
            ("1", "b"),
            ("2", "a"),
            ("2", "c"),
            ("3", "a"),
            ("3", "b"),
        ]
    }

    #[test]
    fn single_pass_uses_raw_counts() {
        let o = FilterOptions {
            kind: FilterKind::Single,
            min_user: 2,
            min_item: 2,
        };
        assert_eq!(
            keep_mask(&pairs(), &o),
            vec![true, true, true, false, true, true]
        );
    }

    #[test]
    fn kcore_iterates_until_stable() {
        let o = FilterOptions {
            kind: FilterKind::Kcore,
            min_user: 2,
            min_item: 2,
        };
        assert_eq!(
            keep_mask(&pairs(), &o),
            vec![true, true, false, false, true, true]
        );
    }
}
