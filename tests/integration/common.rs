//! Fixtures shared by the integration tests.
#![allow(dead_code)]

use llm_esr::data::{self, Dataset, FilterOptions, GroupConfig, Groups};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;

pub const RING: u32 = 60;

/// Users walk through a ring of items (i → i+1) with 10% random detours: a sequential signal that
/// popularity cannot see, since every item is about equally popular.
pub fn synthetic_dir() -> tempfile::TempDir {
    let mut rng = SmallRng::seed_from_u64(5);
    let n_items = RING;
    let mut inter = String::new();
    let mut titles = String::new();
    for u in 0..300 {
        let mut item = rng.random_range(1..=n_items);
        for _ in 0..rng.random_range(8..16) {
            writeln!(inter, "u{u} i{item}").unwrap();
            item = if rng.random::<f32>() < 0.1 {
                rng.random_range(1..=n_items)
            } else {
                item % n_items + 1
            };
        }
    }
    for i in 1..=n_items {
        writeln!(titles, "i{i}\tMovie <b>{i}</b>").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inter.txt"), inter).unwrap();
    std::fs::write(dir.path().join("item_text.tsv"), titles).unwrap();
    dir
}

/// The generated data read back through the `inter.txt` reader, with its groups.
pub fn fixture() -> (tempfile::TempDir, Dataset, Groups) {
    let dir = synthetic_dir();
    let raw = data::load_dir(dir.path()).unwrap();
    let dataset = Dataset::from_raw(&raw, &FilterOptions::default()).unwrap();
    let groups = Groups::compute(&dataset, GroupConfig::default(), 20).unwrap();
    (dir, dataset, groups)
}
