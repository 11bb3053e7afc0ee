//! The upsampling pipeline: composes `snapio` (snapshots, units, frames, catalogues) and `cnf`
//! (normalizing flows) into the `upsample` job. Usable as a library without the binary.

pub mod accel;
pub mod cli;
pub mod clusters;
pub mod config;
pub mod eom;
pub mod flow_density;
pub mod flowrun;
pub mod imf;
pub mod inspect;
pub mod job;
pub mod kernel;
pub mod logging;
pub mod models;
pub mod parents;
pub mod plummer;
pub mod progress;
pub mod report;
pub mod stars;
pub mod training;

/// Program version written into every output (crate version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
