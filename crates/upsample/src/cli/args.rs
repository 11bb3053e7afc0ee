//! Command-line contract (kept stable: users script against it). Units are stated in each help.
//! The only clap types of the project: the library's enums get their command-line names here.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

use upsample::config::Method;
use upsample::dynamics::{Fit, Form};

/// `--method`: how stars are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Per-cluster normalizing flows (the default).
    Flow,
    /// Ananke-style 6D kernels around each parent (the baseline).
    Kernel,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::Flow => Method::Flow,
            MethodArg::Kernel => Method::Kernel,
        }
    }
}

/// `--form`: which form of the collisionless Boltzmann equation is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormArg {
    /// Divided by f: every sample weighs the same.
    Log,
    /// In f: samples weighted by f^2.
    Linear,
}

impl From<FormArg> for Form {
    fn from(f: FormArg) -> Form {
        match f {
            FormArg::Log => Form::Log,
            FormArg::Linear => Form::Linear,
        }
    }
}

/// `--fit`: how the over-determined system is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FitArg {
    /// Errors-in-variables (total least squares).
    Tls,
    /// Ordinary least squares.
    Ols,
}

impl From<FitArg> for Fit {
    fn from(f: FitArg) -> Fit {
        match f {
            FitArg::Tls => Fit::Tls,
            FitArg::Ols => Fit::Ols,
        }
    }
}

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
    /// Accelerations (km/s)^2/kpc at given positions (kpc, galaxy frame) from a run's trained
    /// flows, by least squares on the steady-state collisionless Boltzmann equation.
    ///
    /// Units: positions kpc (the run's galaxy frame), velocities km/s, accelerations and their
    /// errors (km/s)^2/kpc (1 (km/s)^2/kpc = 3.241e-14 m/s^2 = 1.0227 km/s per Gyr), density
    /// Msun/kpc^3.
    /// Output columns (CSV) or datasets (HDF5, each with a `units` attribute): x,y,z (`position`),
    /// ax,ay,az (`acceleration`), ax_err,ay_err,az_err (`acceleration_error`, bootstrap standard
    /// deviation), samples (velocity samples used), condition (condition number of M), residual
    /// (relative residual of the equation), flag (0 ok, 1 ill-conditioned: NaN acceleration,
    /// 2 no model density at this position: NaN), and with --poisson-step, density.
    Accel(AccelArgs),
    /// Figures of a finished run and one self-contained page: DIR/figures/*.png, DIR/report.html.
    ///
    /// Surface density maps (Msun/kpc^2), radial profiles of stars against held-out particles
    /// (kpc, km/s), loss curves per cluster (nats), accelerations ((km/s)^2/kpc), the mock
    /// surveys' colour-magnitude diagram (mag) and sky density (stars/deg^2). Runs and merges
    /// write them at the end unless --no-figures.
    Figures(FiguresArgs),
}

/// Arguments of `upsample figures`.
#[derive(Debug, Args)]
pub struct FiguresArgs {
    /// The run folder (with report.json and catalog.hdf5).
    pub dir: PathBuf,
    /// An `upsample accel` output (.csv or .h5) to draw as well (repeatable); files named
    /// DIR/accel*.csv, DIR/accel*.h5 or DIR/accel*.hdf5 are drawn without it.
    #[arg(long, value_name = "FILE")]
    pub accel: Vec<PathBuf>,
}

/// Arguments of `upsample accel` (units and output columns: `upsample accel --help`).
#[derive(Debug, Args)]
pub struct AccelArgs {
    /// A run's models/ folder, or the run folder holding it.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Positions, kpc, galaxy frame of the run: a CSV file with header `x,y,z` (lines starting
    /// with # are skipped) or an HDF5 file (.h5/.hdf5) with an (N, 3) `position` dataset.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "grid",
        conflicts_with = "grid"
    )]
    pub positions: Option<PathBuf>,
    /// Dataset holding the positions in an HDF5 --positions file.
    #[arg(long, value_name = "NAME", default_value = "position")]
    pub positions_dataset: String,
    /// A grid of positions instead of a file, kpc: for each axis a value or start:stop:count
    /// (count points, both ends included), e.g. "x=-5:5:11,y=0,z=0". Rows run with z fastest.
    #[arg(long, value_name = "SPEC", allow_hyphen_values = true)]
    pub grid: Option<String>,
    /// Output file: .csv (header x,y,z,ax,ay,az,... one row per position, same order) or
    /// .h5/.hdf5 (datasets with units). Written under a temporary name, then renamed.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Velocity samples drawn from the model at each position (K).
    #[arg(long, value_name = "K", default_value_t = 128)]
    pub k: usize,
    /// Random seed; position i uses its own stream (seed, i), so output does not depend on
    /// batching.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Compute device: flex (pure Rust CPU), libtorch (CPU) or cuda:N (needs the `tch` build).
    #[arg(long, value_name = "flex|libtorch|cuda:N", default_value = "flex")]
    pub device: String,
    /// Form of the equation: log (divided by f, every sample weighs the same; default) or
    /// linear (in f, samples weighted by f^2). See docs/EOM.md.
    #[arg(long, value_enum, default_value_t = FormArg::Log)]
    pub form: FormArg,
    /// How the over-determined system is fitted: tls (errors-in-variables, unbiased when the
    /// model's gradients are noisy; default) or ols (ordinary least squares, M a + B = 0, biased
    /// towards a = 0 by that noise). See docs/EOM.md.
    #[arg(long, value_enum, default_value_t = FitArg::Tls)]
    pub fit: FitArg,
    /// Bootstrap resamples of the K samples for the error columns (0: none, NaN errors).
    #[arg(long, value_name = "B", default_value_t = 100)]
    pub bootstrap: usize,
    /// Largest accepted condition number of M; above it the acceleration is NaN, flag 1.
    #[arg(long, value_name = "C", default_value_t = 1e6)]
    pub max_condition: f64,
    /// Positions per batch sent through the flows (each with K velocities).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub batch: usize,
    /// Also write the mass density rho = -div(a) / (4 pi G), Msun/kpc^3, by central finite
    /// differences of a with this step, kpc (6 more solves per position).
    #[arg(long, value_name = "KPC")]
    pub poisson_step: Option<f64>,
}

/// Arguments of `upsample merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The run's output folder (the --out every shard was given).
    pub dir: PathBuf,
    /// Do not write DIR/figures/ and DIR/report.html at the end.
    #[arg(long)]
    pub no_figures: bool,
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
    /// How stars are placed: flow (per-cluster normalizing flows, the default) or kernel
    /// (Ananke-style 6D kernels around each parent, the baseline).
    #[arg(long, value_enum)]
    pub method: Option<MethodArg>,
    /// Fraction of the stars to draw (0 < F <= 1), for quick runs; recorded in the output.
    #[arg(long, value_name = "F")]
    pub star_fraction: Option<f64>,
    /// Flow method on an HPC job array: train and sample only clusters with index ≡ I (mod N)
    /// into DIR (shared by all shards), then `upsample merge DIR` joins them.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Do not write DIR/figures/ and DIR/report.html at the end of the run.
    #[arg(long)]
    pub no_figures: bool,
}
