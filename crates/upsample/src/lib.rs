//! The upsampling pipeline: composes `snapio` (snapshots, units, frames, catalogues) and `cnf`
//! (normalizing flows) into the `upsample` job. Usable as a library without the binary.

pub mod cli;
pub mod config;
pub mod imf;
pub mod inspect;
pub mod job;
pub mod kernel;
pub mod logging;
pub mod progress;
pub mod report;
pub mod stars;

/// Program version written into every output (crate version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
