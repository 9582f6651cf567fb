//! Interactions as read from disk, before ids are assigned.

use std::collections::HashMap;

/// One (user, item, time) event with the file's own keys.
#[derive(Debug, Clone, PartialEq)]
pub struct RawInteraction {
    pub user: String,
    pub item: String,
    /// Unix seconds for RecBole files; the line number for `inter.txt`, which is already in time order.
    pub timestamp: f64,
}

/// Display and embedding text for one item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemMeta {
    pub title: String,
    pub year: Option<String>,
    pub genres: Vec<String>,
}

impl ItemMeta {
    /// The title a person reads: `Title (Year)` when the year is known and not already in the title.
    pub fn display_title(&self) -> String {
        match &self.year {
            Some(y) if !self.title.ends_with(&format!("({y})")) => format!("{} ({y})", self.title),
            _ => self.title.clone(),
        }
    }
}

/// A dataset as read from disk.
#[derive(Debug, Clone, Default)]
pub struct RawData {
    pub name: String,
    pub interactions: Vec<RawInteraction>,
    pub items: HashMap<String, ItemMeta>,
}
