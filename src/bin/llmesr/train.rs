//! `llmesr train`: its flags, converted once into the library's model and training configs.

use crate::args::DataArgs;
use anyhow::Result;
use clap::Args;
use llm_esr::data::{ColdConfig, Stage};
use llm_esr::eval::{evaluate_with, EvalOptions, PROTOCOLS};
use llm_esr::model::{Backbone, ModelConfig, SemanticConfig, Variant, Views};
use llm_esr::semantic::SemanticSet;
use llm_esr::train::run::RUN_FILE;
use llm_esr::train::{
    train, IdInit, LossConfig, LossKind, Preset, RunRecord, SemanticInputs, Teacher, TrainConfig,
    TrainInputs,
};
use std::path::PathBuf;

/// The width of MiniLM's vectors: the semantic input width checked before a set is read.
const DEFAULT_TEXT_WIDTH: usize = 384;

fn defaults() -> TrainConfig {
    TrainConfig::default()
}

fn model_defaults() -> ModelConfig {
    ModelConfig::sasrec(0)
}

fn semantic_defaults() -> SemanticConfig {
    SemanticConfig::reference(DEFAULT_TEXT_WIDTH)
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Run folder (run.json, checkpoint.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = defaults().epochs)]
    pub epochs: usize,
    #[arg(long, default_value_t = defaults().patience)]
    pub patience: usize,
    #[arg(long, default_value_t = defaults().batch_size)]
    pub batch_size: usize,
    #[arg(long, allow_negative_numbers = true, default_value_t = defaults().lr)]
    pub lr: f64,
    #[arg(long, value_enum, default_value_t = Backbone::default())]
    pub backbone: Backbone,
    #[arg(long, value_enum, default_value_t = Variant::default())]
    pub variant: Variant,
    /// A named configuration (BENCHMARKS.md §8): best-base (cross-entropy, dropout 0.1, hidden
    /// 128) or best-llm (LLM-ESR with residual cross-attention, no self-distillation,
    /// cross-entropy, dropout 0.1). It sets the variant, loss, dropout, hidden size, residual
    /// cross-attention and distillation weight, so those flags cannot be given with it.
    #[arg(long, value_enum, conflicts_with_all = [
        "variant", "loss", "dropout", "hidden", "cross_residual", "distill_weight", "teacher"
    ])]
    pub preset: Option<Preset>,
    /// Semantic set written by `llmesr embed` (required for --variant llmesr).
    #[arg(long)]
    pub semantic: Option<PathBuf>,
    #[arg(long, default_value_t = model_defaults().hidden)]
    pub hidden: usize,
    /// Encoder layers (default: 2 for sasrec/bert4rec, 1 for gru4rec).
    #[arg(long)]
    pub layers: Option<usize>,
    #[arg(long, default_value_t = model_defaults().n_heads)]
    pub heads: usize,
    #[arg(long, allow_negative_numbers = true, default_value_t = model_defaults().dropout)]
    pub dropout: f32,
    /// LLM-ESR: weight of the self-distillation loss (0 = the "w/o SD" ablation).
    #[arg(long, allow_negative_numbers = true, default_value_t = defaults().distill_weight)]
    pub distill_weight: f64,
    /// LLM-ESR: similar users per teacher.
    #[arg(long, default_value_t = defaults().distill_users)]
    pub distill_users: usize,
    /// LLM-ESR: fresh = encode the similar users every step (reference); cached = reuse their
    /// representations from their own last batch (much faster, at most one epoch old; BERT4Rec,
    /// whose inputs are masked, encodes each batch user's sequence once more for it). On ML-100k
    /// it matches fresh for SASRec and costs BERT4Rec 7% of NDCG@10 (BENCHMARKS.md §1).
    #[arg(long, value_enum, default_value_t = defaults().teacher)]
    pub teacher: Teacher,
    /// LLM-ESR: which item views feed the encoder (ablations drop one).
    #[arg(long, value_enum, default_value_t = semantic_defaults().views)]
    pub views: Views,
    /// LLM-ESR: drop the two cross-attentions (ablation "w/o cross-attention").
    #[arg(long)]
    pub no_cross: bool,
    /// LLM-ESR: add each cross-attention's output to its input view instead of replacing it
    /// (not in the reference; measured in BENCHMARKS.md)
    #[arg(long, conflicts_with = "no_cross")]
    pub cross_residual: bool,
    /// LLM-ESR: how the ID table starts (random = ablation "w/o PCA init").
    #[arg(long, value_enum, default_value_t = defaults().id_init)]
    pub id_init: IdInit,
    /// LLM-ESR: width between the adapter's two linear layers (default: half the input width).
    #[arg(long)]
    pub adapter_hidden: Option<usize>,
    #[arg(long, default_value_t = semantic_defaults().cross_heads)]
    pub cross_heads: usize,
    /// BERT4Rec: share of positions masked in the random-masking samples.
    #[arg(long, allow_negative_numbers = true, default_value_t = defaults().mask_prob)]
    pub mask_prob: f64,
    /// Batch users of similar history length together (faster with corrected mode's padding
    /// trimming; the reference draws batches uniformly).
    #[arg(long)]
    pub bucket: bool,
    /// SASRec: share of training sequences that start at a random item of the history, so short
    /// windows of recent items are trained as a visitor's short session reads (0 = never, the
    /// reference). Needs --distill-weight 0 for LLM-ESR.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub crop: f64,
    /// The recommendation loss: bce (the reference: one uniform negative per target), ce (softmax
    /// over the whole catalogue), sampled (softmax over shared uniform negatives), gbce (gSASRec).
    #[arg(long, value_enum, default_value_t = defaults().loss.kind)]
    pub loss: LossKind,
    /// sampled, gbce: negatives drawn per batch, shared by its rows [default: 256].
    #[arg(long)]
    pub negatives: Option<usize>,
    /// gbce: calibration t in [0, 1] [default: 0.75].
    #[arg(long, allow_negative_numbers = true)]
    pub gbce_t: Option<f64>,
    /// sampled: correct each negative's score by log((items - 1) / negatives), so the sample
    /// stands for the whole catalogue in the softmax.
    #[arg(long)]
    pub logq: bool,
    /// Hold this share of the items (0.1 when the flag has no value) out of every training and
    /// validation input and target, as new items launched after training; they stay candidates at
    /// test time, where their users form the cold_item group.
    #[arg(long, num_args = 0..=1, default_missing_value = "0.1")]
    pub cold_items: Option<f64>,
    /// The seed that draws the new items.
    #[arg(long, default_value_t = 0, requires = "cold_items")]
    pub cold_seed: u64,
    /// Hide the progress bar and per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
    /// Continue from OUT/resume.safetensors (written after every epoch) instead of starting over.
    #[arg(long)]
    pub resume: bool,
}

impl TrainArgs {
    /// The flags with the preset's settings in place (clap refuses a preset beside them).
    fn with_preset(mut self) -> Self {
        if let Some(p) = self.preset {
            let s = p.settings();
            self.variant = s.variant;
            self.loss = s.loss;
            self.dropout = s.dropout;
            self.hidden = s.hidden;
            self.cross_residual = s.cross_residual;
            self.distill_weight = s.distill_weight;
            self.teacher = s.teacher;
        }
        self
    }

    /// The model for a semantic table of `input_dim` (ignored by base models).
    fn model_config(&self, input_dim: usize) -> ModelConfig {
        let mut model = ModelConfig::reference(self.backbone, 1);
        model.mode = self.data.mode;
        model.max_len = self.data.max_len;
        model.hidden = self.hidden;
        if let Some(l) = self.layers {
            model.n_layers = l;
        }
        model.n_heads = self.heads;
        model.dropout = self.dropout;
        if self.variant == Variant::Llmesr {
            let mut sem = SemanticConfig::reference(input_dim);
            if let Some(h) = self.adapter_hidden {
                sem.adapter_hidden = h;
            }
            sem.views = self.views;
            sem.cross_attention = !self.no_cross;
            sem.cross_residual = self.cross_residual;
            sem.cross_heads = self.cross_heads;
            model.semantic = Some(sem);
        }
        model
    }

    fn loss_config(&self) -> Result<LossConfig> {
        let d = LossConfig::default();
        if self.negatives.is_some() && !self.loss.samples_negatives() {
            anyhow::bail!(
                "--negatives is used by --loss sampled and gbce, not {}",
                self.loss.label()
            );
        }
        if self.gbce_t.is_some() && self.loss != LossKind::Gbce {
            anyhow::bail!("--gbce-t is used by --loss gbce, not {}", self.loss.label());
        }
        Ok(LossConfig {
            kind: self.loss,
            negatives: self.negatives.unwrap_or(d.negatives),
            gbce_t: self.gbce_t.unwrap_or(d.gbce_t),
            logq: self.logq,
        })
    }

    fn train_config(&self) -> Result<TrainConfig> {
        Ok(TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            patience: self.patience,
            seed: self.data.seed,
            distill_weight: self.distill_weight,
            distill_users: self.distill_users,
            teacher: self.teacher,
            id_init: self.id_init,
            mask_prob: self.mask_prob,
            bucket: self.bucket,
            crop: self.crop,
            loss: self.loss_config()?,
            cold: self.cold_items.map(|share| ColdConfig {
                share,
                seed: self.cold_seed,
            }),
            preset: self.preset,
            ..TrainConfig::default()
        })
    }
}

pub fn run(a: TrainArgs) -> Result<()> {
    let a = a.with_preset();
    // Every setting is checked before the data is read, so a typo costs nothing.
    let cfg = a.train_config()?;
    a.model_config(DEFAULT_TEXT_WIDTH).validate()?;
    cfg.validate()?;
    cfg.check_crop(
        a.backbone,
        a.variant == Variant::Llmesr && cfg.distill_weight > 0.0,
    )?;
    a.data.group_config().validate()?;
    let semantic_set = match (a.variant, &a.semantic) {
        (Variant::Llmesr, None) => {
            anyhow::bail!("--variant llmesr needs --semantic FILE (write one with llmesr embed)")
        }
        (Variant::Llmesr, Some(p)) => Some((p, SemanticSet::load(p)?)),
        (Variant::Base, Some(_)) => {
            anyhow::bail!("--semantic is only used by --variant llmesr")
        }
        (Variant::Base, None) => None,
    };
    let (dataset, groups, cold) = a.data.load_holding_out(cfg.cold)?;
    let mut model = a.model_config(
        semantic_set
            .as_ref()
            .map_or(DEFAULT_TEXT_WIDTH, |(_, s)| s.dim),
    );
    model.n_items = dataset.n_items();
    model.validate()?;
    let semantic: Option<SemanticInputs> = semantic_set
        .as_ref()
        .map(|(_, s)| s.align(&dataset).map(SemanticInputs::from))
        .transpose()?;
    let (net, _, outcome) = train(&TrainInputs {
        data: &dataset,
        groups: &groups,
        model: &model,
        train: &cfg,
        semantic: semantic.as_ref(),
        run_dir: &a.out,
        progress: !a.quiet,
        resume: a.resume,
    })?;
    if let Some(e) = outcome.resumed_after {
        eprintln!("resumed after epoch {e}");
    }
    eprintln!(
        "best epoch {} (valid NDCG@10 full {:.4}); {:.1} s per training epoch",
        outcome.best_epoch, outcome.best_valid_ndcg10, outcome.seconds_per_epoch
    );
    let test = PROTOCOLS
        .into_iter()
        .map(|p| {
            let opts = EvalOptions {
                cold: cold.as_ref(),
                ..EvalOptions::default()
            };
            evaluate_with(
                &net,
                &dataset,
                &groups,
                Stage::Test,
                p,
                a.data.seed,
                256,
                opts,
            )
        })
        .collect::<llm_esr::Result<Vec<_>>>()?;
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
    let title = format!(
        "{} {} ({}) test",
        record.dataset,
        record.title(),
        record.model.mode.label()
    );
    a.data.publish(&record.labels(), &test, &title)
}
