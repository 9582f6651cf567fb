//! `llmesr embed`: item texts and user histories through the text encoder (with the cache), or
//! tables imported from `.npy`, then the similar-user lists — one [`SemanticSet`] per dataset.

use super::cache::EmbeddingCache;
use super::encoder::TextEncoder;
use super::{npy, prompt, similar, Provenance, SemanticSet};
use crate::data::split::train_part;
use crate::data::{Dataset, ItemMeta, RawData};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How each user's vector for similar-user retrieval is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[derive(clap::ValueEnum)]
pub enum UserVectors {
    /// The reference: the language model over a prompt listing the training history's titles.
    HistoryText,
    /// The mean of the training items' vectors: no extra model pass.
    MeanItems,
}

impl UserVectors {
    pub fn label(&self) -> &'static str {
        match self {
            UserVectors::HistoryText => "history-text",
            UserVectors::MeanItems => "mean-items",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// What an item is called in the prompts (`movie`, `movies`).
    pub noun: String,
    pub noun_plural: String,
    pub users: UserVectors,
    /// Similar users kept per user (the reference keeps 100 and uses 10).
    pub similar: usize,
    /// How similar users are ranked (the reference: plain cosine).
    pub hubness: similar::Hubness,
    pub batch_size: usize,
    pub progress: bool,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            noun: "movie".into(),
            noun_plural: "movies".into(),
            users: UserVectors::HistoryText,
            similar: 100,
            hubness: similar::Hubness::Cosine,
            batch_size: 32,
            progress: false,
        }
    }
}

/// Embeds `texts`, taking what the cache already has and adding the rest (saved every few batches
/// and at the end, so an interrupted run keeps its work). Returns `texts.len() × dim` values.
pub fn embed_texts(
    encoder: &TextEncoder,
    cache: &mut EmbeddingCache,
    texts: &[String],
    batch_size: usize,
    progress: bool,
    label: &str,
) -> Result<Vec<f32>> {
    let mut missing: Vec<&String> = texts.iter().filter(|t| cache.get(t).is_none()).collect();
    missing.sort();
    missing.dedup();
    let bar = crate::progress::bar(progress, missing.len() as u64, label, "texts", "");
    for (n, chunk) in missing.chunks(batch_size.max(1)).enumerate() {
        let batch: Vec<String> = chunk.iter().map(|t| t.to_string()).collect();
        for (t, v) in batch.iter().zip(encoder.embed(&batch)?) {
            cache.insert(t.clone(), v)?;
        }
        bar.inc(chunk.len() as u64);
        if n % 20 == 19 {
            cache.save()?;
        }
    }
    cache.save()?;
    bar.finish_and_clear();
    Ok(texts
        .iter()
        .flat_map(|t| cache.get(t).expect("every text was embedded").to_vec())
        .collect())
}

/// The item prompts for `data`, in id order (ids 1..=n).
pub fn item_texts(raw: &RawData, data: &Dataset, noun: &str) -> Vec<String> {
    data.item_keys[1..]
        .iter()
        .map(|k| prompt::item_text(noun, k, raw.items.get(k)))
        .collect()
}

fn mean_item_vectors(data: &Dataset, items: &[f32], dim: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(data.n_users() * dim);
    for seq in &data.sequences {
        let train = train_part(seq);
        let mut mean = vec![0f32; dim];
        for &i in train {
            let row = &items[(i as usize - 1) * dim..i as usize * dim];
            mean.iter_mut()
                .zip(row)
                .for_each(|(m, v)| *m += v / train.len() as f32);
        }
        out.extend(mean);
    }
    out
}

/// Text-model vectors for items that were not in training, from the same prompt the trained items'
/// vectors came from: `(key, metadata)` in, one vector each out, in order.
pub fn embed_new_items(
    encoder: &TextEncoder,
    cache: &mut EmbeddingCache,
    items: &[(String, ItemMeta)],
    noun: &str,
    progress: bool,
) -> Result<Vec<Vec<f32>>> {
    let texts: Vec<String> = items
        .iter()
        .map(|(k, m)| prompt::item_text(noun, k, Some(m)))
        .collect();
    let dim = encoder.dim();
    let flat = embed_texts(encoder, cache, &texts, 32, progress, "new items")?;
    Ok(flat.chunks(dim).map(<[f32]>::to_vec).collect())
}

/// Computes the semantic set of `data` with a text encoder.
pub fn build(
    raw: &RawData,
    data: &Dataset,
    encoder: &TextEncoder,
    cache: &mut EmbeddingCache,
    opts: &EmbedOptions,
) -> Result<SemanticSet> {
    let dim = encoder.dim();
    let items = embed_texts(
        encoder,
        cache,
        &item_texts(raw, data, &opts.noun),
        opts.batch_size,
        opts.progress,
        "items",
    )?;
    let users = match opts.users {
        UserVectors::MeanItems => mean_item_vectors(data, &items, dim),
        UserVectors::HistoryText => {
            let count = |t: &str| encoder.count_tokens(t);
            let texts: Vec<String> = data
                .sequences
                .iter()
                .map(|seq| {
                    let titles: Vec<&str> = train_part(seq)
                        .iter()
                        .map(|&i| data.item_titles[i as usize].as_str())
                        .collect();
                    prompt::user_text_fitting(
                        &opts.noun_plural,
                        &titles,
                        encoder.max_tokens(),
                        &count,
                    )
                })
                .collect();
            embed_texts(
                encoder,
                cache,
                &texts,
                opts.batch_size,
                opts.progress,
                "users",
            )?
        }
    };
    let similar =
        similar::most_similar_with(&users, data.n_users(), dim, opts.similar, opts.hubness)?;
    let set = SemanticSet {
        provenance: Provenance {
            model: encoder.id().to_string(),
            users: opts.users.label().to_string(),
            similar: opts.similar,
            hubness: opts.hubness.label(),
        },
        dim,
        item_keys: data.item_keys[1..].to_vec(),
        items,
        user_keys: data.user_keys.clone(),
        similar,
    };
    set.validate()?;
    Ok(set)
}

/// Tables from `.npy` files in the reference's conventions: item row `r` is the item keyed
/// `r + 1` (or the `r`-th line of `keys`), user row `r` the user keyed `r + 1`, and similar-user
/// entries are 0-based user rows. Without user vectors or lists, users are the mean of their items.
pub fn from_npy(
    data: &Dataset,
    items_path: &Path,
    item_keys_path: Option<&Path>,
    users_path: Option<&Path>,
    similar_path: Option<&Path>,
    top: usize,
) -> Result<SemanticSet> {
    let (rows, dim, items) = npy::read_matrix(items_path)?;
    let item_keys: Vec<String> = match item_keys_path {
        Some(p) => {
            let text = String::from_utf8(crate::fsio::read(p)?)
                .map_err(|_| Error::format(p, "not UTF-8"))?;
            text.lines()
                .map(|l| l.trim_end_matches('\r').to_string())
                .collect()
        }
        None => (1..=rows).map(|r| r.to_string()).collect(),
    };
    if item_keys.len() != rows {
        return Err(Error::format(
            items_path,
            format!("has {rows} rows but {} item keys", item_keys.len()),
        ));
    }
    let by_key: std::collections::HashMap<&str, usize> = item_keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    // Keep the dataset's items, in id order, so the mean-of-items fallback can index them.
    let mut aligned = Vec::with_capacity(data.n_items() * dim);
    for k in &data.item_keys[1..] {
        let r = *by_key
            .get(k.as_str())
            .ok_or_else(|| Error::format(items_path, format!("has no row for item {k:?}")))?;
        aligned.extend_from_slice(&items[r * dim..(r + 1) * dim]);
    }
    // Users are looked up by key `r + 1`, the reference's numbering.
    let user_row = |u: usize| -> Option<usize> {
        data.user_keys[u]
            .parse::<usize>()
            .ok()
            .and_then(|k| k.checked_sub(1))
    };
    let (users_label, similar) = match (similar_path, users_path) {
        (Some(p), _) => {
            let (srows, _, sim) = npy::read_indices(p)?;
            let width = sim.len() / srows.max(1);
            let dataset_of_row: std::collections::HashMap<usize, u32> = (0..data.n_users())
                .filter_map(|u| user_row(u).map(|r| (r, u as u32)))
                .collect();
            let lists = (0..data.n_users())
                .map(|u| {
                    user_row(u)
                        .filter(|&r| r < srows)
                        .map_or_else(Vec::new, |r| {
                            sim[r * width..(r + 1) * width]
                                .iter()
                                .filter_map(|&v| dataset_of_row.get(&(v as usize)).copied())
                                .collect()
                        })
                })
                .collect();
            ("npy", lists)
        }
        (None, Some(p)) => {
            let (urows, udim, uvecs) = npy::read_matrix(p)?;
            let mut users = vec![0f32; data.n_users() * udim];
            for u in 0..data.n_users() {
                let r = user_row(u).filter(|&r| r < urows).ok_or_else(|| {
                    Error::format(p, format!("has no row for user {:?}", data.user_keys[u]))
                })?;
                users[u * udim..(u + 1) * udim].copy_from_slice(&uvecs[r * udim..(r + 1) * udim]);
            }
            (
                "npy",
                similar::most_similar(&users, data.n_users(), udim, top)?,
            )
        }
        (None, None) => (
            "mean-items",
            similar::most_similar(
                &mean_item_vectors(data, &aligned, dim),
                data.n_users(),
                dim,
                top,
            )?,
        ),
    };
    let set = SemanticSet {
        provenance: Provenance {
            model: format!(
                "npy:{}",
                items_path
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ),
            users: users_label.to_string(),
            similar: top,
            hubness: String::new(),
        },
        dim,
        item_keys: data.item_keys[1..].to_vec(),
        items: aligned,
        user_keys: data.user_keys.clone(),
        similar,
    };
    set.validate()?;
    Ok(set)
}
