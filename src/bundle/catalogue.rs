//! The catalogue as a bundle stores it: keys, titles, popularity and the "new" marks in columns,
//! deflated and base64-encoded into one manifest string.
//!
//! As JSON objects a million items took 59 MB, more than their Q4_0 tables; in columns the
//! repeated field names go, and deflate takes what is left down to what the titles really hold.
//! Readers still accept the list of objects that bundles of format version 3 and older carry.

use super::ItemEntry;
use base64::Engine;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;

/// First bytes of the inflated columns; the last one is the column layout's version.
const MAGIC: &[u8; 4] = b"LEC\x01";
/// The most a packed catalogue may inflate to: far above any catalogue a browser can hold, and
/// low enough that a crafted string cannot exhaust memory.
pub const MAX_INFLATED: usize = 256 << 20;
const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Columns, little-endian: magic, item count (u32), key lengths, title lengths and popularity
/// (u32 each), the new marks (one byte each), then the key bytes and the title bytes.
pub fn pack(items: &[ItemEntry]) -> String {
    let text: usize = items.iter().map(|e| e.key.len() + e.title.len()).sum();
    let mut raw = Vec::with_capacity(8 + items.len() * 13 + text);
    raw.extend_from_slice(MAGIC);
    raw.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for e in items {
        raw.extend_from_slice(&(e.key.len() as u32).to_le_bytes());
    }
    for e in items {
        raw.extend_from_slice(&(e.title.len() as u32).to_le_bytes());
    }
    for e in items {
        raw.extend_from_slice(&e.popularity.to_le_bytes());
    }
    raw.extend(items.iter().map(|e| e.new as u8));
    for e in items {
        raw.extend_from_slice(e.key.as_bytes());
    }
    for e in items {
        raw.extend_from_slice(e.title.as_bytes());
    }
    ENGINE.encode(miniz_oxide::deflate::compress_to_vec(&raw, 6))
}

/// The items of a [`pack`]ed string; every length is checked against the bytes present.
pub fn unpack(packed: &str) -> Result<Vec<ItemEntry>, String> {
    unpack_within(packed, MAX_INFLATED)
}

fn unpack_within(packed: &str, limit: usize) -> Result<Vec<ItemEntry>, String> {
    let deflated = ENGINE
        .decode(packed)
        .map_err(|e| format!("packed catalogue is not base64: {e}"))?;
    let raw = miniz_oxide::inflate::decompress_to_vec_with_limit(&deflated, limit).map_err(
        |e| match e.status {
            miniz_oxide::inflate::TINFLStatus::HasMoreOutput => {
                format!("packed catalogue inflates past {limit} bytes")
            }
            s => format!("packed catalogue is not valid deflate data ({s:?})"),
        },
    )?;
    let mut r = Reader { raw: &raw, at: 0 };
    if r.take(4)? != MAGIC {
        return Err("packed catalogue has an unknown column layout".into());
    }
    let n = r.u32()? as usize;
    // Each item needs at least 13 bytes of columns: a count beyond that is a lie, caught before
    // anything is allocated for it.
    if n > raw.len() / 13 {
        return Err(format!(
            "packed catalogue claims {n} items in {} bytes",
            raw.len()
        ));
    }
    let key_lens = r.u32s(n)?;
    let title_lens = r.u32s(n)?;
    let popularity = r.u32s(n)?;
    let new = r.take(n)?.to_vec();
    let mut strings = |lens: &[u32], what: &str| -> Result<Vec<String>, String> {
        lens.iter()
            .enumerate()
            .map(|(i, &len)| {
                let bytes = r.take(len as usize)?;
                String::from_utf8(bytes.to_vec()).map_err(|_| {
                    format!(
                        "packed catalogue: the {what} of item {} is not UTF-8",
                        i + 1
                    )
                })
            })
            .collect()
    };
    let keys = strings(&key_lens, "key")?;
    let titles = strings(&title_lens, "title")?;
    if r.at != raw.len() {
        return Err(format!(
            "packed catalogue has {} bytes after its last title",
            raw.len() - r.at
        ));
    }
    keys.into_iter()
        .zip(titles)
        .zip(popularity.into_iter().zip(new))
        .enumerate()
        .map(|(i, ((key, title), (popularity, new)))| match new {
            0 | 1 => Ok(ItemEntry {
                key,
                title,
                popularity,
                new: new == 1,
            }),
            b => Err(format!(
                "packed catalogue: item {} has new mark {b}, not 0 or 1",
                i + 1
            )),
        })
        .collect()
}

struct Reader<'a> {
    raw: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.raw.len())
            .ok_or_else(|| "packed catalogue is truncated".to_string())?;
        let s = &self.raw[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, String> {
        let b = self.take(n * 4)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// `#[serde(with)]` for [`super::Manifest::items`]: writes the packed string.
pub fn serialize<S: Serializer>(items: &[ItemEntry], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&pack(items))
}

/// Reads the packed string, or the list of objects of older bundles.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ItemEntry>, D::Error> {
    struct Either;
    impl<'de> Visitor<'de> for Either {
        type Value = Vec<ItemEntry>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a packed catalogue string or a list of items")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            unpack(s).map_err(E::custom)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(e) = seq.next_element()? {
                items.push(e);
            }
            Ok(items)
        }
    }
    d.deserialize_any(Either)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<ItemEntry> {
        vec![
            ItemEntry {
                key: "1193".into(),
                title: "One Flew Over the Cuckoo's Nest (1975)".into(),
                popularity: 1725,
                new: false,
            },
            ItemEntry {
                key: "k\u{e9}y".into(),
                title: "Am\u{e9}lie \"quoted\"\nsecond line".into(),
                popularity: 0,
                new: true,
            },
            ItemEntry {
                key: "".into(),
                title: "".into(),
                popularity: u32::MAX,
                new: false,
            },
        ]
    }

    #[test]
    fn packs_and_unpacks_every_field() {
        assert_eq!(unpack(&pack(&items())).unwrap(), items());
        assert_eq!(unpack(&pack(&[])).unwrap(), vec![]);
    }

    #[test]
    fn a_large_catalogue_packs_far_below_its_json() {
        let many: Vec<ItemEntry> = (1..=100_000u32)
            .map(|i| ItemEntry {
                key: i.to_string(),
                title: format!("item {i}"),
                popularity: i,
                new: false,
            })
            .collect();
        let json = serde_json::to_string(&many).unwrap().len();
        let packed = pack(&many).len();
        assert!(packed * 4 < json, "packed {packed} bytes, JSON {json}");
        assert_eq!(unpack(&pack(&many)).unwrap(), many);
    }

    fn deflated(raw: &[u8]) -> String {
        ENGINE.encode(miniz_oxide::deflate::compress_to_vec(raw, 6))
    }

    #[test]
    fn damaged_strings_name_the_problem() {
        let err = |s: &str| unpack(s).unwrap_err();
        assert!(err("not base64!").contains("not base64"));
        assert!(err(&ENGINE.encode(b"plain bytes")).contains("not valid deflate"));
        assert!(err(&deflated(b"XXXX")).contains("unknown column layout"));
        // A count of 2^32 − 1 items in a few bytes is refused before anything is allocated.
        let mut lie = MAGIC.to_vec();
        lie.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(err(&deflated(&lie)).contains("claims 4294967295 items"));
        // Cut the key bytes short: truncated; add a stray byte: trailing bytes.
        let one = &items()[..1];
        let b64 = pack(one);
        let raw = miniz_oxide::inflate::decompress_to_vec(&ENGINE.decode(&b64).unwrap()).unwrap();
        assert!(err(&deflated(&raw[..raw.len() - 3])).contains("truncated"));
        let mut longer = raw.clone();
        longer.push(b'!');
        assert!(err(&deflated(&longer)).contains("1 bytes after its last title"));
        // Invalid UTF-8 in a title, and a new mark that is not 0/1.
        let mut bad = raw.clone();
        let last = bad.len() - 1;
        bad[last] = 0xff;
        assert!(err(&deflated(&bad)).contains("title of item 1 is not UTF-8"));
        let mut mark = raw;
        mark[8 + 12] = 7;
        assert!(err(&deflated(&mark)).contains("new mark 7"));
    }

    #[test]
    fn a_deflate_bomb_is_refused() {
        let mut raw = MAGIC.to_vec();
        raw.extend(std::iter::repeat_n(0u8, 1 << 20));
        let bomb = deflated(&raw);
        assert!(bomb.len() < 4096);
        let e = unpack_within(&bomb, 1 << 16).unwrap_err();
        assert!(e.contains("inflates past 65536 bytes"), "{e}");
    }
}
