//! `llmesr eval`: a saved model — a run's checkpoint or a bundle — on a dataset: every group, one
//! or both protocols, the validation or the test split, short sessions, and for bundles a grid of
//! serving-time text-term settings.

use anyhow::Result;
use clap::Args;
use llm_esr::bundle::TextBoost;
use llm_esr::data::{
    self, ColdConfig, ColdItems, Dataset, FilterOptions, GroupConfig, Groups, Stage,
};
use llm_esr::eval::report::{self, RunLabels};
use llm_esr::eval::{evaluate_with, EvalOptions, Protocol, Scorer, PROTOCOLS};
use llm_esr::recommend::Recommender;
use llm_esr::train::checkpoint::load_model;
use llm_esr::train::{Preset, RunRecord, TrainConfig};
use std::path::PathBuf;

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
    /// With a bundle that has a text space: serve with these text-term weights instead of the
    /// bundle's (comma-separated: every combination with the two flags below is evaluated).
    #[arg(
        long,
        value_delimiter = ',',
        allow_negative_numbers = true,
        requires = "bundle"
    )]
    pub text_weight: Vec<f32>,
    /// … with the term on candidates below these popularities (0: every candidate).
    #[arg(long, value_delimiter = ',', requires = "bundle")]
    pub text_below: Vec<u32>,
    /// … comparing each candidate with this many of the session's newest items.
    #[arg(long, value_delimiter = ',', requires = "bundle")]
    pub text_recent: Vec<usize>,
    /// Label the rows as a named configuration (default: the one the run was trained as, if any).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Append every metric as a row to this JSON report (test split only).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Print the reports as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// For a model trained without a hold-out: report the cold_item/warm_item groups of this
    /// hold-out (share of items, with --cold-seed) without holding anything out, so its warm-item
    /// quality can be set beside a cold-start run's on the same users.
    #[arg(long)]
    pub cold_groups: Option<f64>,
    /// The seed of --cold-groups' draw (a cold-start run's --cold-seed).
    #[arg(long, default_value_t = 0, requires = "cold_groups")]
    pub cold_seed: u64,
}

/// The model being evaluated: a run's candle model or a bundle's engine (whose text term can be
/// set per evaluation).
enum Evaluated {
    Run(Box<llm_esr::model::SeqRec>),
    Bundle(Box<Recommender>),
}

impl Evaluated {
    fn scorer(&self) -> &dyn Scorer {
        match self {
            Evaluated::Run(m) => m.as_ref(),
            Evaluated::Bundle(r) => r.as_ref(),
        }
    }
}

/// The text-term settings to evaluate: every combination of the given values, each list
/// defaulting to the bundle's own setting. Without a text flag: the bundle's own term where it
/// serves with one (so its rows say so), else `None` alone.
fn text_grid(a: &EvalArgs, rec: Option<&Recommender>) -> Result<Vec<Option<TextBoost>>> {
    let own = rec
        .and_then(|r| r.manifest().text.as_ref())
        .map(|t| t.boost);
    if a.text_weight.is_empty() && a.text_below.is_empty() && a.text_recent.is_empty() {
        return Ok(vec![own.filter(|b| b.is_on())]);
    }
    let Some(own) = own else {
        anyhow::bail!(
            "--text-weight/--text-below/--text-recent need a bundle exported with --text-width"
        );
    };
    let or = |v: &[f32], d: f32| if v.is_empty() { vec![d] } else { v.to_vec() };
    let mut grid = Vec::new();
    for weight in or(&a.text_weight, own.weight) {
        for &below in if a.text_below.is_empty() {
            std::slice::from_ref(&own.below_popularity)
        } else {
            &a.text_below
        } {
            for &recent in if a.text_recent.is_empty() {
                std::slice::from_ref(&own.recent)
            } else {
                &a.text_recent
            } {
                grid.push(Some(TextBoost {
                    weight,
                    below_popularity: below,
                    recent,
                }));
            }
        }
    }
    Ok(grid)
}

/// The dataset as a cold-start run saw it: its new items held out (none for other runs).
fn holding_out(dataset: Dataset, cold: Option<ColdConfig>) -> Result<(Dataset, Option<ColdItems>)> {
    let Some(c) = cold else {
        return Ok((dataset, None));
    };
    let items = ColdItems::draw(dataset.n_items(), c)?;
    Ok((items.hold_out(&dataset)?, Some(items)))
}

pub fn eval(a: EvalArgs) -> Result<()> {
    if a.report.is_some() && a.split != Stage::Test {
        anyhow::bail!("--report takes test-split rows only: validation is for choosing settings");
    }
    if a.session_len.contains(&0) {
        anyhow::bail!("--session-len must be at least 1");
    }
    let raw = data::load_dir(&a.data)?;
    let (mut model, dataset, groups, mut labels, title, mut cold) = match (&a.run, &a.bundle) {
        (Some(run), _) => {
            let record = RunRecord::load(run)?;
            let (dataset, cold) =
                holding_out(record.dataset_from(&raw, run, &a.data)?, record.train.cold)?;
            let model = load_model(run, &record)?;
            let title = format!("{} {}", record.dataset, record.title());
            (
                Evaluated::Run(Box::new(model)),
                dataset,
                record.groups.clone(),
                record.labels(),
                title,
                cold,
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
            let m = rec.manifest();
            let run = m.run.clone();
            let cold_cfg = run.as_ref().and_then(|r| r.cold);
            let (dataset, cold) = holding_out(dataset, cold_cfg)?;
            let cfg = &m.model;
            let groups = Groups::compute(&dataset, GroupConfig::for_mode(cfg.mode), cfg.max_len)?;
            let labels = RunLabels {
                dataset: dataset.name.clone(),
                backbone: cfg.backbone.label().into(),
                variant: cfg.variant().into(),
                ablation: run.as_ref().and_then(|r| r.ablation.clone()),
                loss: run.as_ref().and_then(|r| r.loss.clone()),
                quant: Some(rec.precision().label()),
                bundle_bytes: Some(rec.bundle_bytes() as u64),
                mode: cfg.mode.label().into(),
                cold_share: cold_cfg.map(|c| c.share),
                cold_seed: cold_cfg.map(|c| c.seed),
                preset: run.as_ref().and_then(|r| r.preset.clone()),
                seed: run.map_or(TrainConfig::default().seed, |r| r.seed),
                ..RunLabels::default()
            };
            let title = m.name.clone();
            (
                Evaluated::Bundle(Box::new(rec)),
                dataset,
                groups,
                labels,
                title,
                cold,
            )
        }
        (None, None) => unreachable!("clap requires --run or --bundle"),
    };
    if let Some(p) = a.preset {
        labels.preset = Some(p.label().into());
    }
    if let Some(share) = a.cold_groups {
        if cold.is_some() {
            anyhow::bail!(
                "--cold-groups is for a model trained without a hold-out; this one has its own"
            );
        }
        let cfg = ColdConfig {
            share,
            seed: a.cold_seed,
        };
        cold = Some(ColdItems::draw(dataset.n_items(), cfg)?);
        labels.cold_share = Some(share);
        labels.cold_seed = Some(a.cold_seed);
        labels.ablation = Some(
            labels
                .ablation
                .iter()
                .cloned()
                .chain(["no-hold-out".to_string()])
                .collect::<Vec<_>>()
                .join("+"),
        );
    }
    let protocols: Vec<Protocol> = a.protocol.map_or(PROTOCOLS.to_vec(), |p| vec![p]);
    let cuts: Vec<Option<usize>> = if a.session_len.is_empty() {
        vec![None]
    } else {
        a.session_len.iter().map(|&k| Some(k)).collect()
    };
    let grid = text_grid(
        &a,
        match &model {
            Evaluated::Bundle(r) => Some(r.as_ref()),
            Evaluated::Run(_) => None,
        },
    )?;
    let base_ablation = labels.ablation.clone();
    let mut all = Vec::new();
    let mut rows = Vec::new();
    let mut summary = Vec::new();
    for boost in grid {
        if let (Some(b), Evaluated::Bundle(rec)) = (boost, &mut model) {
            rec.set_text_boost(b)?;
            let text = format!("text-w{}-b{}-r{}", b.weight, b.below_popularity, b.recent);
            let parts: Vec<String> = base_ablation
                .iter()
                .cloned()
                .chain(b.is_on().then_some(text))
                .collect();
            labels.ablation = (!parts.is_empty()).then(|| parts.join("+"));
        }
        for &session_len in &cuts {
            // Before their launch (validation) new items are no candidates; at test they are.
            let opts = EvalOptions {
                session_len,
                excluded: cold.as_ref().filter(|_| a.split == Stage::Valid),
                cold: cold.as_ref(),
            };
            labels.session_len = session_len;
            for &p in &protocols {
                let r = evaluate_with(
                    model.scorer(),
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
                let setting = boost
                    .map(|b| {
                        format!(
                            ", text term {} below {} over {}",
                            b.weight, b.below_popularity, b.recent
                        )
                    })
                    .unwrap_or_default();
                eprintln!(
                    "{}",
                    report::table(&format!("{title} {}{what}{setting}", a.split.label()), &r)
                );
                summary.push((
                    setting,
                    what,
                    r.protocol.clone(),
                    r.group("overall").mean("ndcg@10"),
                    r.group("tail_item").mean("ndcg@10"),
                    r.group("head_item").mean("ndcg@10"),
                ));
                rows.extend(report::rows(&labels, &r));
                all.push(r);
            }
        }
    }
    if summary.len() > 1 {
        println!("setting | session | protocol | NDCG@10 | tail items | head items");
        for (setting, what, p, o, t, h) in &summary {
            println!(
                "{} | {} | {p} | {o:.4} | {t:.4} | {h:.4}",
                setting.trim_start_matches(", "),
                what.trim_start_matches(", ")
            );
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
