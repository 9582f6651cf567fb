//! UTF-8 decoding that reports the line of the first bad byte.

use crate::{Error, Result};

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

/// Lines without their `\r\n`/`\n` ending, numbered from 1.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
}
