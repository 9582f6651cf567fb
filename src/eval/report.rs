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
    /// LLM-ESR settings that differ from the method (`no-sd`, `no-cross`, …), `+`-joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ablation: Option<String>,
    /// Storage type of the bundle's item tables (`f32`, `f16`, `q8`, `q4`) for rows measured on an
    /// exported bundle; absent for rows measured on the trained model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant: Option<String>,
    /// Size of that bundle in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_bytes: Option<u64>,
    pub mode: String,
    /// The training loss (`ce`, `sampled`, `gbce`); absent for the reference's BCE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
    /// Evaluated with only the newest `session_len` items of each history as input; absent for
    /// the whole history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_len: Option<usize>,
    /// `best-base` or `best-llm` on the rows of the configurations chosen (on validation) as the
    /// strongest base and the shipped LLM-enhanced model of their dataset and backbone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// The share of items held out of training as new items, and the seed that drew them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_share: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_seed: Option<u64>,
    pub protocol: String,
    pub seed: u64,
    pub group: String,
    pub metric: String,
    pub value: f64,
    pub users: usize,
}

/// Labels shared by every row of one run.
#[derive(Debug, Clone, Default)]
pub struct RunLabels {
    pub dataset: String,
    pub backbone: String,
    pub variant: String,
    pub ablation: Option<String>,
    pub quant: Option<String>,
    pub bundle_bytes: Option<u64>,
    pub mode: String,
    /// `None` for BCE.
    pub loss: Option<String>,
    pub session_len: Option<usize>,
    pub preset: Option<String>,
    pub cold_share: Option<f64>,
    pub cold_seed: Option<u64>,
    pub seed: u64,
}

pub fn rows(labels: &RunLabels, report: &EvalReport) -> Vec<QualityRow> {
    let mut out = Vec::new();
    for g in report.group_names() {
        let acc = report.group(g);
        // An empty group has no metric (its means are NaN, which JSON cannot hold): no rows.
        if acc.users == 0 {
            continue;
        }
        for (metric, value) in acc.means() {
            out.push(QualityRow {
                dataset: labels.dataset.clone(),
                backbone: labels.backbone.clone(),
                variant: labels.variant.clone(),
                ablation: labels.ablation.clone(),
                quant: labels.quant.clone(),
                bundle_bytes: labels.bundle_bytes,
                mode: labels.mode.clone(),
                loss: labels.loss.clone(),
                session_len: labels.session_len,
                preset: labels.preset.clone(),
                cold_share: labels.cold_share,
                cold_seed: labels.cold_seed,
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
    for g in report.group_names() {
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
    let json = serde_json::to_vec_pretty(&all).map_err(|e| crate::Error::format(path, e))?;
    crate::fsio::write_atomic(path, &json)
}

/// Markdown tables of Hit@10 / NDCG@10 per group, one table per (dataset, protocol), one line per
/// (backbone, variant, mode); several seeds become `mean ± std (n)`.
pub fn markdown(rows: &[QualityRow]) -> String {
    use std::collections::BTreeMap;
    type Key = (String, String, String, String); // backbone, variant, mode, group·metric
                                                 // Short-session and cold-item evaluations are tables of their own.
    let mut tables: BTreeMap<(String, String, String), BTreeMap<Key, Vec<f64>>> = BTreeMap::new();
    for r in rows {
        let setting = format!(
            "{}{}",
            r.session_len
                .map(|k| format!(", newest {k:>3} items as input"))
                .unwrap_or_default(),
            r.cold_share
                .map(|c| format!(
                    ", {:.0}% of items new (cold seed {})",
                    c * 100.0,
                    r.cold_seed.unwrap_or(0)
                ))
                .unwrap_or_default()
        );
        tables
            .entry((r.dataset.clone(), r.protocol.clone(), setting))
            .or_default()
            .entry((
                r.backbone.clone(),
                // Ablations and bundle storage types are cells of their own, never averaged in.
                format!(
                    "{}{}{}{}{}",
                    r.variant,
                    r.preset
                        .as_ref()
                        .map(|p| format!(" [{p}]"))
                        .unwrap_or_default(),
                    r.loss
                        .as_ref()
                        .map(|l| format!(" · {l}"))
                        .unwrap_or_default(),
                    r.ablation
                        .as_ref()
                        .map(|a| format!(" ({a})"))
                        .unwrap_or_default(),
                    r.quant
                        .as_ref()
                        .map(|q| format!(" [{q} bundle]"))
                        .unwrap_or_default()
                ),
                r.mode.clone(),
                format!("{}·{}", r.group, r.metric),
            ))
            .or_default()
            .push(r.value);
    }
    let cell = |v: Option<&Vec<f64>>| match v {
        None => "–".to_string(),
        Some(v) if v.len() == 1 => format!("{:.4}", v[0]),
        Some(v) => {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            format!("{mean:.4} ± {sd:.4} ({})", v.len())
        }
    };
    let mut out = String::new();
    for ((dataset, protocol, setting), cells) in &tables {
        out += &format!("\n**{dataset}, protocol {protocol}{setting}** (Hit@10 / NDCG@10)\n\n");
        out += "| model | variant | mode |";
        for g in GROUPS {
            out += &format!(" {g} H@10 | {g} N@10 |");
        }
        out += "\n|---|---|---|";
        out += &"---|---|".repeat(GROUPS.len());
        out.push('\n');
        let mut models: Vec<(String, String, String)> = cells
            .keys()
            .map(|k| (k.0.clone(), k.1.clone(), k.2.clone()))
            .collect();
        models.dedup();
        for (b, v, m) in models {
            out += &format!("| {b} | {v} | {m} |");
            for g in GROUPS {
                for metric in ["hit@10", "ndcg@10"] {
                    let key = (b.clone(), v.clone(), m.clone(), format!("{g}·{metric}"));
                    out += &format!(" {} |", cell(cells.get(&key)));
                }
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Accum;

    #[test]
    fn empty_groups_give_no_rows_and_rows_round_trip_through_json() {
        let mut groups: std::collections::BTreeMap<String, Accum> = GROUPS
            .iter()
            .map(|g| (g.to_string(), Accum::default()))
            .collect();
        for g in ["overall", "tail_item", "tail_user"] {
            groups.get_mut(g).unwrap().add(3);
        }
        let report = EvalReport {
            protocol: "full".into(),
            groups,
        };
        let labels = RunLabels {
            dataset: "d".into(),
            backbone: "sasrec".into(),
            variant: "base".into(),
            ablation: None,
            quant: None,
            bundle_bytes: None,
            mode: "corrected".into(),
            seed: 1,
            ..RunLabels::default()
        };
        let r = rows(&labels, &report);
        assert_eq!(r.len(), 3 * 7);
        let json = serde_json::to_string(&r).unwrap();
        let back: Vec<QualityRow> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert!(markdown(&r).contains("| sasrec | base | corrected |"));
    }
}
