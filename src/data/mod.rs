//! Interaction data: file readers, filtering, the leave-one-out split and long-tail groups.

pub mod cold;
pub mod dataset;
pub mod filter;
pub mod groups;
pub mod inter_txt;
pub mod raw;
pub mod recbole;
pub mod split;
mod text;

pub use cold::{ColdConfig, ColdItems};
pub use dataset::Dataset;
pub use filter::{FilterKind, FilterOptions};
pub use groups::{GroupConfig, Groups, PopularityScope, Threshold};
pub use raw::{ItemMeta, RawData, RawInteraction};
pub use split::Stage;

use crate::{Error, Result};
use std::path::Path;

/// Reads a dataset folder in either supported layout: RecBole atomic files (`<name>.inter`, optional
/// `<name>.item`) or the LLM-ESR reference layout (`inter.txt`, optional `item_text.tsv`).
pub fn load_dir(dir: &Path) -> Result<RawData> {
    if dir.join("inter.txt").is_file() {
        return inter_txt::load(dir);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut inter = None;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "inter") {
            if inter.is_some() {
                return Err(Error::Dataset(format!(
                    "{} holds more than one .inter file",
                    dir.display()
                )));
            }
            inter = Some(path);
        }
    }
    match inter {
        Some(path) => recbole::load(&path),
        None => Err(Error::Dataset(format!(
            "{} holds neither inter.txt nor a RecBole .inter file (run scripts/fetch-data.sh for MovieLens)",
            dir.display()
        ))),
    }
}
