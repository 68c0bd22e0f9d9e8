//! Typed errors of the library. The binary turns them into messages and exit codes.

use std::path::{Path, PathBuf};

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
    #[error("{path}: {cause}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also a `source()`: a chain printer such as
        /// anyhow's `{:#}` would print it twice).
        cause: std::io::Error,
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

/// A number as a message shows it: as written for ordinary magnitudes, in exponent form past
/// 10^15 or below 10^-4 (`1e308`, not its 309 digits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shown(pub f64);

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = self.0.abs();
        if a.is_finite() && (a >= 1e15 || (a > 0.0 && a < 1e-4)) {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Short for `Result<T, dosim::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Read a text file the user gave us: an unreadable file is [`Error::Io`]; a file that is not
/// UTF-8 is bad input ([`Error::Input`]) naming the file, the line and column of the first
/// bad byte and its offset.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|cause| Error::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let good = &e.as_bytes()[..offset];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        // Columns count bytes, as in every other position dosim reports.
        let column = offset - line_start + 1;
        Error::Input(InputError {
            file: path.to_path_buf(),
            line,
            column,
            key: String::new(),
            message: format!(
                "not valid UTF-8 (first bad byte 0x{:02x} at byte offset {offset}); save the file as UTF-8",
                e.as_bytes()[offset]
            ),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::Shown;

    #[test]
    fn numbers_in_messages_are_short() {
        // 1e308 was printed as its 309 digits.
        assert_eq!(Shown(1e308).to_string(), "1e308");
        assert_eq!(Shown(-2.5e20).to_string(), "-2.5e20");
        assert_eq!(Shown(1e-300).to_string(), "1e-300");
        for (x, s) in [
            (0.0, "0"),
            (-1.0, "-1"),
            (0.05, "0.05"),
            (300001.0, "300001"),
        ] {
            assert_eq!(Shown(x).to_string(), s);
        }
        assert_eq!(Shown(f64::NAN).to_string(), "NaN");
        assert_eq!(Shown(f64::INFINITY).to_string(), "inf");
    }
}
