//! `llmesr`: train, evaluate, export and query LLM-ESR sequential recommenders from the command
//! line. This file only dispatches; each group of commands has its own file, and each command's
//! flags are converted once into the library's configs there.

mod args;
mod bundle;
mod embed;
mod eval;
mod evaluate;
mod new_items;
mod report;
mod train;
mod workload;

use clap::{Parser, Subcommand};

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
    Train(train::TrainArgs),
    /// Embed every item (and every user's history) with a text model, find each user's most
    /// similar users, and write the semantic set LLM-ESR trains with.
    Embed(embed::EmbedArgs),
    /// Evaluate a trained run or a bundle on a dataset: every group, both protocols (or one),
    /// the validation or the test split, optionally with short sessions (the newest K items).
    Eval(eval::EvalArgs),
    /// Evaluate the most-popular baseline (the floor every table carries).
    Baseline(evaluate::BaselineArgs),
    /// Pack a trained run into one bundle file for the browser or `recommend`.
    Export(bundle::ExportArgs),
    /// Export a run at several storage types and evaluate each bundle, as the browser would run
    /// it, on the test split (full ranking): size and quality side by side.
    Quantize(bundle::QuantizeArgs),
    /// Recommend items for a session of item ids (oldest first).
    Recommend(bundle::RecommendArgs),
    /// Write a bundle of an untrained model over a synthetic catalogue (for fuzzing seeds and
    /// catalogue-size studies; its recommendations mean nothing).
    Synthetic(bundle::SyntheticArgs),
    /// Measure the tail-exposure control: for each weight, recommend 10 items to every test user
    /// from a bundle and report NDCG@10 of the held-out item, the tail share of the lists and the
    /// share of the catalogue they cover.
    Exposure(evaluate::ExposureArgs),
    /// Rank with each view of a dual-view bundle alone and with both, on the test split (full
    /// ranking): NDCG@10 overall and on tail items, the tail share and coverage of the top-10
    /// lists, and how each part's mean score follows item popularity.
    Views(evaluate::ViewsArgs),
    /// Judge the similar-user lists self-distillation uses: training-item overlap with the listed
    /// neighbours against random and best-possible ones, how popular the neighbours' items are,
    /// and how few users fill most lists.
    Neighbours(embed::NeighboursArgs),
    /// Write the benchmark workload: sessions of fixed lengths cut from test users' histories
    /// (their newest items), drawn with a seed, as JSON for the benchmark page and criterion.
    Workload(workload::WorkloadArgs),
    /// Draw NDCG@10 by item-popularity and user-history-length bucket for trained runs (SVG), and
    /// print the numbers as JSON.
    Figure(report::FigureArgs),
    /// Compare runs' validation NDCG@10 at equal epochs or at equal training loss, finished or still
    /// training (read from run.json or the resume file), as a Markdown table.
    Curves(report::CurvesArgs),
    /// Print the rows of a quality report (reports/quality.json) as Markdown tables.
    Report(report::ReportArgs),
    /// Add items that were not in training to a bundle, from their text alone: each is embedded
    /// with the bundle's text model and placed through its maps, under the next ids.
    AddItems(new_items::AddItemsArgs),
    /// List a bundle's items, optionally those whose title contains a text.
    Items(bundle::ItemsArgs),
}

/// mimalloc's `mi_option_purge_delay`, which the Rust bindings do not name: in both the v2 and
/// the v3 headers it is the option right before `use_numa_nodes`.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t =
    libmimalloc_sys::mi_option_use_numa_nodes - 1;

fn main() -> std::process::ExitCode {
    // Training frees and re-allocates the same large tensors every step; returning them to the
    // OS made the kernel zero fresh pages each time (a quarter of the profile). Never purging
    // keeps them: about 25% faster epochs, for memory the process would reuse anyway.
    // SAFETY: sets a process-wide allocator option before any thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    // Printed by hand so a user sees the cause chain, not a backtrace, whatever RUST_BACKTRACE says.
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => train::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Eval(a) => eval::eval(a),
        Command::Baseline(a) => evaluate::baseline(a),
        Command::Export(a) => bundle::export_run(a),
        Command::Quantize(a) => bundle::quantize(a),
        Command::Recommend(a) => bundle::recommend(a),
        Command::Synthetic(a) => bundle::synthetic(a),
        Command::Exposure(a) => evaluate::exposure(a),
        Command::Views(a) => evaluate::views(a),
        Command::Neighbours(a) => embed::neighbours(a),
        Command::Workload(a) => workload::run(a),
        Command::Figure(a) => report::figure(a),
        Command::Curves(a) => report::curves(a),
        Command::Report(a) => report::report(a),
        Command::AddItems(a) => new_items::add_items(a),
        Command::Items(a) => bundle::items(a),
    }
}
