//! Reader for RecBole atomic files (`.inter`, `.item`): tab-separated, a `name:type` header, optional CRLF.

use super::raw::{ItemMeta, RawData, RawInteraction};
use super::text::{lines, parse_file, parse_optional_file};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

fn parse_err(path: &str, line: usize, msg: impl Into<String>) -> Error {
    Error::Parse {
        path: path.to_string(),
        line,
        msg: msg.into(),
    }
}

/// Field names of a header line, without their `:type` suffix.
fn header_fields(header: &str) -> Vec<String> {
    header
        .split('\t')
        .map(|f| f.split(':').next().unwrap_or("").trim().to_string())
        .collect()
}

fn column(fields: &[String], names: &[&str], path: &str) -> Result<usize> {
    fields
        .iter()
        .position(|f| names.contains(&f.as_str()))
        .ok_or_else(|| parse_err(path, 1, format!("header has no {} field", names.join("/"))))
}

/// Iterates over data rows as (line number, columns), checking each has the header's column count.
fn rows<'a>(
    text: &'a str,
    n_fields: usize,
    path: &'a str,
) -> impl Iterator<Item = Result<(usize, Vec<&'a str>)>> + 'a {
    lines(text)
        .skip(1)
        .filter(|(_, l)| !l.is_empty())
        .map(move |(n, l)| {
            let cols: Vec<&str> = l.split('\t').collect();
            if cols.len() != n_fields {
                Err(parse_err(
                    path,
                    n,
                    format!(
                        "expected {n_fields} tab-separated columns, found {}",
                        cols.len()
                    ),
                ))
            } else {
                Ok((n, cols))
            }
        })
}

/// Parses the text of an `.inter` file; `path` only labels errors.
pub fn parse_inter(text: &str, path: &str) -> Result<Vec<RawInteraction>> {
    let header = lines(text)
        .next()
        .map(|(_, h)| h)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| parse_err(path, 1, "empty file: no header line"))?;
    let fields = header_fields(header);
    let (u, i) = (
        column(&fields, &["user_id"], path)?,
        column(&fields, &["item_id"], path)?,
    );
    let t = column(&fields, &["timestamp"], path)?;
    let mut out = Vec::new();
    for row in rows(text, fields.len(), path) {
        let (n, cols) = row?;
        let timestamp: f64 = cols[t]
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| {
                parse_err(path, n, format!("timestamp {:?} is not a number", cols[t]))
            })?;
        if cols[u].is_empty() || cols[i].is_empty() {
            return Err(parse_err(path, n, "empty user or item id"));
        }
        out.push(RawInteraction {
            user: cols[u].to_string(),
            item: cols[i].to_string(),
            timestamp,
        });
    }
    if out.is_empty() {
        return Err(parse_err(path, 2, "no interactions after the header"));
    }
    Ok(out)
}

/// Parses the text of an `.item` file into item metadata keyed by item id.
pub fn parse_item(text: &str, path: &str) -> Result<HashMap<String, ItemMeta>> {
    Ok(parse_item_rows(text, path)?
        .into_iter()
        .map(|(_, key, meta)| (key, meta))
        .collect())
}

/// The rows of an `.item` file in file order, each with its line number, key and metadata
/// (a key given twice is two rows).
pub fn parse_item_rows(text: &str, path: &str) -> Result<Vec<(usize, String, ItemMeta)>> {
    let header = lines(text)
        .next()
        .map(|(_, h)| h)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| parse_err(path, 1, "empty file: no header line"))?;
    let fields = header_fields(header);
    let id = column(&fields, &["item_id"], path)?;
    let title = column(&fields, &["movie_title", "title", "name"], path)?;
    let year = fields
        .iter()
        .position(|f| f == "release_year" || f == "year");
    let genres = fields
        .iter()
        .position(|f| f == "genre" || f == "class" || f == "categories");
    let mut out = Vec::new();
    for row in rows(text, fields.len(), path) {
        let (n, cols) = row?;
        let year = year
            .map(|c| cols[c].trim())
            .filter(|y| !y.is_empty() && *y != "unkonwn" && *y != "unknown")
            .map(|y| y.strip_suffix(".0").unwrap_or(y).to_string());
        let genres = genres
            .map(|c| cols[c].split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        out.push((
            n,
            cols[id].to_string(),
            ItemMeta {
                title: cols[title].trim().to_string(),
                year,
                genres,
            },
        ));
    }
    Ok(out)
}

/// Loads `<name>.inter` and, when present beside it, `<name>.item`.
pub fn load(inter_path: &Path) -> Result<RawData> {
    Ok(RawData {
        name: inter_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        interactions: parse_file(inter_path, parse_inter)?,
        items: parse_optional_file(&inter_path.with_extension("item"), parse_item)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTER: &str = "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n1m_1\tToy Story (1995)\t5\t978300760\r\n1m_1\tJumanji (1995)\t3\t978300761\r\n";

    #[test]
    fn reads_crlf_inter_with_title_ids() {
        let rows = parse_inter(INTER, "x.inter").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].user, "1m_1");
        assert_eq!(rows[1].item, "Jumanji (1995)");
        assert_eq!(rows[1].timestamp, 978300761.0);
    }

    #[test]
    fn wrong_column_count_names_file_and_line() {
        let text = "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\n";
        let err = parse_inter(text, "bad.inter").unwrap_err().to_string();
        assert_eq!(
            err,
            "bad.inter:3: expected 3 tab-separated columns, found 2"
        );
    }

    #[test]
    fn bad_timestamp_is_an_error() {
        let text = "user_id:token\titem_id:token\ttimestamp:float\n1\t2\tsoon\n";
        let err = parse_inter(text, "t.inter").unwrap_err().to_string();
        assert!(err.starts_with("t.inter:2: timestamp"), "{err}");
    }

    #[test]
    fn missing_header_field_and_empty_file_are_errors() {
        assert!(
            parse_inter("user_id:token\titem_id:token\n1\t2\n", "h.inter")
                .unwrap_err()
                .to_string()
                .contains("no timestamp field")
        );
        assert!(parse_inter("", "e.inter")
            .unwrap_err()
            .to_string()
            .contains("empty file"));
    }

    #[test]
    fn reads_files_that_begin_with_a_byte_order_mark() {
        // Spreadsheet exports start UTF-8 files with EF BB BF; the header's first field is still
        // `user_id`, read from disk as from text.
        let dir = tempfile::tempdir().unwrap();
        let inter = dir.path().join("bom.inter");
        std::fs::write(
            &inter,
            [b"\xef\xbb\xbf".as_slice(), INTER.as_bytes()].concat(),
        )
        .unwrap();
        let item = "\u{feff}item_id:token\tmovie_title:token\nToy Story (1995)\tToy Story\n";
        std::fs::write(inter.with_extension("item"), item).unwrap();
        let raw = load(&inter).unwrap();
        assert_eq!(raw.interactions.len(), 2);
        assert_eq!(raw.interactions[0].user, "1m_1");
        assert_eq!(raw.items["Toy Story (1995)"].title, "Toy Story");
        let text = format!("\u{feff}{INTER}");
        assert_eq!(
            parse_inter(&text, "b.inter").unwrap(),
            parse_inter(INTER, "b.inter").unwrap()
        );
    }

    #[test]
    fn reads_item_metadata_of_both_movielens_layouts() {
        let ml100k = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n1\tToy Story\t1995\tAnimation Children's Comedy\n267\tunkonwn\tunkonwn\t\n";
        let items = parse_item(ml100k, "i.item").unwrap();
        assert_eq!(items["1"].display_title(), "Toy Story (1995)");
        assert_eq!(items["1"].genres, vec!["Animation", "Children's", "Comedy"]);
        assert_eq!(items["267"].year, None);
        let ml1m = "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\r\nToy Story (1995)\tToy Story\t1995\tAnimation\r\n";
        let items = parse_item(ml1m, "j.item").unwrap();
        assert_eq!(
            items["Toy Story (1995)"].display_title(),
            "Toy Story (1995)"
        );
    }
}
