//! Result rows for `reports/quality.json` and the plain-text table printed by the CLI.

use super::evaluate::{EvalReport, GROUPS};
use serde::{Deserialize, Serialize};

/// One number: `{dataset, backbone, variant, mode, protocol, seed, group, metric, value}` plus the
/// group's size, so later runs can append rows without rewriting earlier ones.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QualityRow {
    pub dataset: String,
    pub backbone: String,
    pub variant: String,
    pub mode: String,
    pub protocol: String,
    pub seed: u64,
    pub group: String,
    pub metric: String,
    pub value: f64,
    pub users: usize,
}

/// Labels shared by every row of one run.
#[derive(Debug, Clone)]
pub struct RunLabels {
    pub dataset: String,
    pub backbone: String,
    pub variant: String,
    pub mode: String,
    pub seed: u64,
}

pub fn rows(labels: &RunLabels, report: &EvalReport) -> Vec<QualityRow> {
    let mut out = Vec::new();
    for g in GROUPS {
        let acc = report.group(g);
        for (metric, value) in acc.means() {
            out.push(QualityRow {
                dataset: labels.dataset.clone(),
                backbone: labels.backbone.clone(),
                variant: labels.variant.clone(),
                mode: labels.mode.clone(),
                protocol: report.protocol.clone(),
                seed: labels.seed,
                group: g.to_string(),
                metric,
                value,
                users: acc.users,
            });
        }
    }
    out
}

/// A fixed-width table: one row per group, one column per metric, the protocol in the title.
pub fn table(title: &str, report: &EvalReport) -> String {
    let metrics: Vec<String> = report
        .group("overall")
        .means()
        .into_iter()
        .map(|m| m.0)
        .collect();
    let mut s = format!("{title} — protocol: {}\n", report.protocol);
    s += &format!("{:<10} {:>6}", "group", "users");
    for m in &metrics {
        s += &format!(" {m:>8}");
    }
    s.push('\n');
    for g in GROUPS {
        let acc = report.group(g);
        s += &format!("{g:<10} {:>6}", acc.users);
        for (_, v) in acc.means() {
            s += &format!(" {v:>8.4}");
        }
        s.push('\n');
    }
    s
}

/// Appends rows to a JSON array file (created when missing), atomically.
#[cfg(not(target_arch = "wasm32"))]
pub fn append(path: &std::path::Path, new_rows: &[QualityRow]) -> crate::Result<()> {
    let mut all: Vec<QualityRow> = if path.exists() {
        let bytes = crate::fsio::read(path)?;
        serde_json::from_slice(&bytes).map_err(|e| crate::Error::Parse {
            path: path.display().to_string(),
            line: e.line(),
            msg: format!("not a quality report: {e}"),
        })?
    } else {
        Vec::new()
    };
    all.extend_from_slice(new_rows);
    let json = serde_json::to_vec_pretty(&all).map_err(|e| crate::Error::Config(e.to_string()))?;
    crate::fsio::write_atomic(path, &json)
}
