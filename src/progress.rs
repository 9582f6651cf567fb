//! The terminal progress bar of training epochs and text embedding: one style, hidden when the
//! caller asked for quiet output or there is nothing to do.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` steps; `unit` names them after the counts ("batches", "texts") and `extra`
/// is placed before the elapsed time (e.g. `{msg}` for a running loss).
pub fn bar(show: bool, len: u64, prefix: &str, unit: &str, extra: &str) -> ProgressBar {
    let bar = if show && len > 0 {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix}} {{bar:30}} {{pos}}/{{len}} {unit} {extra}[{{elapsed}}<{{eta}}]"
        ))
        .expect("the template's fields are indicatif's"),
    );
    bar.set_prefix(prefix.to_string());
    bar
}
