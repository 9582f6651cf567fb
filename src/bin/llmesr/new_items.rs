//! `llmesr add-items`: items that were not in training added to a bundle from their text alone.

use crate::args::TextModelArgs;
use anyhow::{Context, Result};
use clap::Args;
use llm_esr::data::ItemMeta;
use llm_esr::recommend::add_items::{add_items_to_bundle, NewItem};
use llm_esr::recommend::Recommender;
use llm_esr::semantic::build::embed_new_items;
use llm_esr::semantic::cache::EmbeddingCache;
use llm_esr::semantic::encoder::TextEncoder;
use std::path::PathBuf;

#[derive(Args)]
pub struct AddItemsArgs {
    /// The bundle to add to (exported with --text-width and --new-item-id).
    #[arg(long)]
    pub bundle: PathBuf,
    /// The new items as a RecBole-style .item file: tab-separated, a header naming item_id,
    /// movie_title/title/name and optionally release_year/year and genre/class.
    #[arg(long)]
    pub items: PathBuf,
    /// The bundle to write (the old one is left as it is).
    #[arg(long)]
    pub out: PathBuf,
    /// The text model: it must be the one the bundle's items were embedded with.
    #[command(flatten)]
    pub text: TextModelArgs,
    #[arg(long)]
    pub quiet: bool,
}

pub fn add_items(a: AddItemsArgs) -> Result<()> {
    let bytes = llm_esr::fsio::read(&a.bundle)?;
    let rec = Recommender::from_bytes(&bytes)?;
    let path = a.items.display().to_string();
    let text = String::from_utf8(llm_esr::fsio::read(&a.items)?)
        .with_context(|| format!("{path} is not UTF-8"))?;
    let rows = llm_esr::data::recbole::parse_item_rows(&text, &path)?;
    if rows.is_empty() {
        anyhow::bail!("{path}: no items after the header");
    }
    let Some(space) = rec.manifest().text.as_ref() else {
        anyhow::bail!(
            "{} cannot place new items: it has no text space (export it with --text-width and --new-item-id)",
            a.bundle.display()
        );
    };
    let Some(new) = &space.new_items else {
        anyhow::bail!(
            "{} cannot place new items: it was exported without --new-item-id",
            a.bundle.display()
        );
    };
    let encoder = TextEncoder::load(&a.text.model)?;
    if encoder.id() != space.model {
        anyhow::bail!(
            "{} was embedded with {}; {} is {}: new items must go through the same text model",
            a.bundle.display(),
            space.model,
            a.text.model.display(),
            encoder.id()
        );
    }
    let mut cache = EmbeddingCache::open(&a.text.cache, encoder.id(), encoder.dim())?;
    let items: Vec<(String, ItemMeta)> = rows.into_iter().map(|(_, k, m)| (k, m)).collect();
    let vectors = embed_new_items(&encoder, &mut cache, &items, &new.noun, !a.quiet)?;
    let new_items: Vec<NewItem> = items
        .iter()
        .zip(vectors)
        .map(|((key, meta), vector)| NewItem {
            key: key.clone(),
            title: meta.display_title(),
            vector,
        })
        .collect();
    let first = rec.n_items() + 1;
    let out = add_items_to_bundle(&bytes, &new_items)?;
    llm_esr::fsio::write_atomic(&a.out, &out)?;
    eprintln!(
        "wrote {} ({} bytes): {} new items, ids {first} to {}",
        a.out.display(),
        out.len(),
        new_items.len(),
        first + new_items.len() - 1
    );
    Ok(())
}
