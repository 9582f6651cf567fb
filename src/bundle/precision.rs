//! Storage types of a bundle: the item tables (most of the bytes) can be f32, f16, Q8_0 or Q4_0;
//! the small encoder stays in f32 or f16.

use crate::{Error, Result};
use candle_core::quantized::GgmlDType;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How the item tables are stored. Q8_0 and Q4_0 are GGML's block formats (32 values share one
/// f16 scale), so a table's rows must be a whole number of 32-blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TableType {
    #[default]
    F32,
    F16,
    Q8,
    Q4,
}

/// How the encoder's weights (attention, feed-forward, GRU, positions) are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EncoderType {
    #[default]
    F32,
    F16,
}

impl TableType {
    pub const ALL: [TableType; 4] = [TableType::F32, TableType::F16, TableType::Q8, TableType::Q4];

    pub fn ggml(self) -> GgmlDType {
        match self {
            TableType::F32 => GgmlDType::F32,
            TableType::F16 => GgmlDType::F16,
            TableType::Q8 => GgmlDType::Q8_0,
            TableType::Q4 => GgmlDType::Q4_0,
        }
    }

    pub fn from_ggml(t: GgmlDType) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.ggml() == t)
    }

    pub fn label(self) -> &'static str {
        match self {
            TableType::F32 => "f32",
            TableType::F16 => "f16",
            TableType::Q8 => "q8",
            TableType::Q4 => "q4",
        }
    }
}

impl EncoderType {
    pub fn ggml(self) -> GgmlDType {
        match self {
            EncoderType::F32 => GgmlDType::F32,
            EncoderType::F16 => GgmlDType::F16,
        }
    }

    pub fn from_ggml(t: GgmlDType) -> Option<Self> {
        [EncoderType::F32, EncoderType::F16]
            .into_iter()
            .find(|x| x.ggml() == t)
    }

    pub fn label(self) -> &'static str {
        match self {
            EncoderType::F32 => "f32",
            EncoderType::F16 => "f16",
        }
    }
}

impl fmt::Display for TableType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl fmt::Display for EncoderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for TableType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.label() == s)
            .ok_or_else(|| {
                Error::Config(format!("unknown table type {s:?}: use f32, f16, q8 or q4"))
            })
    }
}

impl FromStr for EncoderType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(EncoderType::F32),
            "f16" => Ok(EncoderType::F16),
            _ => Err(Error::Config(format!(
                "unknown encoder type {s:?}: use f32 or f16"
            ))),
        }
    }
}

/// The storage types of one bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Precision {
    pub tables: TableType,
    pub encoder: EncoderType,
}

impl Precision {
    /// A short name for file names and reports: `q8`, or `q8+f16` when the encoder is f16 too.
    pub fn label(&self) -> String {
        match self.encoder {
            EncoderType::F32 => self.tables.label().to_string(),
            EncoderType::F16 => format!("{}+f16", self.tables.label()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_say_what_is_allowed() {
        for t in TableType::ALL {
            assert_eq!(t.label().parse::<TableType>().unwrap(), t);
            assert_eq!(TableType::from_ggml(t.ggml()), Some(t));
        }
        let e = "q5".parse::<TableType>().unwrap_err().to_string();
        assert!(e.contains("q5") && e.contains("q4"), "{e}");
        assert!("bf16".parse::<EncoderType>().is_err());
        let p = Precision {
            tables: TableType::Q4,
            encoder: EncoderType::F16,
        };
        assert_eq!(p.label(), "q4+f16");
    }
}
