//! The evaluation commands: a saved model on a dataset (`eval`), the floors (`baseline`), what
//! each view of a bundle does (`views`) and the tail-exposure trade-off (`exposure`).

use crate::args::{default_dataset, DataArgs};
use anyhow::Result;
use clap::Args;
use llm_esr::data::{self, Dataset, FilterOptions, GroupConfig, Groups, Stage};
use llm_esr::eval::report::{self, RunLabels};
use llm_esr::eval::semantic_knn::SemanticNeighbours;
use llm_esr::eval::{
    evaluate_protocols, evaluate_with, EvalOptions, MostPopular, Protocol, Scorer, PROTOCOLS,
};
use llm_esr::recommend::Recommender;
use llm_esr::semantic::SemanticSet;
use llm_esr::train::checkpoint::load_model;
use llm_esr::train::{RunRecord, TrainConfig};
use std::path::PathBuf;

#[derive(Args)]
pub struct BaselineArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Score by text instead of popularity: the cosine between each item's language-model
    /// embedding (a semantic set from `llmesr embed`) and the mean of the user's recent items'.
    #[arg(long)]
    pub semantic: Option<PathBuf>,
    /// Newest session items that make the text-only profile (1, the newest item alone, was best
    /// on the validation split of both MovieLens sets among 1, 3, 5, 10, 20).
    #[arg(long, default_value_t = 1, requires = "semantic")]
    pub recent: usize,
    /// Rank the validation targets (to choose `--recent` without looking at the test split);
    /// such rows are never written to a report.
    #[arg(long, conflicts_with = "report")]
    pub valid: bool,
}

pub fn baseline(a: BaselineArgs) -> Result<()> {
    let (dataset, groups) = a.data.load()?;
    let stage = if a.valid { Stage::Valid } else { Stage::Test };
    let seed = a.data.seed;
    let (test, backbone, what) = match &a.semantic {
        None => (
            evaluate_protocols(&MostPopular::fit(&dataset), &dataset, &groups, stage, seed)?,
            "mostpop",
            "most-popular",
        ),
        Some(path) => {
            let aligned = SemanticSet::load(path)?.align(&dataset)?;
            let dim = aligned.items.dim(1)?;
            let items = aligned.items.flatten_all()?.to_vec1::<f32>()?;
            let knn = SemanticNeighbours::new(items, dim, a.recent)?;
            (
                evaluate_protocols(&knn, &dataset, &groups, stage, seed)?,
                "text-knn",
                "text-only (language-model neighbours)",
            )
        }
    };
    let labels = RunLabels {
        dataset: dataset.name.clone(),
        backbone: backbone.into(),
        variant: "base".into(),
        ablation: None,
        quant: None,
        bundle_bytes: None,
        mode: a.data.mode.label().into(),
        seed,
        ..RunLabels::default()
    };
    let title = format!(
        "{} {what} {}",
        dataset.name,
        if a.valid { "valid" } else { "test" }
    );
    a.data.publish(&labels, &test, &title)
}

/// A bundle and the dataset folder its model was trained on.
#[derive(Args)]
pub struct BundleDataArgs {
    #[arg(long)]
    pub bundle: PathBuf,
    /// The dataset folder the bundle's model was trained on.
    #[arg(long)]
    pub data: PathBuf,
}

#[derive(Args)]
pub struct ExposureArgs {
    #[command(flatten)]
    pub inputs: BundleDataArgs,
    #[arg(
        long,
        allow_negative_numbers = true,
        value_delimiter = ',',
        default_value = "0,0.25,0.5,1"
    )]
    pub weights: Vec<f32>,
}

pub fn exposure(a: ExposureArgs) -> Result<()> {
    let (bundle_path, data_dir) = (&a.inputs.bundle, &a.inputs.data);
    let rec = Recommender::from_bytes(&llm_esr::fsio::read(bundle_path)?)?;
    let dataset = default_dataset(data_dir)?;
    if dataset.n_items() != rec.n_items() {
        anyhow::bail!(
            "{} has {} items; {} gives {}",
            bundle_path.display(),
            rec.n_items(),
            data_dir.display(),
            dataset.n_items()
        );
    }
    let rows = llm_esr::eval::exposure::exposure(&rec, &dataset, &a.weights)?;
    println!("weight  NDCG@10  tail share  coverage");
    for r in &rows {
        println!(
            "{:<7} {:.4}   {:.3}       {:.3}",
            r.weight, r.ndcg10, r.tail_share, r.coverage
        );
    }
    eprintln!("{}", serde_json::to_string(&rows)?);
    Ok(())
}

#[derive(Args)]
pub struct ViewsArgs {
    #[command(flatten)]
    pub inputs: BundleDataArgs,
    /// Rank the validation targets instead of the test targets.
    #[arg(long)]
    pub valid: bool,
}

pub fn views(a: ViewsArgs) -> Result<()> {
    let rec = Recommender::from_bytes(&llm_esr::fsio::read(&a.inputs.bundle)?)?;
    let dataset = default_dataset(&a.inputs.data)?;
    let stage = if a.valid { Stage::Valid } else { Stage::Test };
    let rows = llm_esr::eval::views::view_report(&rec, &dataset, stage)?;
    println!(
        "views          NDCG@10  tail-item NDCG@10  tail share  coverage  popularity rho  spread"
    );
    for r in &rows {
        println!(
            "{:<14} {:.4}   {:.4}             {:.3}       {:.3}     {:+.3}          {:.3}",
            r.views,
            r.ndcg10,
            r.tail_item_ndcg10,
            r.tail_share,
            r.coverage,
            r.popularity_spearman,
            r.score_spread
        );
    }
    eprintln!("{}", serde_json::to_string(&rows)?);
    Ok(())
}

#[derive(Args)]
pub struct EvalArgs {
    /// A run folder written by `train`: its best checkpoint is scored by the candle model.
    #[arg(long, required_unless_present = "bundle", conflicts_with = "bundle")]
    pub run: Option<PathBuf>,
    /// A bundle: scored by the inference engine, as the CLI and the browser serve it.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// The dataset folder the model was trained on.
    #[arg(long)]
    pub data: PathBuf,
    /// full, or sampledN (N uniform negatives, the paper's sampled100); default both.
    #[arg(long)]
    pub protocol: Option<Protocol>,
    /// Which held-out item to rank: valid (for choosing settings) or test.
    #[arg(long, value_enum, default_value_t = Stage::Test)]
    pub split: Stage,
    /// Give the model only the newest K items of each history (comma-separated for several K),
    /// as a visitor's short session; only those items are excluded from the candidates.
    #[arg(long, value_delimiter = ',')]
    pub session_len: Vec<usize>,
    /// Label the rows as a chosen configuration (best-base, best-llm).
    #[arg(long)]
    pub preset: Option<String>,
    /// Append every metric as a row to this JSON report (test split only).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Print the reports as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    if a.report.is_some() && a.split != Stage::Test {
        anyhow::bail!("--report takes test-split rows only: validation is for choosing settings");
    }
    if a.session_len.contains(&0) {
        anyhow::bail!("--session-len must be at least 1");
    }
    let raw = data::load_dir(&a.data)?;
    let (scorer, dataset, groups, mut labels, title): (Box<dyn Scorer>, _, _, _, _) =
        match (&a.run, &a.bundle) {
            (Some(run), _) => {
                let record = RunRecord::load(run)?;
                let dataset = record.dataset_from(&raw, run, &a.data)?;
                let model = load_model(run, &record)?;
                let title = format!("{} {}", record.dataset, record.title());
                (
                    Box::new(model),
                    dataset,
                    record.groups.clone(),
                    record.labels(),
                    title,
                )
            }
            (None, Some(path)) => {
                let rec = Recommender::from_bytes(&llm_esr::fsio::read(path)?)?;
                let dataset = Dataset::from_raw(&raw, &FilterOptions::default())?;
                if dataset.n_items() != rec.n_items() {
                    anyhow::bail!(
                        "{} has {} items; {} gives {}",
                        path.display(),
                        rec.n_items(),
                        a.data.display(),
                        dataset.n_items()
                    );
                }
                let cfg = rec.manifest().model.clone();
                let groups =
                    Groups::compute(&dataset, GroupConfig::for_mode(cfg.mode), cfg.max_len)?;
                let labels = RunLabels {
                    dataset: dataset.name.clone(),
                    backbone: cfg.backbone.label().into(),
                    variant: cfg.variant().into(),
                    quant: Some(rec.precision().label()),
                    bundle_bytes: Some(rec.bundle_bytes() as u64),
                    mode: cfg.mode.label().into(),
                    seed: TrainConfig::default().seed,
                    ..RunLabels::default()
                };
                let title = rec.manifest().name.clone();
                (Box::new(rec), dataset, groups, labels, title)
            }
            (None, None) => unreachable!("clap requires --run or --bundle"),
        };
    labels.preset = a.preset.clone();
    let protocols: Vec<Protocol> = a.protocol.map_or(PROTOCOLS.to_vec(), |p| vec![p]);
    let cuts: Vec<Option<usize>> = if a.session_len.is_empty() {
        vec![None]
    } else {
        a.session_len.iter().map(|&k| Some(k)).collect()
    };
    let mut all = Vec::new();
    let mut rows = Vec::new();
    for session_len in cuts {
        let opts = EvalOptions { session_len };
        labels.session_len = session_len;
        for &p in &protocols {
            let r = evaluate_with(
                scorer.as_ref(),
                &dataset,
                &groups,
                a.split,
                p,
                labels.seed,
                256,
                opts,
            )?;
            let what = session_len
                .map(|k| format!(", newest {k} items"))
                .unwrap_or_default();
            eprintln!(
                "{}",
                report::table(&format!("{title} {}{what}", a.split.label()), &r)
            );
            rows.extend(report::rows(&labels, &r));
            all.push(r);
        }
    }
    if let Some(path) = &a.report {
        report::append(path, &rows)?;
        eprintln!("appended {} rows to {}", rows.len(), path.display());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}
