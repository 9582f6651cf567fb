//! `llmesr workload`: the benchmark's seeded sessions — fixed lengths cut from test users'
//! histories (their newest items) — as JSON for the benchmark page and criterion.

use crate::args::default_dataset;
use anyhow::Result;
use clap::Args;
use llm_esr::data::split::eval_case;
use llm_esr::data::Stage;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::PathBuf;

#[derive(Args)]
pub struct WorkloadArgs {
    /// Dataset folder (read with the default filter, as `train` reads it).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "1,10,50,200")]
    pub lengths: Vec<usize>,
    /// Sessions per length (fewer where too few users have that many items).
    #[arg(long, default_value_t = 32)]
    pub per_length: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: WorkloadArgs) -> Result<()> {
    let dataset = default_dataset(&a.data)?;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(a.seed);
    let mut sessions = serde_json::Map::new();
    for &len in &a.lengths {
        if len == 0 {
            anyhow::bail!("session lengths must be at least 1");
        }
        let mut inputs: Vec<&[u32]> = dataset
            .sequences
            .iter()
            .map(|s| eval_case(s, Stage::Test).0)
            .filter(|s| s.len() >= len)
            .collect();
        if inputs.is_empty() {
            anyhow::bail!("no test user of {} has {len} items", dataset.name);
        }
        inputs.shuffle(&mut rng);
        let chosen: Vec<&[u32]> = inputs
            .into_iter()
            .take(a.per_length)
            .map(|s| &s[s.len() - len..])
            .collect();
        sessions.insert(len.to_string(), serde_json::to_value(chosen)?);
    }
    let json = serde_json::json!({
        "dataset": dataset.name,
        "items": dataset.n_items(),
        "seed": a.seed,
        "sessions": sessions,
    });
    llm_esr::fsio::write_atomic(&a.out, serde_json::to_string(&json)?.as_bytes())?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
