//! `llmesr`: train, evaluate, export and query LLM-ESR sequential recommenders from the command line.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use llm_esr::bundle::{self, EncoderType, Precision, TableType};
use llm_esr::data::{
    self, Dataset, FilterKind, FilterOptions, GroupConfig, Groups, PopularityScope, Stage,
    Threshold,
};
use llm_esr::eval::report::{self, RunLabels};
use llm_esr::eval::{evaluate, EvalReport, MostPopular, Protocol, Scorer};
use llm_esr::model::{Backbone, Mode, ModelConfig, SemanticConfig, Views};
use llm_esr::recommend::Recommender;
use llm_esr::semantic::build::{EmbedOptions, UserVectors};
use llm_esr::semantic::similar::Hubness;
use llm_esr::semantic::SemanticSet;
use llm_esr::train::run::{CHECKPOINT_FILE, RUN_FILE};
use llm_esr::train::{
    train, IdInit, LossConfig, LossKind, RunRecord, SemanticInputs, Teacher, TrainConfig,
};
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
    /// Embed every item (and every user's history) with a text model, find each user's most
    /// similar users, and write the semantic set LLM-ESR trains with.
    Embed(EmbedArgs),
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
        /// Storage type of the item tables: f32, f16, q8 (Q8_0) or q4 (Q4_0).
        #[arg(long, default_value = "f32")]
        quant: TableType,
        /// Storage type of the encoder weights: f32 or f16.
        #[arg(long, default_value = "f32")]
        encoder: EncoderType,
    },
    /// Export a run at several storage types and evaluate each bundle, as the browser would run
    /// it, on the test split (full ranking): size and quality side by side.
    Quantize {
        /// Run folder written by `train`.
        #[arg(long)]
        run: PathBuf,
        /// The dataset folder the run was trained on.
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "f32,f16,q8,q4")]
        quant: Vec<TableType>,
        #[arg(long, default_value = "f32")]
        encoder: EncoderType,
        /// Keep the bundles in this folder as <quant>.gguf.
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Append every metric as a row (with `quant` and `bundle_bytes`) to this JSON report.
        #[arg(long)]
        report: Option<PathBuf>,
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
        /// Re-rank toward less-popular items (0 = the model's ranking; see `llmesr exposure`).
        #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
        tail_weight: f32,
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
        #[arg(long, value_enum, default_value = "sasrec")]
        backbone: BackboneArg,
        /// Give the model a (folded) semantic view and cross-attention, as an LLM-ESR bundle has.
        #[arg(long)]
        llmesr: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Storage type of the item tables: f32, f16, q8 or q4.
        #[arg(long, default_value = "f32")]
        quant: TableType,
        /// Titles for the items, one per line (reused in turn when there are fewer lines than
        /// items); by default `item 1`, `item 2`, ….
        #[arg(long)]
        titles: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Measure the tail-exposure control: for each weight, recommend 10 items to every test user
    /// from a bundle and report NDCG@10 of the held-out item, the tail share of the lists and the
    /// share of the catalogue they cover.
    Exposure {
        #[arg(long)]
        bundle: PathBuf,
        /// The dataset folder the bundle's model was trained on.
        #[arg(long)]
        data: PathBuf,
        #[arg(
            long,
            allow_negative_numbers = true,
            value_delimiter = ',',
            default_value = "0,0.25,0.5,1"
        )]
        weights: Vec<f32>,
    },
    /// Rank with each view of a dual-view bundle alone and with both, on the test split (full
    /// ranking): NDCG@10 overall and on tail items, the tail share and coverage of the top-10
    /// lists, and how each part's mean score follows item popularity.
    Views {
        #[arg(long)]
        bundle: PathBuf,
        /// The dataset folder the bundle's model was trained on.
        #[arg(long)]
        data: PathBuf,
        /// Rank the validation targets instead of the test targets.
        #[arg(long)]
        valid: bool,
    },
    /// Judge the similar-user lists self-distillation uses: training-item overlap with the listed
    /// neighbours against random and best-possible ones, how popular the neighbours' items are,
    /// and how few users fill most lists.
    Neighbours {
        #[arg(long)]
        data: PathBuf,
        /// A semantic set from `llmesr embed`.
        #[arg(long)]
        semantic: PathBuf,
        /// Neighbours per user (the teacher's 10).
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Users for the best-possible overlap (an all-pairs search each).
        #[arg(long, default_value_t = 500)]
        sample: usize,
    },
    /// Write the benchmark workload: sessions of fixed lengths cut from test users' histories
    /// (their newest items), drawn with a seed, as JSON for the benchmark page and criterion.
    Workload {
        /// Dataset folder (read with the default filter, as `train` reads it).
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "1,10,50,200")]
        lengths: Vec<usize>,
        /// Sessions per length (fewer where too few users have that many items).
        #[arg(long, default_value_t = 32)]
        per_length: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Draw NDCG@10 by item-popularity and user-history-length bucket for trained runs (SVG), and
    /// print the numbers as JSON.
    Figure {
        /// The dataset folder the runs were trained on.
        #[arg(long)]
        data: PathBuf,
        /// Run folders to compare (e.g. base, then LLM-ESR); repeat the flag.
        #[arg(long = "run", required = true, num_args = 1)]
        runs: Vec<PathBuf>,
        #[arg(long, default_value_t = 5)]
        buckets: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare runs' validation NDCG@10 at equal epochs or at equal training loss, finished or still
    /// training (read from run.json or the resume file), as a Markdown table.
    Curves {
        /// Run folders; repeat the flag.
        #[arg(long = "run", required = true, num_args = 1)]
        runs: Vec<PathBuf>,
        /// Epochs to show, comma-separated (default: 1, 5, 10, then every 10th).
        #[arg(long, value_delimiter = ',', conflicts_with = "at_loss")]
        epochs: Vec<usize>,
        /// Compare at equal training loss instead: for each loss, comma-separated, the validation
        /// NDCG@10 at the first epoch whose mean training loss fell to it.
        #[arg(long, allow_negative_numbers = true, value_delimiter = ',')]
        at_loss: Vec<f64>,
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
enum BackboneArg {
    Sasrec,
    Gru4rec,
    Bert4rec,
}

impl From<BackboneArg> for Backbone {
    fn from(b: BackboneArg) -> Self {
        match b {
            BackboneArg::Sasrec => Backbone::Sasrec,
            BackboneArg::Gru4rec => Backbone::Gru4rec,
            BackboneArg::Bert4rec => Backbone::Bert4rec,
        }
    }
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum VariantArg {
    /// The backbone alone, ID embeddings only.
    Base,
    /// LLM-ESR: semantic + collaborative views, cross-attention, self-distillation.
    Llmesr,
}

#[derive(Clone, Copy, ValueEnum)]
enum ViewsArg {
    Both,
    /// Ablation "w/o semantic view".
    Collaborative,
    /// Ablation "w/o collaborative view".
    Semantic,
}

#[derive(Clone, Copy, ValueEnum)]
enum TeacherArg {
    Fresh,
    Cached,
}

#[derive(Clone, Copy, ValueEnum)]
enum IdInitArg {
    Pca,
    Random,
}

#[derive(Clone, Copy, ValueEnum)]
enum UsersArg {
    HistoryText,
    MeanItems,
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
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.8)]
    tail_user_share: f64,
    /// Share of items (least popular) that are tail items.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.8)]
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
    #[arg(long, allow_negative_numbers = true, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, value_enum, default_value = "sasrec")]
    backbone: BackboneArg,
    #[arg(long, value_enum, default_value = "base")]
    variant: VariantArg,
    /// Semantic set written by `llmesr embed` (required for --variant llmesr).
    #[arg(long)]
    semantic: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Encoder layers (default: 2 for sasrec/bert4rec, 1 for gru4rec).
    #[arg(long)]
    layers: Option<usize>,
    #[arg(long, default_value_t = 1)]
    heads: usize,
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.5)]
    dropout: f32,
    /// LLM-ESR: weight of the self-distillation loss (0 = the "w/o SD" ablation).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
    distill_weight: f64,
    /// LLM-ESR: similar users per teacher.
    #[arg(long, default_value_t = 10)]
    distill_users: usize,
    /// LLM-ESR: fresh = encode the similar users every step (reference); cached = reuse their
    /// representations from their own last batch (much faster, at most one epoch old; BERT4Rec,
    /// whose inputs are masked, encodes each batch user's sequence once more for it). On ML-100k
    /// it matches fresh for SASRec and costs BERT4Rec 7% of NDCG@10 (BENCHMARKS.md §1).
    #[arg(long, value_enum, default_value = "fresh")]
    teacher: TeacherArg,
    /// LLM-ESR: which item views feed the encoder (ablations drop one).
    #[arg(long, value_enum, default_value = "both")]
    views: ViewsArg,
    /// LLM-ESR: drop the two cross-attentions (ablation "w/o cross-attention").
    #[arg(long)]
    no_cross: bool,
    /// LLM-ESR: add each cross-attention's output to its input view instead of replacing it
    /// (not in the reference; measured in BENCHMARKS.md)
    #[arg(long, conflicts_with = "no_cross")]
    cross_residual: bool,
    /// LLM-ESR: how the ID table starts (random = ablation "w/o PCA init").
    #[arg(long, value_enum, default_value = "pca")]
    id_init: IdInitArg,
    /// LLM-ESR: width between the adapter's two linear layers (default: half the input width).
    #[arg(long)]
    adapter_hidden: Option<usize>,
    #[arg(long, default_value_t = 2)]
    cross_heads: usize,
    /// BERT4Rec: share of positions masked in the random-masking samples.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.6)]
    mask_prob: f64,
    /// Batch users of similar history length together (faster with corrected mode's padding
    /// trimming; the reference draws batches uniformly).
    #[arg(long)]
    bucket: bool,
    /// The recommendation loss: bce (the reference: one uniform negative per target), ce (softmax
    /// over the whole catalogue), sampled (softmax over shared uniform negatives), gbce (gSASRec).
    #[arg(long, value_enum, default_value = "bce")]
    loss: LossKind,
    /// sampled, gbce: negatives drawn per batch, shared by its rows [default: 256].
    #[arg(long)]
    negatives: Option<usize>,
    /// gbce: calibration t in [0, 1] [default: 0.75].
    #[arg(long, allow_negative_numbers = true)]
    gbce_t: Option<f64>,
    /// sampled: correct each negative's score by log((items - 1) / negatives), so the sample
    /// stands for the whole catalogue in the softmax.
    #[arg(long)]
    logq: bool,
    /// Hide the progress bar and per-epoch lines.
    #[arg(long)]
    quiet: bool,
    /// Continue from OUT/resume.safetensors (written after every epoch) instead of starting over.
    #[arg(long)]
    resume: bool,
}

#[derive(Args)]
struct EmbedArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Semantic set to write (safetensors).
    #[arg(long)]
    out: PathBuf,
    /// BERT-family model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long, default_value = "models/all-minilm-l6-v2")]
    model: PathBuf,
    /// Embedding cache folder (one file per model, keyed by text).
    #[arg(long, default_value = "cache/embeddings")]
    cache: PathBuf,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// history-text = the model over the user's training titles (reference); mean-items = the mean
    /// of the training items' vectors.
    #[arg(long, value_enum, default_value = "history-text")]
    users: UsersArg,
    /// Similar users kept per user.
    #[arg(long, default_value_t = 100)]
    similar: usize,
    /// Rank similar users by CSLS with this many neighbours instead of plain cosine: users near
    /// everyone ("hubs", `llmesr neighbours`) are demoted. 0 = plain cosine, the reference's.
    #[arg(long, default_value_t = 0)]
    csls: usize,
    /// What an item is called in the prompts.
    #[arg(long, default_value = "movie")]
    noun: String,
    #[arg(long, default_value = "movies")]
    noun_plural: String,
    /// Import item vectors from .npy instead of running a model (row r = item key r+1, or the
    /// r-th line of --npy-item-keys).
    #[arg(long)]
    items_npy: Option<PathBuf>,
    #[arg(long, requires = "items_npy")]
    npy_item_keys: Option<PathBuf>,
    /// With --items-npy: user vectors (row r = user key r+1).
    #[arg(long, requires = "items_npy")]
    users_npy: Option<PathBuf>,
    /// With --items-npy: similar-user lists (0-based user rows, like the reference's sim_user_100).
    #[arg(long, requires = "items_npy")]
    similar_npy: Option<PathBuf>,
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct BaselineArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Score by text instead of popularity: the cosine between each item's language-model
    /// embedding (a semantic set from `llmesr embed`) and the mean of the user's recent items'.
    #[arg(long)]
    semantic: Option<PathBuf>,
    /// Newest session items that make the text-only profile (1, the newest item alone, was best
    /// on the validation split of both MovieLens sets among 1, 3, 5, 10, 20).
    #[arg(long, default_value_t = 1, requires = "semantic")]
    recent: usize,
    /// Rank the validation targets (to choose `--recent` without looking at the test split);
    /// such rows are never written to a report.
    #[arg(long, conflicts_with = "report")]
    valid: bool,
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
    stage_reports(scorer, data, groups, Stage::Test, seed)
}

fn stage_reports(
    scorer: &dyn Scorer,
    data: &Dataset,
    groups: &Groups,
    stage: Stage,
    seed: u64,
) -> Result<Vec<EvalReport>> {
    [Protocol::Full, Protocol::Sampled(100)]
        .into_iter()
        .map(|p| Ok(evaluate(scorer, data, groups, stage, p, seed, 256)?))
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

fn model_config(a: &TrainArgs, input_dim: usize) -> ModelConfig {
    let backbone = Backbone::from(a.backbone);
    let mut model = ModelConfig::reference(backbone, 1);
    model.mode = a.data.mode();
    model.max_len = a.data.max_len;
    model.hidden = a.hidden;
    if let Some(l) = a.layers {
        model.n_layers = l;
    }
    model.n_heads = a.heads;
    model.dropout = a.dropout;
    if a.variant == VariantArg::Llmesr {
        let mut sem = SemanticConfig::reference(input_dim);
        if let Some(h) = a.adapter_hidden {
            sem.adapter_hidden = h;
        }
        sem.views = match a.views {
            ViewsArg::Both => Views::Both,
            ViewsArg::Collaborative => Views::Collaborative,
            ViewsArg::Semantic => Views::Semantic,
        };
        sem.cross_attention = !a.no_cross;
        sem.cross_residual = a.cross_residual;
        sem.cross_heads = a.cross_heads;
        model.semantic = Some(sem);
    }
    model
}

fn loss_config(a: &TrainArgs) -> Result<LossConfig> {
    let d = LossConfig::default();
    if a.negatives.is_some() && !a.loss.samples_negatives() {
        anyhow::bail!(
            "--negatives is used by --loss sampled and gbce, not {}",
            a.loss.label()
        );
    }
    if a.gbce_t.is_some() && a.loss != LossKind::Gbce {
        anyhow::bail!("--gbce-t is used by --loss gbce, not {}", a.loss.label());
    }
    Ok(LossConfig {
        kind: a.loss,
        negatives: a.negatives.unwrap_or(d.negatives),
        gbce_t: a.gbce_t.unwrap_or(d.gbce_t),
        logq: a.logq,
    })
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    // Every setting is checked before the data is read, so a typo costs nothing.
    let cfg = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        patience: a.patience,
        seed: a.data.seed,
        distill_weight: a.distill_weight,
        distill_users: a.distill_users,
        teacher: match a.teacher {
            TeacherArg::Fresh => Teacher::Fresh,
            TeacherArg::Cached => Teacher::Cached,
        },
        id_init: match a.id_init {
            IdInitArg::Pca => IdInit::Pca,
            IdInitArg::Random => IdInit::Random,
        },
        mask_prob: a.mask_prob,
        bucket: a.bucket,
        loss: loss_config(&a)?,
        ..TrainConfig::default()
    };
    model_config(&a, 384).validate()?;
    cfg.validate()?;
    a.data.group_config().validate()?;
    let semantic_set = match (a.variant, &a.semantic) {
        (VariantArg::Llmesr, None) => {
            anyhow::bail!("--variant llmesr needs --semantic FILE (write one with llmesr embed)")
        }
        (VariantArg::Llmesr, Some(p)) => Some((p, SemanticSet::load(p)?)),
        (VariantArg::Base, Some(_)) => {
            anyhow::bail!("--semantic is only used by --variant llmesr")
        }
        (VariantArg::Base, None) => None,
    };
    let (dataset, groups) = a.data.load()?;
    let mut model = model_config(&a, semantic_set.as_ref().map_or(384, |(_, s)| s.dim));
    model.n_items = dataset.n_items();
    model.validate()?;
    let semantic: Option<SemanticInputs> = semantic_set
        .as_ref()
        .map(|(_, s)| s.align(&dataset).map(SemanticInputs::from))
        .transpose()?;
    let (net, _, outcome) = train(
        &dataset,
        &groups,
        &model,
        &cfg,
        semantic.as_ref(),
        &a.out,
        !a.quiet,
        a.resume,
    )?;
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
        semantic: semantic_set
            .as_ref()
            .zip(semantic.as_ref())
            .map(|((p, _), s)| format!("{} ({})", p.display(), s.fingerprint)),
        outcome,
        test: test.clone(),
    };
    record.save(&a.out)?;
    eprintln!("wrote {}", a.out.join(RUN_FILE).display());
    let labels = RunLabels {
        dataset: dataset.name.clone(),
        backbone: record.model.backbone.label().into(),
        variant: record.model.variant().into(),
        ablation: record.ablation(),
        quant: None,
        bundle_bytes: None,
        mode: record.model.mode.label().into(),
        loss: record.train.loss_label(),
        seed: a.data.seed,
    };
    publish(
        &a.data,
        &labels,
        &test,
        &format!(
            "{} {} {}{} ({}) test",
            dataset.name,
            labels.backbone,
            labels.variant,
            labels
                .ablation
                .as_ref()
                .map(|x| format!(" [{x}]"))
                .unwrap_or_default(),
            labels.mode
        ),
    )
}

fn cmd_embed(a: EmbedArgs) -> Result<()> {
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
        let encoder = llm_esr::semantic::encoder::TextEncoder::load(&a.model)?;
        let mut cache =
            llm_esr::semantic::cache::EmbeddingCache::open(&a.cache, encoder.id(), encoder.dim())?;
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
        let opts = EmbedOptions {
            noun: a.noun.clone(),
            noun_plural: a.noun_plural.clone(),
            users: match a.users {
                UsersArg::HistoryText => UserVectors::HistoryText,
                UsersArg::MeanItems => UserVectors::MeanItems,
            },
            similar: a.similar,
            hubness: match a.csls {
                0 => Hubness::Cosine,
                k => Hubness::Csls { k },
            },
            batch_size: a.batch_size,
            progress: !a.quiet,
        };
        let set = llm_esr::semantic::build::build(&raw, &dataset, &encoder, &mut cache, &opts)?;
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

fn cmd_baseline(a: BaselineArgs) -> Result<()> {
    let (dataset, groups) = a.data.load()?;
    let stage = if a.valid { Stage::Valid } else { Stage::Test };
    let (test, backbone, what) = match &a.semantic {
        None => (
            stage_reports(
                &MostPopular::fit(&dataset),
                &dataset,
                &groups,
                stage,
                a.data.seed,
            )?,
            "mostpop",
            "most-popular",
        ),
        Some(path) => {
            let aligned = SemanticSet::load(path)?.align(&dataset)?;
            let dim = aligned.items.dim(1)?;
            let items = aligned.items.flatten_all()?.to_vec1::<f32>()?;
            let knn = llm_esr::eval::semantic_knn::SemanticNeighbours::new(items, dim, a.recent)?;
            (
                stage_reports(&knn, &dataset, &groups, stage, a.data.seed)?,
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
        mode: a.data.mode().label().into(),
        loss: None,
        seed: a.data.seed,
    };
    publish(
        &a.data,
        &labels,
        &test,
        &format!(
            "{} {what} {}",
            dataset.name,
            if a.valid { "valid" } else { "test" }
        ),
    )
}

/// The dataset a run was trained on, read with the run's filter; refused when the catalogue
/// differs from the run's (another dataset, or other files).
fn run_dataset(
    raw: &data::RawData,
    record: &RunRecord,
    run: &Path,
    data_dir: &Path,
) -> Result<Dataset> {
    let dataset = Dataset::from_raw(raw, &record.filter)?;
    if dataset.n_items() != record.model.n_items {
        anyhow::bail!(
            "{} was trained on {} items; {} gives {}",
            run.display(),
            record.model.n_items,
            data_dir.display(),
            dataset.n_items()
        );
    }
    Ok(dataset)
}

/// The run's bundle bytes at the given storage types, checked to load.
fn export_bytes(run: &Path, precision: Precision) -> Result<(RunRecord, Vec<u8>)> {
    let record = RunRecord::load(run)?;
    let weights = llm_esr::train::trainer::load_checkpoint(&run.join(CHECKPOINT_FILE))?;
    let (model, weights) = llm_esr::model::fold::fold_semantic(&record.model, &weights)?;
    let mut manifest = record.manifest();
    manifest.model = model;
    let bytes = bundle::write_with(&manifest, &weights, precision)?;
    // Prove the file loads before it replaces anything.
    Recommender::from_bytes(&bytes).context("the freshly written bundle does not load")?;
    Ok((record, bytes))
}

fn cmd_export(run: &Path, out: &Path, precision: Precision) -> Result<()> {
    let (record, bytes) = export_bytes(run, precision)?;
    llm_esr::fsio::write_atomic(out, &bytes)?;
    eprintln!(
        "wrote {} ({} bytes, {} items, tables {}, encoder {})",
        out.display(),
        bytes.len(),
        record.items.len(),
        precision.tables,
        precision.encoder
    );
    Ok(())
}

fn cmd_quantize(
    run: &Path,
    data_dir: &Path,
    quants: &[TableType],
    encoder: EncoderType,
    out_dir: Option<&Path>,
    report_path: Option<&Path>,
) -> Result<()> {
    let raw = data::load_dir(data_dir)?;
    let mut table = Vec::new();
    let mut all_rows = Vec::new();
    for &tables in quants {
        let precision = Precision { tables, encoder };
        let (record, bytes) = export_bytes(run, precision)?;
        let dataset = run_dataset(&raw, &record, run, data_dir)?;
        let rec = Recommender::from_bytes(&bytes)?;
        let eval = llm_esr::eval::evaluate(
            &rec,
            &dataset,
            &record.groups,
            Stage::Test,
            Protocol::Full,
            record.train.seed,
            256,
        )?;
        if let Some(dir) = out_dir {
            std::fs::create_dir_all(dir)?;
            llm_esr::fsio::write_atomic(&dir.join(format!("{}.gguf", precision.label())), &bytes)?;
        }
        let labels = RunLabels {
            dataset: record.dataset.clone(),
            backbone: record.model.backbone.label().into(),
            variant: record.model.variant().into(),
            ablation: record.ablation(),
            quant: Some(precision.label()),
            bundle_bytes: Some(bytes.len() as u64),
            mode: record.model.mode.label().into(),
            loss: record.train.loss_label(),
            seed: record.train.seed,
        };
        let ndcg = |g: &str| {
            eval.group(g)
                .means()
                .into_iter()
                .find(|(m, _)| m == "ndcg@10")
                .map_or(f64::NAN, |(_, v)| v)
        };
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
    if let Some(path) = report_path {
        report::append(path, &all_rows)?;
        eprintln!("appended {} rows to {}", all_rows.len(), path.display());
    }
    Ok(())
}

fn cmd_exposure(bundle_path: &Path, data_dir: &Path, weights: &[f32]) -> Result<()> {
    let rec = Recommender::from_bytes(&llm_esr::fsio::read(bundle_path)?)?;
    let raw = data::load_dir(data_dir)?;
    let dataset = Dataset::from_raw(&raw, &FilterOptions::default())?;
    if dataset.n_items() != rec.n_items() {
        anyhow::bail!(
            "{} has {} items; {} gives {}",
            bundle_path.display(),
            rec.n_items(),
            data_dir.display(),
            dataset.n_items()
        );
    }
    let mut out = Vec::new();
    println!("weight  NDCG@10  tail share  coverage");
    for &w in weights {
        let opts = llm_esr::recommend::Options {
            exclude_session: true,
            tail_weight: w,
        };
        let (mut ndcg, mut tail, mut shown) = (0f64, 0usize, 0usize);
        let mut seen = std::collections::HashSet::new();
        for seq in &dataset.sequences {
            let (input, target) = llm_esr::data::split::eval_case(seq, Stage::Test);
            let recs = rec.recommend_with(input, 10, opts)?;
            if let Some(r) = recs.iter().position(|r| r.id == target) {
                ndcg += 1.0 / ((r + 2) as f64).log2();
            }
            tail += recs.iter().filter(|r| r.tail).count();
            shown += recs.len();
            seen.extend(recs.iter().map(|r| r.id));
        }
        let users = dataset.sequences.len() as f64;
        let row = serde_json::json!({
            "weight": w,
            "ndcg@10": ndcg / users,
            "tail_share": tail as f64 / shown.max(1) as f64,
            "coverage": seen.len() as f64 / rec.n_items() as f64,
            "users": dataset.sequences.len(),
        });
        println!(
            "{w:<7} {:.4}   {:.3}       {:.3}",
            row["ndcg@10"].as_f64().unwrap_or(f64::NAN),
            row["tail_share"].as_f64().unwrap_or(f64::NAN),
            row["coverage"].as_f64().unwrap_or(f64::NAN)
        );
        out.push(row);
    }
    eprintln!("{}", serde_json::to_string(&out)?);
    Ok(())
}

fn cmd_views(bundle_path: &Path, data_dir: &Path, valid: bool) -> Result<()> {
    let rec = Recommender::from_bytes(&llm_esr::fsio::read(bundle_path)?)?;
    let raw = data::load_dir(data_dir)?;
    let dataset = Dataset::from_raw(&raw, &FilterOptions::default())?;
    let stage = if valid { Stage::Valid } else { Stage::Test };
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

fn cmd_neighbours(data_dir: &Path, semantic: &Path, k: usize, sample: usize) -> Result<()> {
    let raw = data::load_dir(data_dir)?;
    let dataset = Dataset::from_raw(&raw, &FilterOptions::default())?;
    let similar = SemanticSet::load(semantic)?.align(&dataset)?.similar;
    let q = llm_esr::semantic::neighbours::neighbour_quality(&dataset, &similar, k, sample, 42)?;
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

fn cmd_workload(
    data_dir: &Path,
    lengths: &[usize],
    per_length: usize,
    seed: u64,
    out: &Path,
) -> Result<()> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let raw = data::load_dir(data_dir)?;
    let dataset = Dataset::from_raw(&raw, &FilterOptions::default())?;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut sessions = serde_json::Map::new();
    for &len in lengths {
        if len == 0 {
            anyhow::bail!("session lengths must be at least 1");
        }
        let mut inputs: Vec<&[u32]> = dataset
            .sequences
            .iter()
            .map(|s| llm_esr::data::split::eval_case(s, Stage::Test).0)
            .filter(|s| s.len() >= len)
            .collect();
        if inputs.is_empty() {
            anyhow::bail!("no test user of {} has {len} items", dataset.name);
        }
        inputs.shuffle(&mut rng);
        let chosen: Vec<&[u32]> = inputs
            .into_iter()
            .take(per_length)
            .map(|s| &s[s.len() - len..])
            .collect();
        sessions.insert(len.to_string(), serde_json::to_value(chosen)?);
    }
    let json = serde_json::json!({
        "dataset": dataset.name,
        "items": dataset.n_items(),
        "seed": seed,
        "sessions": sessions,
    });
    llm_esr::fsio::write_atomic(out, serde_json::to_string(&json)?.as_bytes())?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn cmd_figure(data_dir: &Path, runs: &[PathBuf], n: usize, out: &Path) -> Result<()> {
    use llm_esr::eval::buckets::by_quantile;
    use llm_esr::figure::Series;
    if n == 0 {
        anyhow::bail!("--buckets must be at least 1");
    }
    let raw = data::load_dir(data_dir)?;
    let mut series = Vec::new();
    let mut dataset_name = String::new();
    for run in runs {
        let record = RunRecord::load(run)?;
        let dataset = run_dataset(&raw, &record, run, data_dir)?;
        let weights = llm_esr::train::trainer::load_checkpoint(&run.join(CHECKPOINT_FILE))?;
        let vb = candle_nn::VarBuilder::from_tensors(
            weights,
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        );
        let model = llm_esr::model::SeqRec::new(&record.model, vb)
            .with_context(|| format!("{} does not match its run.json", run.display()))?;
        let ranked = llm_esr::eval::rank_all(
            &model,
            &dataset,
            Stage::Test,
            Protocol::Full,
            record.train.seed,
            256,
        )?;
        let pop = &record.groups.item_popularity;
        // The seed tells apart runs of one configuration drawn side by side.
        let label = format!(
            "{} {}{}, seed {}",
            record.model.backbone.label(),
            record.model.variant(),
            record
                .ablation()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default(),
            record.train.seed
        );
        series.push(Series {
            label,
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
    let svg = llm_esr::figure::svg(
        &format!("{dataset_name}: NDCG@10 on the test split, full ranking"),
        &series,
    )?;
    llm_esr::fsio::write_atomic(out, svg.as_bytes())?;
    let numbers: Vec<_> = series
        .iter()
        .map(|s| serde_json::json!({"model": s.label, "popularity": s.popularity, "length": s.length}))
        .collect();
    println!("{}", serde_json::to_string_pretty(&numbers)?);
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn cmd_recommend(
    bundle: &Path,
    session: &[u32],
    k: usize,
    opts: llm_esr::recommend::Options,
    json: bool,
) -> Result<()> {
    let rec = Recommender::from_bytes(&llm_esr::fsio::read(bundle)?)?;
    let recs = rec.recommend_with(session, k, opts)?;
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

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => cmd_train(a),
        Command::Embed(a) => cmd_embed(a),
        Command::Baseline(a) => cmd_baseline(a),
        Command::Export {
            run,
            out,
            quant,
            encoder,
        } => cmd_export(
            &run,
            &out,
            Precision {
                tables: quant,
                encoder,
            },
        ),
        Command::Quantize {
            run,
            data,
            quant,
            encoder,
            out_dir,
            report,
        } => cmd_quantize(
            &run,
            &data,
            &quant,
            encoder,
            out_dir.as_deref(),
            report.as_deref(),
        ),
        Command::Recommend {
            bundle,
            session,
            k,
            include_session,
            tail_weight,
            json,
        } => cmd_recommend(
            &bundle,
            &session,
            k,
            llm_esr::recommend::Options {
                exclude_session: !include_session,
                tail_weight,
            },
            json,
        ),
        Command::Synthetic {
            items,
            max_len,
            hidden,
            heads,
            backbone,
            llmesr,
            seed,
            quant,
            titles,
            out,
        } => {
            let mut cfg = ModelConfig::reference(backbone.into(), items);
            cfg.max_len = max_len;
            cfg.hidden = hidden;
            cfg.n_heads = heads;
            if llmesr {
                let mut sem = SemanticConfig::reference(hidden);
                sem.folded = true;
                cfg.semantic = Some(sem);
            }
            cfg.validate()?;
            let weights = llm_esr::model::init::random_weights(&cfg, seed)?;
            let mut manifest = bundle::Manifest::synthetic("synthetic", &cfg);
            if let Some(path) = titles {
                let text = String::from_utf8(llm_esr::fsio::read(&path)?)
                    .with_context(|| format!("{} is not UTF-8", path.display()))?;
                let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
                if lines.is_empty() {
                    anyhow::bail!("{} has no titles", path.display());
                }
                for (i, item) in manifest.items.iter_mut().enumerate() {
                    item.title = lines[i % lines.len()].to_string();
                }
            }
            let bytes = bundle::write_with(
                &manifest,
                &weights,
                Precision {
                    tables: quant,
                    encoder: EncoderType::F32,
                },
            )?;
            llm_esr::fsio::write_atomic(&out, &bytes)?;
            eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
            Ok(())
        }
        Command::Exposure {
            bundle,
            data,
            weights,
        } => cmd_exposure(&bundle, &data, &weights),
        Command::Views {
            bundle,
            data,
            valid,
        } => cmd_views(&bundle, &data, valid),
        Command::Neighbours {
            data,
            semantic,
            k,
            sample,
        } => cmd_neighbours(&data, &semantic, k, sample),
        Command::Workload {
            data,
            lengths,
            per_length,
            seed,
            out,
        } => cmd_workload(&data, &lengths, per_length, seed, &out),
        Command::Figure {
            data,
            runs,
            buckets,
            out,
        } => cmd_figure(&data, &runs, buckets, &out),
        Command::Curves {
            runs,
            epochs,
            at_loss,
        } => {
            use llm_esr::train::progress::{default_epochs, markdown, markdown_at_loss, Progress};
            let runs = runs
                .iter()
                .map(|r| Progress::load(r))
                .collect::<llm_esr::Result<Vec<_>>>()?;
            if !at_loss.is_empty() {
                print!("{}", markdown_at_loss(&runs, &at_loss));
                return Ok(());
            }
            let epochs = if epochs.is_empty() {
                default_epochs(&runs)
            } else {
                epochs
            };
            print!("{}", markdown(&runs, &epochs));
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
