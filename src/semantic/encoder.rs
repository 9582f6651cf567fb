//! A BERT-family sentence encoder (all-MiniLM-L6-v2 by default) run natively through
//! candle-transformers: token states averaged over the attention mask, then L2-normalised — the
//! pooling sentence-transformers configures for this model.

use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use std::path::Path;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

pub struct TextEncoder {
    model: BertModel,
    tokenizer: Tokenizer,
    /// Identifies the weights and tokenizer (folder name and CRC-32 of both files), so caches
    /// written with another model are never mixed in.
    id: String,
    dim: usize,
    max_tokens: usize,
}

fn model_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::TextModel(format!("{}: {msg}", path.display()))
}

impl TextEncoder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| crate::fsio::read(&dir.join(name));
        let config_bytes = read("config.json")?;
        let config: Config = serde_json::from_slice(&config_bytes)
            .map_err(|e| model_err(&dir.join("config.json"), format!("not a BERT config: {e}")))?;
        let weights = read("model.safetensors")?;
        let tok_bytes = read("tokenizer.json")?;
        let mut h = crc32fast::Hasher::new();
        h.update(&weights);
        h.update(&tok_bytes);
        h.update(&config_bytes);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "model".into());
        let id = format!("{name}-{:08x}", h.finalize());
        let vb = VarBuilder::from_buffered_safetensors(weights, DTYPE, &Device::Cpu)?;
        let model = BertModel::load(vb, &config).map_err(|e| {
            model_err(
                &dir.join("model.safetensors"),
                format!("not a BERT model: {e}"),
            )
        })?;
        let mut tokenizer = Tokenizer::from_bytes(&tok_bytes)
            .map_err(|e| model_err(&dir.join("tokenizer.json"), e))?;
        // The shipped tokenizer pads every input to 128 tokens; pad to the batch's longest instead
        // (the masked mean ignores padding either way, this only saves work).
        let max_tokens = tokenizer
            .get_truncation()
            .map(|t| t.max_length)
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| model_err(&dir.join("tokenizer.json"), e))?;
        Ok(TextEncoder {
            model,
            tokenizer,
            id,
            dim: config.hidden_size,
            max_tokens,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokens the model would read for `text` before truncation.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer
            .encode(text, true)
            .map(|e| {
                e.get_ids().len()
                    + e.get_overflowing()
                        .iter()
                        .map(|o| o.get_ids().len())
                        .sum::<usize>()
            })
            .unwrap_or(usize::MAX)
    }

    /// Unit-length embeddings, one per text.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::TextModel(format!("tokenizing: {e}")))?;
        let (b, l) = (enc.len(), enc[0].get_ids().len());
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            enc.iter().flat_map(|e| f(e).iter().copied()).collect()
        };
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(flat(&|e| e.get_ids()), (b, l), &dev)?;
        let types = Tensor::from_vec(flat(&|e| e.get_type_ids()), (b, l), &dev)?;
        let mask = Tensor::from_vec(flat(&|e| e.get_attention_mask()), (b, l), &dev)?;
        let states = self.model.forward(&ids, &types, Some(&mask))?; // [B, L, dim]
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = states.broadcast_mul(&m)?.sum(1)?;
        let mean = summed.broadcast_div(&m.sum(1)?.clamp(1e-9f32, f32::MAX)?)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2()?)
    }
}
