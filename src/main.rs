//! `llmesr`: train, evaluate, export and query LLM-ESR sequential recommenders from the command line.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use llm_esr::bundle;
use llm_esr::data::{
    self, Dataset, FilterKind, FilterOptions, GroupConfig, Groups, PopularityScope, Stage,
    Threshold,
};
use llm_esr::eval::report::{self, RunLabels};
use llm_esr::eval::{evaluate, EvalReport, MostPopular, Protocol, Scorer};
use llm_esr::model::{Mode, ModelConfig};
use llm_esr::recommend::Recommender;
use llm_esr::train::run::{CHECKPOINT_FILE, RUN_FILE};
use llm_esr::train::{train, RunRecord, TrainConfig};
use std::path::{Path, PathBuf};

// candle allocates a fresh buffer for every op; glibc returns the large ones to the kernel each
// time, which cost half of training time in page faults. mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "llmesr",
    version,
    about = "LLM-ESR sequential recommendation: train natively, recommend anywhere"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model, evaluate it on the test split and save run.json + checkpoint.safetensors.
    Train(TrainArgs),
    /// Evaluate the most-popular baseline (the floor every table carries).
    Baseline(BaselineArgs),
    /// Pack a trained run into one bundle file for the browser or `recommend`.
    Export {
        /// Run folder written by `train`.
        #[arg(long)]
        run: PathBuf,
        /// Bundle file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Recommend items for a session of item ids (oldest first).
    Recommend {
        #[arg(long)]
        bundle: PathBuf,
        /// Comma-separated item ids, oldest first, e.g. 12,7,301.
        #[arg(long, value_delimiter = ',', num_args = 1..)]
        session: Vec<u32>,
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Allow items already in the session to be recommended again.
        #[arg(long)]
        include_session: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write a bundle of an untrained model over a synthetic catalogue (for fuzzing seeds and
    /// catalogue-size studies; its recommendations mean nothing).
    Synthetic {
        #[arg(long)]
        items: usize,
        #[arg(long, default_value_t = 200)]
        max_len: usize,
        #[arg(long, default_value_t = 64)]
        hidden: usize,
        #[arg(long, default_value_t = 1)]
        heads: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the rows of a quality report (reports/quality.json) as Markdown tables.
    Report {
        #[arg(long, default_value = "reports/quality.json")]
        input: PathBuf,
    },
    /// List a bundle's items, optionally those whose title contains a text.
    Items {
        #[arg(long)]
        bundle: PathBuf,
        #[arg(long)]
        search: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FilterArg {
    Single,
    Kcore,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Corrected,
    Faithful,
}

#[derive(Args, Clone)]
struct DataArgs {
    /// Dataset folder: RecBole atomic files (<name>.inter, <name>.item) or inter.txt (+ item_text.tsv).
    #[arg(long)]
    data: PathBuf,
    /// single = one pass over raw counts (reference); kcore = repeat until stable.
    #[arg(long, value_enum, default_value = "single")]
    filter: FilterArg,
    #[arg(long, default_value_t = 3)]
    min_user: usize,
    #[arg(long, default_value_t = 3)]
    min_item: usize,
    /// Share of users (shortest histories) that are tail users.
    #[arg(long, default_value_t = 0.8)]
    tail_user_share: f64,
    /// Share of items (least popular) that are tail items.
    #[arg(long, default_value_t = 0.8)]
    tail_item_share: f64,
    /// Absolute tail-user threshold (the paper's ts_user); overrides the share.
    #[arg(long)]
    ts_user: Option<usize>,
    /// Absolute tail-item threshold (the paper's ts_item); overrides the share.
    #[arg(long)]
    ts_item: Option<usize>,
    /// corrected: causal + padding masks, popularity from training data. faithful: as the reference code.
    #[arg(long, value_enum, default_value = "corrected")]
    mode: ModeArg,
    /// Longest history fed to the model (the newest items are kept).
    #[arg(long, default_value_t = 200)]
    max_len: usize,
    /// Append every metric as a row to this JSON report (e.g. reports/quality.json).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print the final metrics as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Run folder (run.json, checkpoint.safetensors).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 200)]
    epochs: usize,
    #[arg(long, default_value_t = 20)]
    patience: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    #[arg(long, default_value_t = 2)]
    layers: usize,
    #[arg(long, default_value_t = 1)]
    heads: usize,
    #[arg(long, default_value_t = 0.5)]
    dropout: f32,
    /// Hide the progress bar and per-epoch lines.
    #[arg(long)]
    quiet: bool,
    /// Continue from OUT/resume.safetensors (written after every epoch) instead of starting over.
    #[arg(long)]
    resume: bool,
}

#[derive(Args)]
struct BaselineArgs {
    #[command(flatten)]
    data: DataArgs,
}

impl DataArgs {
    fn mode(&self) -> Mode {
        match self.mode {
            ModeArg::Corrected => Mode::Corrected,
            ModeArg::Faithful => Mode::Faithful,
        }
    }

    fn group_config(&self) -> GroupConfig {
        GroupConfig {
            user: self.ts_user.map_or(
                Threshold::TailShare(self.tail_user_share),
                Threshold::Absolute,
            ),
            item: self.ts_item.map_or(
                Threshold::TailShare(self.tail_item_share),
                Threshold::Absolute,
            ),
            popularity: match self.mode() {
                Mode::Corrected => PopularityScope::Train,
                Mode::Faithful => PopularityScope::AllDistinctUsers,
            },
        }
    }

    fn load(&self) -> Result<(Dataset, Groups)> {
        let raw = data::load_dir(&self.data)?;
        let dataset = Dataset::from_raw(&raw, &self.filter())?;
        let groups = Groups::compute(&dataset, self.group_config(), self.max_len)?;
        eprintln!(
            "{}: {} users, {} items, {} interactions; tail items {} (popularity < {}), tail users {} (test input length < {})",
            dataset.name,
            dataset.n_users(),
            dataset.n_items(),
            dataset.n_interactions(),
            groups.n_tail_items,
            groups.item_cut,
            groups.n_tail_users_test,
            groups.user_cut
        );
        Ok((dataset, groups))
    }

    fn filter(&self) -> FilterOptions {
        FilterOptions {
            kind: match self.filter {
                FilterArg::Single => FilterKind::Single,
                FilterArg::Kcore => FilterKind::Kcore,
            },
            min_user: self.min_user,
            min_item: self.min_item,
        }
    }
}

fn test_reports(
    scorer: &dyn Scorer,
    data: &Dataset,
    groups: &Groups,
    seed: u64,
) -> Result<Vec<EvalReport>> {
    [Protocol::Full, Protocol::Sampled(100)]
        .into_iter()
        .map(|p| Ok(evaluate(scorer, data, groups, Stage::Test, p, seed, 256)?))
        .collect()
}

fn publish(args: &DataArgs, labels: &RunLabels, reports: &[EvalReport], title: &str) -> Result<()> {
    for r in reports {
        eprintln!("{}", report::table(title, r));
    }
    if let Some(path) = &args.report {
        let rows: Vec<_> = reports
            .iter()
            .flat_map(|r| report::rows(labels, r))
            .collect();
        report::append(path, &rows)?;
        eprintln!("appended {} rows to {}", rows.len(), path.display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(reports)?);
    }
    Ok(())
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    // Every setting is checked before the data is read, so a typo costs nothing.
    let mut model = ModelConfig::sasrec(1);
    model.mode = a.data.mode();
    model.max_len = a.data.max_len;
    model.hidden = a.hidden;
    model.n_layers = a.layers;
    model.n_heads = a.heads;
    model.dropout = a.dropout;
    let cfg = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        patience: a.patience,
        seed: a.data.seed,
        ..TrainConfig::default()
    };
    model.validate()?;
    cfg.validate()?;
    a.data.group_config().validate()?;
    let (dataset, groups) = a.data.load()?;
    model.n_items = dataset.n_items();
    let (net, _, outcome) = train(&dataset, &groups, &model, &cfg, &a.out, !a.quiet, a.resume)?;
    if let Some(e) = outcome.resumed_after {
        eprintln!("resumed after epoch {e}");
    }
    eprintln!(
        "best epoch {} (valid NDCG@10 full {:.4}); {:.1} s per training epoch",
        outcome.best_epoch, outcome.best_valid_ndcg10, outcome.seconds_per_epoch
    );
    let test = test_reports(&net, &dataset, &groups, a.data.seed)?;
    let record = RunRecord {
        dataset: dataset.name.clone(),
        filter: a.data.filter(),
        items: RunRecord::items_of(&dataset, &groups),
        model,
        train: cfg,
        groups,
        outcome,
        test: test.clone(),
    };
    record.save(&a.out)?;
    eprintln!("wrote {}", a.out.join(RUN_FILE).display());
    let labels = RunLabels {
        dataset: dataset.name.clone(),
        backbone: "sasrec".into(),
        variant: "base".into(),
        mode: record.model.mode.label().into(),
        seed: a.data.seed,
    };
    publish(
        &a.data,
        &labels,
        &test,
        &format!(
            "{} SASRec ({}) test",
            dataset.name,
            record.model.mode.label()
        ),
    )
}

fn cmd_baseline(a: BaselineArgs) -> Result<()> {
    let (dataset, groups) = a.data.load()?;
    let test = test_reports(&MostPopular::fit(&dataset), &dataset, &groups, a.data.seed)?;
    let labels = RunLabels {
        dataset: dataset.name.clone(),
        backbone: "mostpop".into(),
        variant: "base".into(),
        mode: a.data.mode().label().into(),
        seed: a.data.seed,
    };
    publish(
        &a.data,
        &labels,
        &test,
        &format!("{} most-popular test", dataset.name),
    )
}

fn cmd_export(run: &Path, out: &Path) -> Result<()> {
    let record = RunRecord::load(run)?;
    let weights = llm_esr::train::trainer::load_checkpoint(&run.join(CHECKPOINT_FILE))?;
    let bytes = bundle::write(&record.manifest(), &weights)?;
    // Prove the file loads before it replaces anything.
    Recommender::from_bytes(&bytes).context("the freshly written bundle does not load")?;
    llm_esr::fsio::write_atomic(out, &bytes)?;
    eprintln!(
        "wrote {} ({} bytes, {} items)",
        out.display(),
        bytes.len(),
        record.items.len()
    );
    Ok(())
}

fn cmd_recommend(
    bundle: &Path,
    session: &[u32],
    k: usize,
    include: bool,
    json: bool,
) -> Result<()> {
    let rec = Recommender::from_bytes(&llm_esr::fsio::read(bundle)?)?;
    let recs = rec.recommend(session, k, !include)?;
    if json {
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

fn cmd_items(bundle: &Path, search: Option<&str>) -> Result<()> {
    let rec = Recommender::from_bytes(&llm_esr::fsio::read(bundle)?)?;
    let needle = search.map(str::to_lowercase);
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

fn main() -> std::process::ExitCode {
    // Printed by hand so a user sees the cause chain, not a backtrace, whatever RUST_BACKTRACE says.
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => cmd_train(a),
        Command::Baseline(a) => cmd_baseline(a),
        Command::Export { run, out } => cmd_export(&run, &out),
        Command::Recommend {
            bundle,
            session,
            k,
            include_session,
            json,
        } => cmd_recommend(&bundle, &session, k, include_session, json),
        Command::Synthetic {
            items,
            max_len,
            hidden,
            heads,
            seed,
            out,
        } => {
            let mut cfg = ModelConfig::sasrec(items);
            cfg.max_len = max_len;
            cfg.hidden = hidden;
            cfg.n_heads = heads;
            cfg.validate()?;
            let weights = llm_esr::model::init::random_weights(&cfg, seed)?;
            let bytes = bundle::write(&bundle::Manifest::synthetic("synthetic", &cfg), &weights)?;
            llm_esr::fsio::write_atomic(&out, &bytes)?;
            eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
            Ok(())
        }
        Command::Report { input } => {
            let rows: Vec<report::QualityRow> =
                serde_json::from_slice(&llm_esr::fsio::read(&input)?)
                    .with_context(|| format!("{} is not a quality report", input.display()))?;
            print!("{}", report::markdown(&rows));
            Ok(())
        }
        Command::Items { bundle, search } => cmd_items(&bundle, search.as_deref()),
    }
}
