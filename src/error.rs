//! The library's error type: one enum, grouped by where the problem comes from.

/// Everything that can go wrong in the library. Messages name the file, line, value or tensor at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file line that cannot be parsed.
    #[error("{path}:{line}: {msg}")]
    Parse {
        path: String,
        line: usize,
        msg: String,
    },
    /// A file that cannot be read or written.
    /// The message already carries the OS error, so it is not chained again as a source.
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    /// A dataset that is unusable as a whole (empty after filtering, missing files, …).
    #[error("dataset: {0}")]
    Dataset(String),
    /// A configuration value outside its valid range, or settings that do not fit together.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file the project writes (semantic set, embedding cache, resume file, checkpoint, `.npy`
    /// import, report) that is damaged, of another kind, or inconsistent with itself.
    #[error("{path}: {msg}")]
    Format { path: String, msg: String },
    /// Training that cannot go on: divergence, or weights that do not fit the model being trained.
    #[error("training: {0}")]
    Training(String),
    /// A bundle that is corrupt, truncated, of another version or inconsistent with itself.
    #[error("bundle: {0}")]
    Bundle(String),
    /// A session or request that cannot be answered (unknown item id, empty session, k = 0, …).
    #[error("request: {0}")]
    Request(String),
    /// A text-embedding model or tokenizer that cannot be loaded or run.
    #[error("text model: {0}")]
    TextModel(String),
    /// A tensor operation that failed inside candle.
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn format(path: impl AsRef<std::path::Path>, msg: impl std::fmt::Display) -> Self {
        Error::Format {
            path: path.as_ref().display().to_string(),
            msg: msg.to_string(),
        }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            err: source,
        }
    }
}

/// Shorthand for results carrying [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
