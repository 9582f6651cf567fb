//! `llmesr embed` (the semantic set LLM-ESR trains with) and `llmesr neighbours` (how good its
//! similar-user lists are).

use crate::args::{default_dataset, DataArgs, TextModelArgs};
use anyhow::Result;
use clap::Args;
use llm_esr::data::{self, Dataset};
use llm_esr::semantic::build::{EmbedOptions, UserVectors};
use llm_esr::semantic::cache::EmbeddingCache;
use llm_esr::semantic::encoder::TextEncoder;
use llm_esr::semantic::similar::Hubness;
use llm_esr::semantic::SemanticSet;
use std::path::PathBuf;

fn defaults() -> EmbedOptions {
    EmbedOptions::default()
}

#[derive(Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Semantic set to write (safetensors).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub text: TextModelArgs,
    #[arg(long, default_value_t = defaults().batch_size)]
    pub batch_size: usize,
    /// history-text = the model over the user's training titles (reference); mean-items = the mean
    /// of the training items' vectors.
    #[arg(long, value_enum, default_value_t = defaults().users)]
    pub users: UserVectors,
    /// Similar users kept per user.
    #[arg(long, default_value_t = defaults().similar)]
    pub similar: usize,
    /// Rank similar users by CSLS with this many neighbours instead of plain cosine: users near
    /// everyone ("hubs", `llmesr neighbours`) are demoted. 0 = plain cosine, the reference's.
    #[arg(long, default_value_t = 0)]
    pub csls: usize,
    /// What an item is called in the prompts.
    #[arg(long, default_value_t = defaults().noun)]
    pub noun: String,
    #[arg(long, default_value_t = defaults().noun_plural)]
    pub noun_plural: String,
    /// Import item vectors from .npy instead of running a model (row r = item key r+1, or the
    /// r-th line of --npy-item-keys).
    #[arg(long)]
    pub items_npy: Option<PathBuf>,
    #[arg(long, requires = "items_npy")]
    pub npy_item_keys: Option<PathBuf>,
    /// With --items-npy: user vectors (row r = user key r+1).
    #[arg(long, requires = "items_npy")]
    pub users_npy: Option<PathBuf>,
    /// With --items-npy: similar-user lists (0-based user rows, like the reference's sim_user_100).
    #[arg(long, requires = "items_npy")]
    pub similar_npy: Option<PathBuf>,
    #[arg(long)]
    pub quiet: bool,
}

impl EmbedArgs {
    fn options(&self) -> EmbedOptions {
        EmbedOptions {
            noun: self.noun.clone(),
            noun_plural: self.noun_plural.clone(),
            users: self.users,
            similar: self.similar,
            hubness: match self.csls {
                0 => Hubness::Cosine,
                k => Hubness::Csls { k },
            },
            batch_size: self.batch_size,
            progress: !self.quiet,
        }
    }
}

pub fn run(a: EmbedArgs) -> Result<()> {
    if a.similar == 0 || a.batch_size == 0 {
        anyhow::bail!("--similar and --batch-size must be at least 1");
    }
    let raw = data::load_dir(&a.data.data)?;
    let dataset = Dataset::from_raw(&raw, &a.data.filter())?;
    let set = if let Some(items) = &a.items_npy {
        llm_esr::semantic::build::from_npy(
            &dataset,
            items,
            a.npy_item_keys.as_deref(),
            a.users_npy.as_deref(),
            a.similar_npy.as_deref(),
            a.similar,
        )?
    } else {
        let start = std::time::Instant::now();
        let encoder = TextEncoder::load(&a.text.model)?;
        let mut cache = EmbeddingCache::open(&a.text.cache, encoder.id(), encoder.dim())?;
        eprintln!(
            "{}: {} items, {} users; model {} ({}-d, {} tokens); {} cached texts",
            dataset.name,
            dataset.n_items(),
            dataset.n_users(),
            encoder.id(),
            encoder.dim(),
            encoder.max_tokens(),
            cache.len()
        );
        let set =
            llm_esr::semantic::build::build(&raw, &dataset, &encoder, &mut cache, &a.options())?;
        eprintln!("embedded in {:.1} s", start.elapsed().as_secs_f64());
        set
    };
    set.save(&a.out)?;
    eprintln!(
        "wrote {} ({} items × {}, {} users × {} similar; users: {})",
        a.out.display(),
        set.item_keys.len(),
        set.dim,
        set.user_keys.len(),
        a.similar,
        set.provenance.users
    );
    Ok(())
}

#[derive(Args)]
pub struct NeighboursArgs {
    #[arg(long)]
    pub data: PathBuf,
    /// A semantic set from `llmesr embed`.
    #[arg(long)]
    pub semantic: PathBuf,
    /// Neighbours per user (the teacher's 10).
    #[arg(long, default_value_t = llm_esr::train::TrainConfig::default().distill_users)]
    pub k: usize,
    /// Users for the best-possible overlap (an all-pairs search each).
    #[arg(long, default_value_t = 500)]
    pub sample: usize,
}

pub fn neighbours(a: NeighboursArgs) -> Result<()> {
    let dataset = default_dataset(&a.data)?;
    let similar = SemanticSet::load(&a.semantic)?.align(&dataset)?.similar;
    let q =
        llm_esr::semantic::neighbours::neighbour_quality(&dataset, &similar, a.k, a.sample, 42)?;
    println!(
        "{}: {} users, {} neighbours each",
        dataset.name, q.users, q.k
    );
    println!(
        "training-item Jaccard with neighbours: listed {:.4}, random {:.4}, best possible {:.4} ({} users sampled)",
        q.jaccard_listed, q.jaccard_random, q.jaccard_best, q.sample
    );
    println!(
        "mean popularity of a user's items: own {:.1}, listed neighbours' {:.1}",
        q.popularity_own, q.popularity_listed
    );
    println!(
        "the 10% most-listed users fill {:.1}% of the lists (their items' mean popularity {:.1}); {} users are never listed",
        100.0 * q.hub_slot_share,
        q.popularity_hubs,
        q.never_listed
    );
    eprintln!("{}", serde_json::to_string(&q)?);
    Ok(())
}
