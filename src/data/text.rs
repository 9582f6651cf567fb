//! Reading data files as UTF-8 text, naming the file and the line of the first bad byte in errors.

use crate::{Error, Result};
use std::path::Path;

pub(crate) fn decode<'a>(bytes: &'a [u8], path: &str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::Parse {
            path: path.to_string(),
            line,
            msg: "invalid UTF-8".to_string(),
        }
    })
}

/// Reads `path` as UTF-8 and hands the text, with the path as errors should show it, to `parse`.
pub(crate) fn parse_file<T>(path: &Path, parse: fn(&str, &str) -> Result<T>) -> Result<T> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(decode(&bytes, &shown)?, &shown)
}

/// [`parse_file`] for a file that may be left out (item metadata): absent reads as empty.
pub(crate) fn parse_optional_file<T: Default>(
    path: &Path,
    parse: fn(&str, &str) -> Result<T>,
) -> Result<T> {
    if path.is_file() {
        parse_file(path, parse)
    } else {
        Ok(T::default())
    }
}

/// Lines without their `\r\n`/`\n` ending, numbered from 1. A UTF-8 byte-order mark at the start
/// (spreadsheet exports write one) is not part of the first line.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_utf8_reports_its_line() {
        let bytes = b"a\nb\n\xff\n";
        let err = decode(bytes, "u.inter").unwrap_err().to_string();
        assert_eq!(err, "u.inter:3: invalid UTF-8");
    }

    fn count_lines(text: &str, _path: &str) -> Result<usize> {
        Ok(lines(text).count())
    }

    #[test]
    fn a_leading_byte_order_mark_is_not_text() {
        let with_bom = "\u{feff}a\tb\r\nc\n";
        assert_eq!(
            lines(with_bom).collect::<Vec<_>>(),
            vec![(1, "a\tb"), (2, "c"), (3, "")]
        );
        // Only a leading one: elsewhere it is the file's own text.
        assert_eq!(lines("a\n\u{feff}b").nth(1), Some((2, "\u{feff}b")));
    }

    #[test]
    fn files_are_read_decoded_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.txt");
        std::fs::write(&good, "a\r\nb\n").unwrap();
        assert_eq!(parse_file(&good, count_lines).unwrap(), 3);
        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, b"a\n\xfe").unwrap();
        let err = parse_file(&bad, count_lines).unwrap_err().to_string();
        assert!(err.contains("bad.txt:2: invalid UTF-8"), "{err}");
        let missing = dir.path().join("missing.txt");
        let err = parse_file(&missing, count_lines).unwrap_err().to_string();
        assert!(err.contains("missing.txt"), "{err}");
        // Left out is empty; present but unreadable is still an error.
        assert_eq!(parse_optional_file(&missing, count_lines).unwrap(), 0);
        assert!(parse_optional_file(&bad, count_lines).is_err());
    }
}
