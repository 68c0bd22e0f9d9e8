//! Typed errors of the library. The binary turns them into messages and exit codes.

use std::path::PathBuf;

/// A problem with a file the user gave us: where it is and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// Dotted key path, for example `sessions.length.mean` (empty for the whole file).
    pub key: String,
    /// What was wrong or expected.
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for InputError {}

/// Everything the library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario, usage or other input file is wrong.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A file could not be read or written.
    #[error("{path}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A command-line value is wrong (bad strategy, threshold, duration ...).
    #[error("{0}")]
    Usage(String),
    /// Pricing failed (for example an unknown price table).
    #[error(transparent)]
    Pricing(#[from] crate::pricing::PricingError),
}

impl Error {
    /// True when the error is the user's input (exit code 2), false for environment failures.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Error::Input(_) | Error::Usage(_) | Error::Pricing(_))
    }
}

/// Short for `Result<T, dosim::Error>`.
pub type Result<T> = std::result::Result<T, Error>;
