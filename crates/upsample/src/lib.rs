//! The upsampling pipeline: composes `snapio` (snapshots, units, frames, catalogues) and `cnf`
//! (normalizing flows) into the `upsample` job. The library is what the binary runs and what
//! tests call; its API is internal to this project (the stable contracts are the command line
//! and the files, `docs/ARCHITECTURE.md`).
//!
//! Layers, each importing only from those below it (`scripts/check-layers.sh` enforces it):
//!
//! ```text
//! pipeline     run / merge / accel: the job, the run folder, kernel and flow methods, training
//! config       the TOML configuration (plain serde)
//! dynamics     phase-space densities, the CBE least-squares solve, the flows' density
//! models       trained flows in memory and on disk (models/)
//! stars        IMF, kernels, parent finding, star assembly
//! decompose    cells, friends-of-friends, labels
//! fidelity     (beside decompose) k-NN two-sample, smoothness, shell profiles vs held-out particles
//! seed, fsio, observe   the seed tree, atomic files and JSON, progress reporting
//! ```
//!
//! The command line (`src/cli/`, clap, progress bars, printing) belongs to the binary.

// Items used only inside the crate say so (pub(crate)): the public surface is what tests and the
// binary use.
#![warn(unreachable_pub)]

pub mod config;
pub mod decompose;
pub mod dynamics;
pub mod fidelity;
pub mod figures;
pub mod fsio;
pub mod models;
pub mod observe;
pub mod pipeline;
pub mod seed;
pub mod stars;

/// Program version written into every output (crate version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
