//! Reader for the LLM-ESR reference layout: `inter.txt` (`user item` per line, in time order) and an
//! optional `item_text.tsv` (`item<TAB>title`), so the paper's own Yelp/Fashion/Beauty files can be used.

use super::raw::{ItemMeta, RawData, RawInteraction};
use super::text::{lines, parse_file, parse_optional_file};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Parses `inter.txt`. The line number is the timestamp, which keeps each user's order as written.
pub fn parse_inter(text: &str, path: &str) -> Result<Vec<RawInteraction>> {
    let mut out = Vec::new();
    for (n, line) in lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != 2 {
            return Err(Error::Parse {
                path: path.to_string(),
                line: n,
                msg: format!("expected `user item`, found {} fields", cols.len()),
            });
        }
        out.push(RawInteraction {
            user: cols[0].to_string(),
            item: cols[1].to_string(),
            timestamp: n as f64,
        });
    }
    if out.is_empty() {
        return Err(Error::Parse {
            path: path.to_string(),
            line: 1,
            msg: "no interactions in file".to_string(),
        });
    }
    Ok(out)
}

/// Parses `item_text.tsv`: one `item<TAB>title` per line.
pub fn parse_item_text(text: &str, path: &str) -> Result<HashMap<String, ItemMeta>> {
    let mut out = HashMap::new();
    for (n, line) in lines(text) {
        if line.is_empty() {
            continue;
        }
        let (id, title) = line.split_once('\t').ok_or_else(|| Error::Parse {
            path: path.to_string(),
            line: n,
            msg: "expected `item<TAB>title`".to_string(),
        })?;
        out.insert(
            id.trim().to_string(),
            ItemMeta {
                title: title.trim().to_string(),
                ..ItemMeta::default()
            },
        );
    }
    Ok(out)
}

/// Loads `dir/inter.txt` and, when present, `dir/item_text.tsv`.
pub fn load(dir: &Path) -> Result<RawData> {
    Ok(RawData {
        name: dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        interactions: parse_file(&dir.join("inter.txt"), parse_inter)?,
        items: parse_optional_file(&dir.join("item_text.tsv"), parse_item_text)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_order_is_time_order() {
        let rows = parse_inter("1 10\n1 11\n\n2 10\n", "inter.txt").unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].timestamp < rows[1].timestamp);
        assert_eq!(rows[2].user, "2");
    }

    #[test]
    fn three_fields_is_an_error_with_line() {
        let err = parse_inter("1 10\n1 11 12\n", "inter.txt")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "inter.txt:2: expected `user item`, found 3 fields");
    }

    #[test]
    fn item_text_needs_a_tab() {
        let err = parse_item_text("10 no tab\n", "item_text.tsv")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("item_text.tsv:1:"), "{err}");
        let ok = parse_item_text("10\tA <b>title</b>\n", "t").unwrap();
        assert_eq!(ok["10"].title, "A <b>title</b>");
    }
}
