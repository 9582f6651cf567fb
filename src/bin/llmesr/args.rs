//! What several commands share: the dataset flags (reading, filtering, long-tail groups, mode,
//! reports) converted once into the library's options, and printing or recording results.

use anyhow::Result;
use clap::Args;
use llm_esr::data::{
    self, ColdConfig, ColdItems, Dataset, FilterKind, FilterOptions, GroupConfig, Groups, Threshold,
};
use llm_esr::eval::report::{self, RunLabels};
use llm_esr::eval::EvalReport;
use llm_esr::model::{Mode, ModelConfig};
use std::path::PathBuf;

fn default_filter() -> FilterOptions {
    FilterOptions::default()
}

fn default_share() -> f64 {
    match GroupConfig::default().item {
        Threshold::TailShare(s) => s,
        Threshold::Absolute(_) => unreachable!("the default groups are shares"),
    }
}

#[derive(Args, Clone)]
pub struct DataArgs {
    /// Dataset folder: RecBole atomic files (<name>.inter, <name>.item) or inter.txt (+ item_text.tsv).
    #[arg(long)]
    pub data: PathBuf,
    /// single = one pass over raw counts (reference); kcore = repeat until stable.
    #[arg(long, value_enum, default_value_t = default_filter().kind)]
    pub filter: FilterKind,
    #[arg(long, default_value_t = default_filter().min_user)]
    pub min_user: usize,
    #[arg(long, default_value_t = default_filter().min_item)]
    pub min_item: usize,
    /// Share of users (shortest histories) that are tail users.
    #[arg(long, allow_negative_numbers = true, default_value_t = default_share())]
    pub tail_user_share: f64,
    /// Share of items (least popular) that are tail items.
    #[arg(long, allow_negative_numbers = true, default_value_t = default_share())]
    pub tail_item_share: f64,
    /// Absolute tail-user threshold (the paper's ts_user); overrides the share.
    #[arg(long)]
    pub ts_user: Option<usize>,
    /// Absolute tail-item threshold (the paper's ts_item); overrides the share.
    #[arg(long)]
    pub ts_item: Option<usize>,
    /// corrected: causal + padding masks, popularity from training data. faithful: as the reference code.
    #[arg(long, value_enum, default_value_t = Mode::default())]
    pub mode: Mode,
    /// Longest history fed to the model (the newest items are kept).
    #[arg(long, default_value_t = ModelConfig::sasrec(0).max_len)]
    pub max_len: usize,
    /// Append every metric as a row to this JSON report (e.g. reports/quality.json).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Print the final metrics as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = llm_esr::train::TrainConfig::default().seed)]
    pub seed: u64,
}

impl DataArgs {
    pub fn group_config(&self) -> GroupConfig {
        GroupConfig {
            user: self.ts_user.map_or(
                Threshold::TailShare(self.tail_user_share),
                Threshold::Absolute,
            ),
            item: self.ts_item.map_or(
                Threshold::TailShare(self.tail_item_share),
                Threshold::Absolute,
            ),
            ..GroupConfig::for_mode(self.mode)
        }
    }

    pub fn filter(&self) -> FilterOptions {
        FilterOptions {
            kind: self.filter,
            min_user: self.min_user,
            min_item: self.min_item,
        }
    }

    /// The dataset and its groups, with a one-line summary on stderr.
    pub fn load(&self) -> Result<(Dataset, Groups)> {
        let (d, g, _) = self.load_holding_out(None)?;
        Ok((d, g))
    }

    /// [`Self::load`] with the new items of `cold` held out of it (groups on what remains).
    pub fn load_holding_out(
        &self,
        cold: Option<ColdConfig>,
    ) -> Result<(Dataset, Groups, Option<ColdItems>)> {
        let raw = data::load_dir(&self.data)?;
        let mut dataset = Dataset::from_raw(&raw, &self.filter())?;
        let cold = cold
            .map(|c| ColdItems::draw(dataset.n_items(), c))
            .transpose()?;
        if let Some(c) = &cold {
            dataset = c.hold_out(&dataset)?;
            eprintln!(
                "{} of {} items held out as new items",
                c.ids().len(),
                dataset.n_items()
            );
        }
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
        Ok((dataset, groups, cold))
    }

    /// Prints the reports as tables, appends their rows to `--report` and prints them as JSON with
    /// `--json`.
    pub fn publish(&self, labels: &RunLabels, reports: &[EvalReport], title: &str) -> Result<()> {
        for r in reports {
            eprintln!("{}", report::table(title, r));
        }
        if let Some(path) = &self.report {
            let rows: Vec<_> = reports
                .iter()
                .flat_map(|r| report::rows(labels, r))
                .collect();
            report::append(path, &rows)?;
            eprintln!("appended {} rows to {}", rows.len(), path.display());
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(reports)?);
        }
        Ok(())
    }
}

/// The text model and its embedding cache, for the commands that embed texts.
#[derive(Args, Clone)]
pub struct TextModelArgs {
    /// BERT-family model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long, default_value = "models/all-minilm-l6-v2")]
    pub model: PathBuf,
    /// Embedding cache folder (one file per model, keyed by text).
    #[arg(long, default_value = "cache/embeddings")]
    pub cache: PathBuf,
}

/// A dataset folder read with the default filter, as the commands that take a bundle read it.
pub fn default_dataset(dir: &std::path::Path) -> Result<Dataset> {
    let raw = data::load_dir(dir)?;
    Ok(Dataset::from_raw(&raw, &FilterOptions::default())?)
}
