//! An on-disk cache of text embeddings, one file per model, keyed by the exact text: a second run
//! over the same texts embeds nothing. Written atomically; its checksum, model id and shapes are
//! checked on load, and a damaged cache is reported, not trusted.

use crate::{Error, Result};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const FORMAT: &str = "llmesr-embedding-cache/1";

pub struct EmbeddingCache {
    path: PathBuf,
    model: String,
    dim: usize,
    entries: HashMap<String, Vec<f32>>,
    dirty: bool,
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::format(
        path,
        format!("{msg} (delete the file to rebuild the cache)"),
    )
}

fn checksum(texts: &str, data: &[f32]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(texts.as_bytes());
    for v in data {
        h.update(&v.to_le_bytes());
    }
    h.finalize()
}

impl EmbeddingCache {
    /// Opens (or starts) the cache for `model` under `dir`.
    pub fn open(dir: &Path, model: &str, dim: usize) -> Result<Self> {
        let path = dir.join(format!("{model}.safetensors"));
        let mut cache = EmbeddingCache {
            path: path.clone(),
            model: model.to_string(),
            dim,
            entries: HashMap::new(),
            dirty: false,
        };
        if !path.is_file() {
            return Ok(cache);
        }
        let bytes = crate::fsio::read(&path)?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(&path, e))?;
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(&path, e))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| bad(&path, format!("missing {k}")))
        };
        if get("format")? != FORMAT {
            return Err(bad(&path, "not an embedding cache"));
        }
        if get("model")? != model {
            return Err(bad(
                &path,
                format!("written for model {}, not {model}", get("model")?),
            ));
        }
        let texts_json = get("texts")?;
        let texts: Vec<String> = serde_json::from_str(texts_json).map_err(|e| bad(&path, e))?;
        let view = st.tensor("vectors").map_err(|e| bad(&path, e))?;
        if view.dtype() != safetensors::Dtype::F32 || view.shape() != [texts.len(), dim] {
            return Err(bad(
                &path,
                format!(
                    "vectors have shape {:?}, expected [{}, {dim}]",
                    view.shape(),
                    texts.len()
                ),
            ));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let expected: u32 = get("checksum")?.parse().map_err(|e| bad(&path, e))?;
        if checksum(texts_json, &data) != expected {
            return Err(bad(&path, "checksum mismatch: the cache is damaged"));
        }
        for (t, row) in texts.into_iter().zip(data.chunks_exact(dim)) {
            cache.entries.insert(t, row.to_vec());
        }
        Ok(cache)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, text: &str) -> Option<&[f32]> {
        self.entries.get(text).map(Vec::as_slice)
    }

    pub fn insert(&mut self, text: String, vector: Vec<f32>) -> Result<()> {
        if vector.len() != self.dim {
            return Err(bad(
                &self.path,
                format!(
                    "embedding has {} values, the cache holds {}",
                    vector.len(),
                    self.dim
                ),
            ));
        }
        self.entries.insert(text, vector);
        self.dirty = true;
        Ok(())
    }

    /// Writes the cache if anything was added (atomically: a crash leaves the old file).
    pub fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let mut texts: Vec<&String> = self.entries.keys().collect();
        texts.sort();
        let data: Vec<f32> = texts
            .iter()
            .flat_map(|t| self.entries[*t].iter().copied())
            .collect();
        let texts_json = serde_json::to_string(&texts).map_err(|e| Error::format(&self.path, e))?;
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("model".to_string(), self.model.clone()),
            (
                "checksum".to_string(),
                checksum(&texts_json, &data).to_string(),
            ),
            ("texts".to_string(), texts_json),
        ]);
        let t = Tensor::from_vec(data, (texts.len(), self.dim), &Device::Cpu)?;
        let bytes = safetensors::serialize([("vectors", &t)], Some(meta))
            .map_err(|e| Error::format(&self.path, e))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        crate::fsio::write_atomic(&self.path, &bytes)?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EmbeddingCache::open(dir.path(), "m", 2).unwrap();
        c.insert("a".into(), vec![1.0, 2.0]).unwrap();
        c.insert("b <x>".into(), vec![3.0, 4.0]).unwrap();
        assert!(c.insert("c".into(), vec![1.0]).is_err());
        c.save().unwrap();
        let c = EmbeddingCache::open(dir.path(), "m", 2).unwrap();
        assert_eq!((c.len(), c.get("b <x>")), (2, Some(&[3.0f32, 4.0][..])));
        // Another model has its own file and starts empty.
        assert!(EmbeddingCache::open(dir.path(), "other", 2)
            .unwrap()
            .is_empty());
        // Flip a byte of the last vector: the checksum catches it.
        let path = dir.path().join("m.safetensors");
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        let err = EmbeddingCache::open(dir.path(), "m", 2)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("checksum"), "{err}");
    }
}
