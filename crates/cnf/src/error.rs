//! Error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong in the `cnf` crate.
#[derive(Debug, thiserror::Error)]
pub enum CnfError {
    /// A device string could not be understood or the backend is not compiled in.
    #[error("device '{spec}': {reason}")]
    Device {
        /// The string given by the caller.
        spec: String,
        /// Why it was refused.
        reason: String,
    },
    /// Input data have the wrong shape or content.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The adaptive ODE solver could not reach the requested tolerance.
    #[error("ODE solver failed: {0}")]
    Solver(String),
    /// Training diverged and could not be recovered.
    #[error("training failed: {0}")]
    Training(String),
    /// Reading or writing a checkpoint failed.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file or directory involved.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A tensor could not be read back from the device.
    #[error("tensor readback failed: {0}")]
    Readback(String),
}
