//! Errors of the survey crate: every variant names the file/line or the argument at fault.

use std::path::PathBuf;

/// An error from reading isochrone tables or from inconsistent inputs.
#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// File being read.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A line of an isochrone table does not have the expected form.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// File being read.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// The tables, or the arguments of a call, are inconsistent.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of the survey crate.
pub type Result<T> = std::result::Result<T, SurveyError>;
