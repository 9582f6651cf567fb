//! The bundle commands: `export` a run, `quantize` it at several storage types with the quality
//! each keeps, write a `synthetic` bundle, and query one (`recommend`, `items`).

use anyhow::{Context, Result};
use clap::Args;
use llm_esr::bundle::{self, EncoderType, Manifest, NewItemId, Precision, TableType, TextBoost};
use llm_esr::data::{self, Stage};
use llm_esr::eval::report;
use llm_esr::eval::{evaluate, Protocol};
use llm_esr::model::{Backbone, ModelConfig, SemanticConfig};
use llm_esr::recommend::{Options, Recommender};
use llm_esr::train::export::{export, export_with, ExportOptions, TextExport};
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    /// Run folder written by `train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Bundle file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Storage type of the item tables: f32, f16, q8 (Q8_0) or q4 (Q4_0).
    #[arg(long, default_value = "f32")]
    pub quant: TableType,
    /// Storage type of the encoder weights: f32 or f16.
    #[arg(long, default_value = "f32")]
    pub encoder: EncoderType,
    #[command(flatten)]
    pub text: TextArgs,
}

/// The text space a bundle may carry (the serving-time text term and new items from their text).
#[derive(Args)]
pub struct TextArgs {
    /// Carry the items' text vectors in a table of this width (standardised, PCA, unit length).
    #[arg(long)]
    pub text_width: Option<usize>,
    /// A semantic set from `llmesr embed` with the items' text vectors, for a run without a
    /// semantic view.
    #[arg(long, requires = "text_width")]
    pub semantic: Option<PathBuf>,
    /// Weight of the serving-time text term (0: off).
    #[arg(long, requires = "text_width", default_value_t = TextBoost::default().weight)]
    pub text_weight: f32,
    /// The text term applies to candidates below this training popularity (0: to all; default:
    /// the bundle's tail cut).
    #[arg(long, requires = "text_width")]
    pub text_below: Option<u32>,
    /// Newest session items each candidate is compared with.
    #[arg(long, requires = "text_width", default_value_t = TextBoost::default().recent)]
    pub text_recent: usize,
    /// Keep what placing new items from their text needs (`llmesr add-items`, `rec.addItems`),
    /// their ID rows made as zeros, the PCA projection, or a ridge map onto the trained rows.
    #[arg(long, value_enum, requires = "text_width")]
    pub new_item_id: Option<NewItemId>,
    /// What an item is called in the prompts its text vector is made from.
    #[arg(long, requires = "new_item_id", default_value = "movie")]
    pub noun: String,
}

impl TextArgs {
    /// The text space to export, the term routed to the run's tail items unless told otherwise.
    fn export(&self, run: &std::path::Path) -> Result<Option<TextExport>> {
        let Some(width) = self.text_width else {
            return Ok(None);
        };
        let below = match self.text_below {
            Some(b) => b,
            None => llm_esr::train::RunRecord::load(run)?.groups.item_cut,
        };
        Ok(Some(TextExport {
            width,
            boost: TextBoost {
                weight: self.text_weight,
                below_popularity: below,
                recent: self.text_recent,
            },
            semantic: self.semantic.clone(),
            new_items: self.new_item_id,
            noun: self.noun.clone(),
        }))
    }
}

pub fn export_run(a: ExportArgs) -> Result<()> {
    let precision = Precision {
        tables: a.quant,
        encoder: a.encoder,
    };
    let opts = ExportOptions {
        precision,
        text: a.text.export(&a.run)?,
    };
    let (record, bytes) = export_with(&a.run, &opts)?;
    llm_esr::fsio::write_atomic(&a.out, &bytes)?;
    eprintln!(
        "wrote {} ({} bytes, {} items, tables {}, encoder {})",
        a.out.display(),
        bytes.len(),
        record.items.len(),
        precision.tables,
        precision.encoder
    );
    Ok(())
}

#[derive(Args)]
pub struct QuantizeArgs {
    /// Run folder written by `train`.
    #[arg(long)]
    pub run: PathBuf,
    /// The dataset folder the run was trained on.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "f32,f16,q8,q4")]
    pub quant: Vec<TableType>,
    #[arg(long, default_value = "f32")]
    pub encoder: EncoderType,
    /// Keep the bundles in this folder as <quant>.gguf.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Append every metric as a row (with `quant` and `bundle_bytes`) to this JSON report.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

pub fn quantize(a: QuantizeArgs) -> Result<()> {
    let raw = data::load_dir(&a.data)?;
    let mut table = Vec::new();
    let mut all_rows = Vec::new();
    for &tables in &a.quant {
        let precision = Precision {
            tables,
            encoder: a.encoder,
        };
        let (record, bytes) = export(&a.run, precision)?;
        let dataset = record.dataset_from(&raw, &a.run, &a.data)?;
        let rec = Recommender::from_bytes(&bytes)?;
        let eval = evaluate(
            &rec,
            &dataset,
            &record.groups,
            Stage::Test,
            Protocol::Full,
            record.train.seed,
            256,
        )?;
        if let Some(dir) = &a.out_dir {
            std::fs::create_dir_all(dir)?;
            llm_esr::fsio::write_atomic(&dir.join(format!("{}.gguf", precision.label())), &bytes)?;
        }
        let mut labels = record.labels();
        labels.quant = Some(precision.label());
        labels.bundle_bytes = Some(bytes.len() as u64);
        let ndcg = |g: &str| eval.group(g).mean("ndcg@10");
        table.push((
            precision.label(),
            bytes.len(),
            ndcg("overall"),
            ndcg("tail_item"),
        ));
        all_rows.extend(report::rows(&labels, &eval));
    }
    let reference = table.first().map_or(f64::NAN, |r| r.2);
    println!(
        "quant  bytes        NDCG@10  tail-item NDCG@10  change vs {}",
        table.first().map_or("-", |r| r.0.as_str())
    );
    for (q, bytes, overall, tail) in &table {
        println!(
            "{q:<6} {bytes:<12} {overall:.4}   {tail:.4}             {:+.2}%",
            (overall / reference - 1.0) * 100.0
        );
    }
    if let Some(path) = &a.report {
        report::append(path, &all_rows)?;
        eprintln!("appended {} rows to {}", all_rows.len(), path.display());
    }
    Ok(())
}

#[derive(Args)]
pub struct SyntheticArgs {
    #[arg(long)]
    pub items: usize,
    #[arg(long, default_value_t = ModelConfig::sasrec(0).max_len)]
    pub max_len: usize,
    #[arg(long, default_value_t = ModelConfig::sasrec(0).hidden)]
    pub hidden: usize,
    #[arg(long, default_value_t = ModelConfig::sasrec(0).n_heads)]
    pub heads: usize,
    #[arg(long, value_enum, default_value_t = Backbone::default())]
    pub backbone: Backbone,
    /// Give the model a (folded) semantic view and cross-attention, as an LLM-ESR bundle has.
    #[arg(long)]
    pub llmesr: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Storage type of the item tables: f32, f16, q8 or q4.
    #[arg(long, default_value = "f32")]
    pub quant: TableType,
    /// Titles for the items, one per line (reused in turn when there are fewer lines than
    /// items); by default `item 1`, `item 2`, ….
    #[arg(long)]
    pub titles: Option<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
}

impl SyntheticArgs {
    fn model_config(&self) -> ModelConfig {
        let mut cfg = ModelConfig::reference(self.backbone, self.items);
        cfg.max_len = self.max_len;
        cfg.hidden = self.hidden;
        cfg.n_heads = self.heads;
        if self.llmesr {
            let mut sem = SemanticConfig::reference(self.hidden);
            sem.folded = true;
            cfg.semantic = Some(sem);
        }
        cfg
    }
}

pub fn synthetic(a: SyntheticArgs) -> Result<()> {
    let cfg = a.model_config();
    cfg.validate()?;
    let weights = llm_esr::model::init::random_weights(&cfg, a.seed)?;
    let mut manifest = Manifest::synthetic("synthetic", &cfg);
    if let Some(path) = &a.titles {
        let text = String::from_utf8(llm_esr::fsio::read(path)?)
            .with_context(|| format!("{} is not UTF-8", path.display()))?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            anyhow::bail!("{} has no titles", path.display());
        }
        for (i, item) in manifest.items.iter_mut().enumerate() {
            item.title = lines[i % lines.len()].to_string();
        }
    }
    let precision = Precision {
        tables: a.quant,
        encoder: EncoderType::F32,
    };
    let bytes = bundle::write_with(&manifest, &weights, precision)?;
    llm_esr::fsio::write_atomic(&a.out, &bytes)?;
    eprintln!("wrote {} ({} bytes)", a.out.display(), bytes.len());
    Ok(())
}

#[derive(Args)]
pub struct RecommendArgs {
    #[arg(long)]
    pub bundle: PathBuf,
    /// Comma-separated item ids, oldest first, e.g. 12,7,301.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub session: Vec<u32>,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Allow items already in the session to be recommended again.
    #[arg(long)]
    pub include_session: bool,
    /// Re-rank toward less-popular items (0 = the model's ranking; see `llmesr exposure`).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub tail_weight: f32,
    #[arg(long)]
    pub json: bool,
}

pub fn recommend(a: RecommendArgs) -> Result<()> {
    let rec = Recommender::from_bytes(&llm_esr::fsio::read(&a.bundle)?)?;
    let opts = Options {
        exclude_session: !a.include_session,
        tail_weight: a.tail_weight,
    };
    let recs = rec.recommend_with(&a.session, a.k, opts)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&recs)?);
    } else {
        for (i, r) in recs.iter().enumerate() {
            println!(
                "{:>3}. [{:>5}] {:<60} {:>9.4} {}",
                i + 1,
                r.id,
                r.title,
                r.score,
                if r.tail { "tail" } else { "head" }
            );
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct ItemsArgs {
    #[arg(long)]
    pub bundle: PathBuf,
    #[arg(long)]
    pub search: Option<String>,
}

pub fn items(a: ItemsArgs) -> Result<()> {
    let rec = Recommender::from_bytes(&llm_esr::fsio::read(&a.bundle)?)?;
    let needle = a.search.as_deref().map(str::to_lowercase);
    for (i, item) in rec.manifest().items.iter().enumerate() {
        if needle
            .as_ref()
            .is_none_or(|n| item.title.to_lowercase().contains(n))
        {
            println!("{}\t{}\t{}", i + 1, item.title, item.popularity);
        }
    }
    Ok(())
}
