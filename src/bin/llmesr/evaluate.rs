//! The diagnostic evaluations: the floors (`baseline`), what each view of a bundle does (`views`)
//! and the tail-exposure trade-off (`exposure`).

use crate::args::{default_dataset, DataArgs};
use anyhow::Result;
use clap::Args;
use llm_esr::data::Stage;
use llm_esr::eval::report::RunLabels;
use llm_esr::eval::semantic_knn::SemanticNeighbours;
use llm_esr::eval::{evaluate_protocols, MostPopular};
use llm_esr::recommend::Recommender;
use llm_esr::semantic::SemanticSet;
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
