//! Command-line contract (kept stable: users script against it). Units are stated in each help.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Turn a galaxy simulation's star particles into a mock catalogue of individual stars.
///
/// Internal units everywhere: kpc, km/s, Msun, Gyr.
#[derive(Debug, Parser)]
#[command(name = "upsample", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Arguments of the main job (when no subcommand is given).
    #[command(flatten)]
    pub run: RunArgs,
    /// A subcommand; without one, the main job runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands beside the main job.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what is in a snapshot: counts per particle type, fields, header, units, wind particles.
    Inspect(InspectArgs),
    /// Join the clusters of a run's shards (`--shard I/N`) into DIR/catalog.hdf5 and
    /// DIR/report.json, identical to a single-process run.
    Merge(MergeArgs),
}

/// Arguments of `upsample merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The run's output folder (the --out every shard was given).
    pub dir: PathBuf,
}

/// Arguments of `upsample inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Snapshot: a file, any file of a multi-file set, or a snapdir_NNN/ folder.
    pub path: PathBuf,
}

/// Arguments of the main job: read, frame, decompose, train, sample, write.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Snapshot: a file, any file of a multi-file set (snap_099.0.hdf5), or a snapdir_NNN/ folder.
    #[arg(long, value_name = "PATH")]
    pub snapshot: Option<PathBuf>,
    /// Output folder (catalog.hdf5, models/, report.json).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// TOML configuration; command-line flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Compute device: flex (pure Rust CPU), libtorch (CPU) or cuda:N (needs the `tch` build).
    #[arg(long, value_name = "flex|libtorch|cuda:N")]
    pub device: Option<String>,
    /// Random seed; the same seed gives the same catalogue.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Centre of the region to keep, in the galaxy frame, kpc: X,Y,Z.
    #[arg(
        long,
        value_name = "X,Y,Z",
        value_delimiter = ',',
        allow_negative_numbers = true,
        requires = "region_radius"
    )]
    pub region_center: Option<Vec<f64>>,
    /// Radius of the region to keep, kpc (sphere around --region-center, default the origin).
    #[arg(long, value_name = "KPC")]
    pub region_radius: Option<f64>,
    /// Number of clusters (target; the decomposition may adjust it).
    #[arg(long, value_name = "N")]
    pub clusters: Option<usize>,
    /// Training epochs per flow.
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// How stars are placed: kernel (Ananke-style 6D kernels, today's baseline) or flow.
    #[arg(long, value_enum)]
    pub method: Option<crate::config::Method>,
    /// Fraction of the stars to draw (0 < F <= 1), for quick runs; recorded in the output.
    #[arg(long, value_name = "F")]
    pub star_fraction: Option<f64>,
    /// Flow method on an HPC job array: train and sample only clusters with index ≡ I (mod N)
    /// into DIR (shared by all shards), then `upsample merge DIR` joins them.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}
