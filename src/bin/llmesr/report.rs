//! The reporting commands: the long-tail figure of trained runs (`figure`), their validation
//! curves (`curves`) and the quality report as Markdown (`report`).

use anyhow::{Context, Result};
use clap::Args;
use llm_esr::data::{self, Stage};
use llm_esr::eval::buckets::by_quantile;
use llm_esr::eval::figure::Series;
use llm_esr::eval::report;
use llm_esr::eval::{rank_all, Protocol};
use llm_esr::train::checkpoint::load_model;
use llm_esr::train::curves::{default_epochs, markdown, markdown_at_loss, Progress};
use llm_esr::train::RunRecord;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct FigureArgs {
    /// The dataset folder the runs were trained on.
    #[arg(long)]
    pub data: PathBuf,
    /// Run folders to compare (e.g. base, then LLM-ESR); repeat the flag.
    #[arg(long = "run", required = true, num_args = 1)]
    pub runs: Vec<PathBuf>,
    #[arg(long, default_value_t = 5)]
    pub buckets: usize,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn figure(a: FigureArgs) -> Result<()> {
    let n = a.buckets;
    if n == 0 {
        anyhow::bail!("--buckets must be at least 1");
    }
    let raw = data::load_dir(&a.data)?;
    let mut series = Vec::new();
    let mut dataset_name = String::new();
    for run in &a.runs {
        let record = RunRecord::load(run)?;
        let dataset = record.dataset_from(&raw, run, &a.data)?;
        let model = load_model(run, &record)?;
        let ranked = rank_all(
            &model,
            &dataset,
            Stage::Test,
            Protocol::Full,
            record.train.seed,
            256,
        )?;
        let pop = &record.groups.item_popularity;
        series.push(Series {
            // The seed tells apart runs of one configuration drawn side by side.
            label: format!("{}, seed {}", record.title(), record.train.seed),
            popularity: by_quantile(
                "item popularity",
                &ranked,
                |r| pop[r.target as usize] as u64,
                n,
            ),
            length: by_quantile("history length", &ranked, |r| r.input_len as u64, n),
        });
        dataset_name = record.dataset.clone();
    }
    let svg = llm_esr::eval::figure::svg(
        &format!("{dataset_name}: NDCG@10 on the test split, full ranking"),
        &series,
    )?;
    llm_esr::fsio::write_atomic(&a.out, svg.as_bytes())?;
    let numbers: Vec<_> = series
        .iter()
        .map(|s| serde_json::json!({"model": s.label, "popularity": s.popularity, "length": s.length}))
        .collect();
    println!("{}", serde_json::to_string_pretty(&numbers)?);
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

#[derive(Args)]
pub struct CurvesArgs {
    /// Run folders; repeat the flag.
    #[arg(long = "run", required = true, num_args = 1)]
    pub runs: Vec<PathBuf>,
    /// Epochs to show, comma-separated (default: 1, 5, 10, then every 10th).
    #[arg(long, value_delimiter = ',', conflicts_with = "at_loss")]
    pub epochs: Vec<usize>,
    /// Compare at equal training loss instead: for each loss, comma-separated, the validation
    /// NDCG@10 at the first epoch whose mean training loss fell to it.
    #[arg(long, allow_negative_numbers = true, value_delimiter = ',')]
    pub at_loss: Vec<f64>,
}

pub fn curves(a: CurvesArgs) -> Result<()> {
    let runs = a
        .runs
        .iter()
        .map(|r| Progress::load(r))
        .collect::<llm_esr::Result<Vec<_>>>()?;
    if !a.at_loss.is_empty() {
        print!("{}", markdown_at_loss(&runs, &a.at_loss));
        return Ok(());
    }
    let epochs = if a.epochs.is_empty() {
        default_epochs(&runs)
    } else {
        a.epochs
    };
    print!("{}", markdown(&runs, &epochs));
    Ok(())
}

#[derive(Args)]
pub struct ReportArgs {
    #[arg(long, default_value = "reports/quality.json")]
    pub input: PathBuf,
}

pub fn report(a: ReportArgs) -> Result<()> {
    print!("{}", report::markdown(&read_rows(&a.input)?));
    Ok(())
}

fn read_rows(path: &Path) -> Result<Vec<report::QualityRow>> {
    serde_json::from_slice(&llm_esr::fsio::read(path)?)
        .with_context(|| format!("{} is not a quality report", path.display()))
}
