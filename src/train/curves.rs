//! How far a run has got — from `run.json` once it has finished, from its resume file while it is
//! still training — and the validation curves of several runs side by side, so runs of a long
//! queue can be compared at equal epochs before any of them ends.

use super::checkpoint::{read_resume_state, RESUME_FILE};
use super::run::{EpochLog, RunRecord, RUN_FILE};
use crate::{Error, Result};
use std::fmt::Write;
use std::path::Path;

/// One run's epochs so far.
#[derive(Debug, Clone)]
pub struct Progress {
    pub name: String,
    pub epochs: Vec<EpochLog>,
    pub best_epoch: usize,
    pub best_valid_ndcg10: f64,
    /// `true` once `run.json` exists (the run stopped early or hit its epoch cap).
    pub finished: bool,
}

impl Progress {
    /// Reads `dir/run.json`, or `dir/resume.safetensors` for a run still in progress.
    pub fn load(dir: &Path) -> Result<Self> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        if dir.join(RUN_FILE).exists() {
            let r = RunRecord::load(dir)?;
            return Ok(Progress {
                name,
                epochs: r.outcome.epochs,
                best_epoch: r.outcome.best_epoch,
                best_valid_ndcg10: r.outcome.best_valid_ndcg10,
                finished: true,
            });
        }
        let resume = dir.join(RESUME_FILE);
        if !resume.exists() {
            return Err(Error::format(
                dir,
                format!("holds neither {RUN_FILE} nor {RESUME_FILE}: not a run folder, or a run that has not finished its first epoch"),
            ));
        }
        let (epochs, best_epoch, best_valid_ndcg10) = read_resume_state(&resume)?;
        Ok(Progress {
            name,
            epochs,
            best_epoch,
            best_valid_ndcg10,
            finished: false,
        })
    }

    fn valid_at(&self, epoch: usize) -> Option<f64> {
        self.epochs
            .iter()
            .find(|l| l.epoch == epoch)
            .map(|l| l.valid_ndcg10)
    }

    /// Mean training seconds per epoch (evaluation excluded).
    pub fn seconds_per_epoch(&self) -> f64 {
        let n = self.epochs.len().max(1) as f64;
        self.epochs.iter().map(|l| l.train_seconds).sum::<f64>() / n
    }
}

/// The epochs a comparison shows by default: 1, 5, 10, then every 10th up to the longest run.
pub fn default_epochs(runs: &[Progress]) -> Vec<usize> {
    let last = runs
        .iter()
        .filter_map(|r| r.epochs.last().map(|l| l.epoch))
        .max()
        .unwrap_or(0);
    [1, 5]
        .into_iter()
        .chain((10..).step_by(10))
        .take_while(|&e| e <= last)
        .collect()
}

/// A table's header and separator lines: `run`, one column per label, then the trailing columns.
fn head(labels: impl IntoIterator<Item = String>, trailing: &[&str]) -> String {
    let mut s = String::from("| run |");
    let mut columns = 0;
    for label in labels
        .into_iter()
        .chain(trailing.iter().map(|t| t.to_string()))
    {
        let _ = write!(s, " {label} |");
        columns += 1;
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(columns));
    s.push('\n');
    s
}

/// One cell: the value, or "–" where the run has none.
fn cell(s: &mut String, value: Option<String>) {
    let _ = write!(s, " {} |", value.as_deref().unwrap_or("–"));
}

/// A Markdown table: one row per run, validation NDCG@10 at each of `epochs` ("–" where a run has
/// not got that far), then the run's best so far and its state.
pub fn markdown(runs: &[Progress], epochs: &[usize]) -> String {
    let mut s = head(
        epochs.iter().map(|e| e.to_string()),
        &["best (epoch)", "epochs run", "s/epoch"],
    );
    for r in runs {
        let _ = write!(s, "| {} |", r.name);
        for &e in epochs {
            cell(&mut s, r.valid_at(e).map(|v| format!("{v:.4}")));
        }
        let done = r.epochs.last().map_or(0, |l| l.epoch);
        let _ = writeln!(
            s,
            " {:.4} ({}) | {done}{} | {:.0} |",
            r.best_valid_ndcg10,
            r.best_epoch,
            if r.finished { "" } else { ", running" },
            r.seconds_per_epoch()
        );
    }
    s
}

/// A Markdown table: one row per run, and for each of `losses` (descending) the validation NDCG@10
/// at the first epoch whose mean training loss fell to that level, with the epoch ("–" where the
/// run has not got that low). Two models that fit the training data equally well, compared on how
/// well they generalise: the question equal epochs cannot answer when one model fits faster. The
/// loss is the whole objective, so with self-distillation on it carries α·MSE as well.
pub fn markdown_at_loss(runs: &[Progress], losses: &[f64]) -> String {
    let mut s = head(
        losses.iter().map(|l| format!("loss ≤ {l}")),
        &["lowest loss (epoch)"],
    );
    for r in runs {
        let _ = write!(s, "| {} |", r.name);
        for &l in losses {
            let reached = r.epochs.iter().find(|e| e.loss <= l);
            cell(
                &mut s,
                reached.map(|e| format!("{:.4} ({})", e.valid_ndcg10, e.epoch)),
            );
        }
        let lowest = r.epochs.iter().min_by(|a, b| a.loss.total_cmp(&b.loss));
        cell(
            &mut s,
            lowest.map(|e| format!("{:.4} ({})", e.loss, e.epoch)),
        );
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, valid: &[f64]) -> Progress {
        with_losses(name, valid, &vec![0.5; valid.len()])
    }

    fn with_losses(name: &str, valid: &[f64], losses: &[f64]) -> Progress {
        Progress {
            name: name.into(),
            epochs: valid
                .iter()
                .zip(losses)
                .enumerate()
                .map(|(i, (&v, &loss))| EpochLog {
                    epoch: i + 1,
                    loss,
                    train_seconds: 10.0,
                    teacher_seconds: 0.0,
                    valid_ndcg10: v,
                })
                .collect(),
            best_epoch: 1,
            best_valid_ndcg10: valid[0],
            finished: false,
        }
    }

    #[test]
    fn curves_line_up_by_epoch_and_mark_missing_ones() {
        let a = run("a", &[0.1; 12]);
        let b = run("b", &[0.2, 0.3, 0.4, 0.5, 0.6]);
        let runs = [a, b];
        assert_eq!(default_epochs(&runs), vec![1, 5, 10]);
        let md = markdown(&runs, &[1, 5, 10]);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| run | 1 | 5 | 10 | best (epoch) | epochs run | s/epoch |"
        );
        assert_eq!(
            lines[2],
            "| a | 0.1000 | 0.1000 | 0.1000 | 0.1000 (1) | 12, running | 10 |"
        );
        assert_eq!(
            lines[3],
            "| b | 0.2000 | 0.6000 | – | 0.2000 (1) | 5, running | 10 |"
        );
    }

    #[test]
    fn runs_line_up_at_the_first_epoch_that_reaches_each_loss() {
        // b fits faster than a: at equal epochs it leads, at equal loss it trails.
        let a = with_losses("a", &[0.1, 0.2, 0.3, 0.4], &[0.9, 0.7, 0.6, 0.5]);
        let b = with_losses("b", &[0.15, 0.25, 0.28], &[0.7, 0.55, 0.58]);
        let md = markdown_at_loss(&[a, b], &[0.7, 0.6, 0.5]);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| run | loss ≤ 0.7 | loss ≤ 0.6 | loss ≤ 0.5 | lowest loss (epoch) |"
        );
        assert_eq!(lines[1], "|---|---|---|---|---|");
        assert_eq!(
            lines[2],
            "| a | 0.2000 (2) | 0.3000 (3) | 0.4000 (4) | 0.5000 (4) |"
        );
        assert_eq!(lines[3], "| b | 0.1500 (1) | 0.2500 (2) | – | 0.5500 (2) |");
    }

    #[test]
    fn a_folder_without_a_run_is_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("llmesr-progress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = Progress::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("neither run.json nor resume.safetensors"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
