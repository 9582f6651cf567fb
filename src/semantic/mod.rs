//! The semantic side of LLM-ESR, computed by the project: language-model embeddings of every item
//! (and of every user's history), the similar-user lists for self-distillation, and the PCA that
//! initialises the ID table. [`SemanticSet`] is the file `llmesr embed` writes and `llmesr train`
//! reads; rows are keyed by the dataset's own item and user keys, so it survives re-numbering.

pub mod build;
pub mod cache;
pub mod encoder;
pub mod neighbours;
pub mod npy;
pub mod pca;
pub mod prompt;
pub mod similar;

use crate::data::Dataset;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

const FORMAT: &str = "llmesr-semantic/1";

/// Where the user vectors came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// The text model (or `npy:<file>` for imported tables).
    pub model: String,
    /// How user vectors were made: `history-text`, `mean-items` or `npy`.
    pub users: String,
    /// Similar users kept per user.
    pub similar: usize,
    /// How they were ranked: empty for plain cosine, `csls-K` for CSLS over K neighbours.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hubness: String,
}

/// Item vectors, user vectors and similar-user lists for one dataset.
#[derive(Debug, Clone)]
pub struct SemanticSet {
    pub provenance: Provenance,
    pub dim: usize,
    pub item_keys: Vec<String>,
    /// `item_keys.len() × dim`, row-major.
    pub items: Vec<f32>,
    pub user_keys: Vec<String>,
    /// Per user (in `user_keys` order), indices into `user_keys`, most similar first.
    pub similar: Vec<Vec<u32>>,
}

/// A [`SemanticSet`] lined up with a dataset's ids.
pub struct Aligned {
    /// `[n_items, dim]`: row `i` is item id `i + 1`.
    pub items: Tensor,
    /// Per dataset user, dataset user indices, most similar first.
    pub similar: Vec<Vec<u32>>,
    /// Identifies the vectors and lists (for resume checks and run records).
    pub fingerprint: String,
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::format(path, msg)
}

impl SemanticSet {
    fn checksum(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        for v in &self.items {
            h.update(&v.to_le_bytes());
        }
        for row in &self.similar {
            h.update(&(row.len() as u32).to_le_bytes());
            for v in row {
                h.update(&v.to_le_bytes());
            }
        }
        h.finalize()
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("semantic set: {m}")));
        if self.dim == 0 || self.items.len() != self.item_keys.len() * self.dim {
            return bad(format!(
                "{} item values for {} items of width {}",
                self.items.len(),
                self.item_keys.len(),
                self.dim
            ));
        }
        if self.similar.len() != self.user_keys.len() {
            return bad(format!(
                "{} similar-user lists for {} users",
                self.similar.len(),
                self.user_keys.len()
            ));
        }
        let n = self.user_keys.len() as u32;
        if let Some(v) = self.similar.iter().flatten().find(|&&v| v >= n) {
            return bad(format!(
                "similar-user index {v} is out of range (users: {n})"
            ));
        }
        if let Some(i) = self.items.iter().position(|v| !v.is_finite()) {
            return bad(format!("item value {i} is not finite"));
        }
        Ok(())
    }

    /// Writes the set as safetensors with its keys and provenance in the metadata (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate()?;
        let width = self.similar.iter().map(Vec::len).max().unwrap_or(0);
        // Ragged lists are padded with u32::MAX, which no user index can be.
        let sim: Vec<u32> = self
            .similar
            .iter()
            .flat_map(|r| {
                r.iter()
                    .copied()
                    .chain(std::iter::repeat_n(u32::MAX, width - r.len()))
            })
            .collect();
        let dev = Device::Cpu;
        let items = Tensor::from_vec(self.items.clone(), (self.item_keys.len(), self.dim), &dev)?;
        let sim = Tensor::from_vec(sim, (self.similar.len(), width), &dev)?;
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("provenance".to_string(), json(&self.provenance)),
            ("item_keys".to_string(), json(&self.item_keys)),
            ("user_keys".to_string(), json(&self.user_keys)),
            ("checksum".to_string(), self.checksum().to_string()),
        ]);
        let bytes = safetensors::serialize([("items", &items), ("similar", &sim)], Some(meta))
            .map_err(|e| bad(path, e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        crate::fsio::write_atomic(path, &bytes)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::fsio::read(path)?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(path, format!("not a semantic set: {e}")))?;
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(path, e))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| bad(path, format!("missing {k}; not written by llmesr embed")))
        };
        if get("format")? != FORMAT {
            return Err(bad(
                path,
                format!("format {} is not {FORMAT}", get("format")?),
            ));
        }
        let parse = |k: &str| -> Result<serde_json::Value> {
            serde_json::from_str(get(k)?).map_err(|e| bad(path, format!("{k}: {e}")))
        };
        let provenance: Provenance =
            serde_json::from_value(parse("provenance")?).map_err(|e| bad(path, e))?;
        let item_keys: Vec<String> =
            serde_json::from_value(parse("item_keys")?).map_err(|e| bad(path, e))?;
        let user_keys: Vec<String> =
            serde_json::from_value(parse("user_keys")?).map_err(|e| bad(path, e))?;
        let items = st.tensor("items").map_err(|e| bad(path, e))?;
        let sim = st.tensor("similar").map_err(|e| bad(path, e))?;
        if items.dtype() != safetensors::Dtype::F32
            || items.shape().len() != 2
            || items.shape()[0] != item_keys.len()
        {
            return Err(bad(
                path,
                format!("items tensor has shape {:?}", items.shape()),
            ));
        }
        if sim.dtype() != safetensors::Dtype::U32
            || sim.shape().len() != 2
            || sim.shape()[0] != user_keys.len()
        {
            return Err(bad(
                path,
                format!("similar tensor has shape {:?}", sim.shape()),
            ));
        }
        let le = |d: &[u8]| -> Vec<[u8; 4]> {
            d.chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect()
        };
        let dim = items.shape()[1];
        let width = sim.shape()[1];
        let flat: Vec<u32> = le(sim.data()).into_iter().map(u32::from_le_bytes).collect();
        let similar = if width == 0 {
            vec![Vec::new(); user_keys.len()]
        } else {
            flat.chunks(width)
                .map(|r| r.iter().copied().filter(|&v| v != u32::MAX).collect())
                .collect()
        };
        let set = SemanticSet {
            provenance,
            dim,
            item_keys,
            items: le(items.data())
                .into_iter()
                .map(f32::from_le_bytes)
                .collect(),
            user_keys,
            similar,
        };
        let expected: u32 = get("checksum")?.parse().map_err(|e| bad(path, e))?;
        if set.checksum() != expected {
            return Err(bad(
                path,
                "checksum mismatch: the file is damaged; run llmesr embed again",
            ));
        }
        set.validate()?;
        Ok(set)
    }

    /// Lines the vectors up with `data`'s ids. Every dataset item needs a vector; similar-user
    /// lists are mapped to dataset users, dropping users the dataset does not have.
    pub fn align(&self, data: &Dataset) -> Result<Aligned> {
        let rows: HashMap<&str, usize> = self
            .item_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let mut items = Vec::with_capacity(data.n_items() * self.dim);
        for key in &data.item_keys[1..] {
            let r = *rows.get(key.as_str()).ok_or_else(|| {
                Error::Dataset(format!(
                    "the semantic set has no vector for item {key:?}; was it built for another dataset? run llmesr embed with the same --data"
                ))
            })?;
            items.extend_from_slice(&self.items[r * self.dim..(r + 1) * self.dim]);
        }
        let dataset_user: HashMap<&str, u32> = data
            .user_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i as u32))
            .collect();
        let set_user: HashMap<&str, usize> = self
            .user_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let similar = data
            .user_keys
            .iter()
            .map(|k| {
                set_user.get(k.as_str()).map_or_else(Vec::new, |&r| {
                    self.similar[r]
                        .iter()
                        .filter_map(|&v| {
                            dataset_user
                                .get(self.user_keys[v as usize].as_str())
                                .copied()
                        })
                        .collect()
                })
            })
            .collect();
        Ok(Aligned {
            items: Tensor::from_vec(items, (data.n_items(), self.dim), &Device::Cpu)?,
            similar,
            // A departure in how similar users were ranked is named in the fingerprint (and so
            // in run records and report rows); plain-cosine sets keep the original form.
            fingerprint: if self.provenance.hubness.is_empty() {
                format!("{}:{:08x}", self.provenance.model, self.checksum())
            } else {
                format!(
                    "{}+{}:{:08x}",
                    self.provenance.model,
                    self.provenance.hubness,
                    self.checksum()
                )
            },
        })
    }
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csls_set_names_itself_in_the_fingerprint_and_a_plain_one_keeps_its_form() {
        let data = Dataset {
            name: "t".into(),
            item_keys: vec!["".into(), "a".into(), "b".into()],
            item_titles: vec!["".into(), "A".into(), "B".into()],
            user_keys: vec!["u".into(), "v".into()],
            sequences: vec![vec![1, 2, 1], vec![2, 1, 2]],
        };
        let mut set = SemanticSet {
            provenance: Provenance {
                model: "m".into(),
                users: "mean-items".into(),
                similar: 1,
                hubness: String::new(),
            },
            dim: 2,
            item_keys: vec!["a".into(), "b".into()],
            items: vec![1.0, 0.0, 0.0, 1.0],
            user_keys: vec!["u".into(), "v".into()],
            similar: vec![vec![1], vec![0]],
        };
        let plain = set.align(&data).unwrap().fingerprint;
        assert!(plain.starts_with("m:") && !plain.contains('+'), "{plain}");
        set.provenance.hubness = "csls-10".into();
        let csls = set.align(&data).unwrap().fingerprint;
        assert!(csls.starts_with("m+csls-10:"), "{csls}");
    }
}
