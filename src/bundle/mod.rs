//! The bundle: one GGUF file with everything inference needs — the model config, the encoder weights,
//! the item table, item keys, titles and popularity — plus a format version and a checksum.
//!
//! GGUF keeps the file readable by other tools (`gguf-dump` lists the metadata) and carries the
//! quantized tensor types the quantization work needs. The manifest is one JSON string so it can
//! grow without new GGUF keys; the CRC-32 covers the manifest and every tensor's bytes, so a flipped
//! bit anywhere in the payload is refused instead of giving silently wrong scores.

pub mod catalogue;
mod manifest;
pub mod precision;
pub mod text;

pub use manifest::{ItemEntry, Manifest, RunInfo};
pub use precision::{EncoderType, Precision, TableType};
pub use text::{NewItemId, NewItems, TextBoost, TextSpace};

use crate::model::names;
use crate::{Error, Result};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::io::Cursor;

/// Bumped whenever a reader of the previous version could misread a new file. Version 2 added
/// quantized item tables and f16 encoders, version 3 the text space ([`TextSpace`]), version 4
/// the packed catalogue ([`catalogue`]); files of versions 1 to 3 still load.
pub const FORMAT_VERSION: u32 = 4;
const OLDEST_READABLE: u32 = 1;
/// The tensors that hold one row per item; only these may be block-quantized.
pub const ITEM_TABLES: [&str; 3] = [names::ID_TABLE, names::SEMANTIC_TABLE, names::TEXT_TABLE];
const KEY_VERSION: &str = "llmesr.format_version";
const KEY_MANIFEST: &str = "llmesr.manifest";
const KEY_CHECKSUM: &str = "llmesr.checksum";
const ARCHITECTURE: &str = "llmesr";

fn bundle_err(msg: impl Into<String>) -> Error {
    Error::Bundle(msg.into())
}

/// CRC-32 over the manifest and each tensor's name, length and stored bytes, in the order given:
/// the writer and the reader must walk the tensors in the same (name) order.
fn checksum<S: AsRef<str>>(manifest: &str, names: &[S], tensors: &[QTensor]) -> Result<u32> {
    let mut h = crc32fast::Hasher::new();
    h.update(manifest.as_bytes());
    for (name, t) in names.iter().zip(tensors) {
        let data = t.data()?;
        h.update(name.as_ref().as_bytes());
        h.update(&(data.len() as u64).to_le_bytes());
        h.update(&data);
    }
    Ok(h.finalize())
}

/// Serialises a bundle with every tensor in f32.
pub fn write(manifest: &Manifest, tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>> {
    write_with(manifest, tensors, Precision::default())
}

/// Serialises a bundle, storing the item tables and the encoder in the given types. Tensors are
/// written in name order.
pub fn write_with(
    manifest: &Manifest,
    tensors: &HashMap<String, Tensor>,
    precision: Precision,
) -> Result<Vec<u8>> {
    manifest.validate()?;
    let json = serde_json::to_string(manifest).map_err(|e| bundle_err(e.to_string()))?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut q = Vec::with_capacity(names.len());
    for n in &names {
        // QTensor::quantize reads the raw storage and ignores the layout, so a view (narrowed,
        // transposed, offset) must first become a fresh tensor of its own.
        let t = &tensors[*n];
        let dense = t
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let dtype = if ITEM_TABLES.contains(&n.as_str()) {
            precision.tables.ggml()
        } else {
            precision.encoder.ggml()
        };
        let width = t.dims().last().copied().unwrap_or(0);
        if width % dtype.block_size() != 0 {
            return Err(Error::Config(format!(
                "{n} has rows of {width} values; {} stores rows in blocks of {}, so it needs a hidden size that is a multiple of {}",
                precision.tables,
                dtype.block_size(),
                dtype.block_size()
            )));
        }
        q.push(QTensor::quantize(
            &Tensor::from_vec(dense, t.shape(), t.device())?,
            dtype,
        )?);
    }
    let sum = checksum(&json, &names, &q)?;
    let meta_values = [
        ("general.architecture", Value::String(ARCHITECTURE.into())),
        ("general.name", Value::String(manifest.name.clone())),
        (KEY_VERSION, Value::U32(FORMAT_VERSION)),
        (KEY_MANIFEST, Value::String(json)),
        (KEY_CHECKSUM, Value::U32(sum)),
    ];
    let meta: Vec<(&str, &Value)> = meta_values.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> =
        names.iter().map(|n| n.as_str()).zip(q.iter()).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &meta, &tensor_refs)?;
    Ok(out.into_inner())
}

/// A loaded, validated bundle.
pub struct Bundle {
    pub manifest: Manifest,
    /// Every tensor as stored (f32, f16 or block-quantized), on the CPU.
    pub tensors: HashMap<String, QTensor>,
    /// The storage types found in the file.
    pub precision: Precision,
}

impl Bundle {
    /// Parses and validates a bundle: GGUF structure, format version, checksum, manifest consistency
    /// and the shape of every tensor the model will need.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 8 || &bytes[..4] != b"GGUF" {
            return Err(bundle_err(
                "not a bundle: the file does not start with the GGUF magic (wrong file, or an HTML error page?)",
            ));
        }
        // candle's reader divides by `general.alignment`, so a zero there would panic; llmesr never
        // writes the key (it uses the default 32), so any file that has it is refused up front.
        let mut key = 17u64.to_le_bytes().to_vec();
        key.extend_from_slice(b"general.alignment");
        if bytes.windows(key.len()).any(|w| w == key.as_slice()) {
            return Err(bundle_err(
                "sets general.alignment, which llm-esr bundles never do",
            ));
        }
        let mut cur = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut cur)
            .map_err(|e| bundle_err(format!("corrupt or truncated GGUF header: {e}")))?;
        match content.metadata.get("general.architecture") {
            Some(Value::String(a)) if a == ARCHITECTURE => {}
            other => {
                return Err(bundle_err(format!(
                    "not an llm-esr bundle (general.architecture is {other:?})"
                )))
            }
        }
        match content.metadata.get(KEY_VERSION) {
            Some(Value::U32(v)) if (OLDEST_READABLE..=FORMAT_VERSION).contains(v) => {}
            Some(Value::U32(v)) => {
                return Err(bundle_err(format!(
                    "format version {v} is not supported by this build (it reads versions {OLDEST_READABLE} to {FORMAT_VERSION}); re-export the bundle"
                )))
            }
            _ => return Err(bundle_err(format!("missing {KEY_VERSION}"))),
        }
        let json = match content.metadata.get(KEY_MANIFEST) {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(bundle_err(format!("missing {KEY_MANIFEST}"))),
        };
        let expected_sum = match content.metadata.get(KEY_CHECKSUM) {
            Some(Value::U32(v)) => *v,
            _ => return Err(bundle_err(format!("missing {KEY_CHECKSUM}"))),
        };
        let mut tables = None;
        let mut encoder = None;
        for (name, info) in &content.tensor_infos {
            let dtype = info.ggml_dtype;
            let is_table = ITEM_TABLES.contains(&name.as_str());
            let allowed = if is_table {
                TableType::from_ggml(dtype).is_some()
            } else {
                EncoderType::from_ggml(dtype).is_some()
            };
            if !allowed {
                return Err(bundle_err(format!(
                    "tensor {name} has type {dtype:?}; bundles store item tables as F32, F16, Q8_0 or Q4_0 and the encoder as F32 or F16"
                )));
            }
            // Checked before any tensor is read: an element count that overflows or a payload
            // larger than the file can neither allocate nor wrap around.
            let dims = info.shape.dims();
            let elems = dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n > 0);
            let width = dims.last().copied().unwrap_or(0);
            let Some(elems) = elems.filter(|_| width % dtype.block_size() == 0) else {
                return Err(bundle_err(format!(
                    "tensor {name} declares shape {dims:?}, which is empty or not a whole number of {dtype:?} blocks per row"
                )));
            };
            let payload = (elems / dtype.block_size()).checked_mul(dtype.type_size());
            if payload.is_none_or(|p| p > bytes.len()) {
                return Err(bundle_err(format!(
                    "tensor {name} declares shape {dims:?}, larger than the file"
                )));
            }
            if is_table {
                tables = tables.or(TableType::from_ggml(dtype));
            } else {
                encoder = encoder.or(EncoderType::from_ggml(dtype));
            }
        }
        let mut names: Vec<&String> = content.tensor_infos.keys().collect();
        names.sort();
        let mut qs = Vec::with_capacity(names.len());
        for name in &names {
            let q = content
                .tensor(&mut cur, name, &Device::Cpu)
                .map_err(|e| bundle_err(format!("tensor {name}: {e}")))?;
            qs.push(q);
        }
        let sum = checksum(&json, &names, &qs)?;
        if sum != expected_sum {
            return Err(bundle_err(format!(
                "checksum mismatch (stored {expected_sum:08x}, computed {sum:08x}): the file is corrupt"
            )));
        }
        let manifest: Manifest = serde_json::from_str(&json)
            .map_err(|e| bundle_err(format!("manifest is not valid: {e}")))?;
        manifest.validate()?;
        let tensors: HashMap<String, QTensor> = names.into_iter().cloned().zip(qs).collect();
        Ok(Bundle {
            manifest,
            tensors,
            precision: Precision {
                tables: tables.unwrap_or_default(),
                encoder: encoder.unwrap_or_default(),
            },
        })
    }

    /// Every tensor dequantized to f32, as a candle model wants its weights.
    pub fn dequantized(&self) -> Result<HashMap<String, Tensor>> {
        self.tensors
            .iter()
            .map(|(n, q)| Ok((n.clone(), q.dequantize(&Device::Cpu)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init::random_weights;
    use crate::model::ModelConfig;
    use candle_core::quantized::GgmlDType;

    fn tiny() -> (Manifest, HashMap<String, Tensor>) {
        let mut cfg = ModelConfig::sasrec(6);
        cfg.max_len = 4;
        cfg.hidden = 8;
        (
            Manifest::synthetic("t", &cfg),
            random_weights(&cfg, 0).unwrap(),
        )
    }

    fn err(bytes: &[u8]) -> String {
        Bundle::from_bytes(bytes)
            .err()
            .expect("must fail")
            .to_string()
    }

    #[test]
    fn round_trip() {
        let (m, w) = tiny();
        let b = Bundle::from_bytes(&write(&m, &w).unwrap()).unwrap();
        assert_eq!(b.manifest, m);
        assert_eq!(b.tensors.len(), w.len());
    }

    #[test]
    fn zero_alignment_is_refused_not_a_panic() {
        let (m, w) = tiny();
        let json = serde_json::to_string(&m).unwrap();
        let vals = [
            ("general.alignment", Value::U32(0)),
            ("general.architecture", Value::String(ARCHITECTURE.into())),
            (KEY_VERSION, Value::U32(FORMAT_VERSION)),
            (KEY_MANIFEST, Value::String(json)),
        ];
        let meta: Vec<(&str, &Value)> = vals.iter().map(|(k, v)| (*k, v)).collect();
        let q = QTensor::quantize(&w["ln_last.weight"], GgmlDType::F32).unwrap();
        let mut out = Cursor::new(Vec::new());
        gguf_file::write(&mut out, &meta, &[("ln_last.weight", &q)]).unwrap();
        assert!(err(&out.into_inner()).contains("general.alignment"));
    }

    #[test]
    fn oversized_declared_shape_is_refused_before_reading() {
        let (m, w) = tiny();
        let mut bytes = write(&m, &w).unwrap();
        // The tensor info of ln_last.weight: name, n_dims (u32), then its one dim (u64).
        let name = b"ln_last.weight";
        let at = bytes.windows(name.len()).position(|x| x == name).unwrap() + name.len() + 4;
        bytes[at..at + 8].copy_from_slice(&(u64::MAX / 3).to_le_bytes());
        assert!(
            err(&bytes).contains("larger than the file"),
            "{}",
            err(&bytes)
        );
    }

    #[test]
    fn block_types_are_for_item_tables_only() {
        let (m, _) = tiny();
        let json = serde_json::to_string(&m).unwrap();
        let vals = [
            ("general.architecture", Value::String(ARCHITECTURE.into())),
            (KEY_VERSION, Value::U32(FORMAT_VERSION)),
            (KEY_MANIFEST, Value::String(json)),
            (KEY_CHECKSUM, Value::U32(0)),
        ];
        let meta: Vec<(&str, &Value)> = vals.iter().map(|(k, v)| (*k, v)).collect();
        let t = Tensor::zeros((2, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        let q = QTensor::quantize(&t, GgmlDType::Q8_0).unwrap();
        let mut out = Cursor::new(Vec::new());
        gguf_file::write(&mut out, &meta, &[("blocks.0.ff1.weight", &q)]).unwrap();
        let e = err(&out.into_inner());
        assert!(
            e.contains("blocks.0.ff1.weight has type Q8_0") && e.contains("encoder as F32 or F16"),
            "{e}"
        );
    }

    /// `b`'s tensors under another manifest string and version, with a valid checksum.
    fn rewritten(b: &Bundle, json: String, version: u32) -> Vec<u8> {
        let mut names: Vec<&String> = b.tensors.keys().collect();
        names.sort();
        let qs: Vec<QTensor> = names
            .iter()
            .map(|n| {
                let q = &b.tensors[*n];
                QTensor::quantize(&q.dequantize(&Device::Cpu).unwrap(), q.dtype()).unwrap()
            })
            .collect();
        let sum = checksum(&json, &names, &qs).unwrap();
        let vals = [
            ("general.architecture", Value::String(ARCHITECTURE.into())),
            (KEY_VERSION, Value::U32(version)),
            (KEY_MANIFEST, Value::String(json)),
            (KEY_CHECKSUM, Value::U32(sum)),
        ];
        let meta: Vec<(&str, &Value)> = vals.iter().map(|(k, v)| (*k, v)).collect();
        let refs: Vec<(&str, &QTensor)> = names.iter().map(|n| n.as_str()).zip(&qs).collect();
        let mut out = Cursor::new(Vec::new());
        gguf_file::write(&mut out, &meta, &refs).unwrap();
        out.into_inner()
    }

    /// Bundles of format version 3 and older list the catalogue as JSON objects; they still load,
    /// and to the same manifest.
    #[test]
    fn catalogues_listed_as_objects_still_load() {
        let (mut m, w) = tiny();
        m.items[1].new = true;
        let b = Bundle::from_bytes(&write(&m, &w).unwrap()).unwrap();
        let mut json = serde_json::to_value(&m).unwrap();
        assert!(json["items"].is_string(), "new bundles pack the catalogue");
        // As version 3 wrote it: `{"key", "title", "popularity"}`, `"new": true` only where set.
        json["items"] = serde_json::to_value(m.items.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(json["items"][1]["new"], true);
        assert!(json["items"][0].get("new").is_none());
        let json = serde_json::to_string(&json).unwrap();
        let out = rewritten(&b, json, 3);
        assert_eq!(Bundle::from_bytes(&out).unwrap().manifest, m);
    }

    #[test]
    fn a_damaged_packed_catalogue_is_named() {
        let (m, w) = tiny();
        let mut json = serde_json::to_value(&m).unwrap();
        json["items"] = serde_json::Value::String("AAAA".into());
        let json = serde_json::to_string(&json).unwrap();
        let b = Bundle::from_bytes(&write(&m, &w).unwrap()).unwrap();
        let out = rewritten(&b, json, FORMAT_VERSION);
        let e = err(&out);
        assert!(
            e.contains("manifest is not valid") && e.contains("packed catalogue"),
            "{e}"
        );
    }

    #[test]
    fn version_one_files_still_load() {
        let (m, w) = tiny();
        let mut bytes = write(&m, &w).unwrap();
        let key = KEY_VERSION.as_bytes();
        let at = bytes.windows(key.len()).position(|x| x == key).unwrap() + key.len() + 4;
        bytes[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
        assert!(Bundle::from_bytes(&bytes).is_ok());
    }

    #[test]
    fn other_format_version_says_which() {
        let (m, w) = tiny();
        let mut bytes = write(&m, &w).unwrap();
        let key = KEY_VERSION.as_bytes();
        let at = bytes.windows(key.len()).position(|x| x == key).unwrap() + key.len() + 4;
        bytes[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
        assert!(err(&bytes).contains("format version 7"), "{}", err(&bytes));
    }
}
