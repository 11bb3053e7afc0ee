//! Run configuration: a TOML file (every knob, with defaults; `pipelines/default.toml` documents
//! them) that the command line's flags override (`cli::run`). Plain serde: serialised into every
//! output, so part of what a run records.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::decompose::ClusterMethod;
use crate::stars::{Imf, ImfConfig, KernelConfig};

/// How stars are placed in phase space.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Ananke-style 6D Epanechnikov kernels around each parent particle (the baseline).
    Kernel,
    /// Continuous normalizing flows per cluster: p_c(x) and p_c(v | x).
    Flow,
}

/// The whole configuration of a run; serialised into every output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Random seed of the whole job.
    pub seed: u64,
    /// Compute device: "flex", "libtorch" or "cuda:N".
    pub device: String,
    /// How stars are placed: "flow" (default) or "kernel" (today's baseline).
    pub method: Method,
    /// Reading the snapshot: what to do with invalid particles.
    pub input: InputConfig,
    /// Region kept for the job, in the galaxy frame.
    pub region: Option<RegionConfig>,
    /// Galaxy-frame finding.
    pub frame: FrameConfig,
    /// Decomposition into clusters.
    pub clusters: ClusterConfig,
    /// Flow architecture and solver.
    pub flow: FlowNetConfig,
    /// Flow training.
    pub training: TrainingConfig,
    /// Star drawing.
    pub stars: StarConfig,
    /// Initial mass function (Kroupa 2001 by default).
    pub imf: ImfConfig,
    /// Kernel method knobs.
    pub kernel: KernelConfig,
    /// Mock Gaia-like survey catalogues, one per observer (off by default). Left out of the
    /// written configuration while it has its defaults, so runs without a survey record
    /// exactly what they did before it existed.
    #[serde(skip_serializing_if = "SurveyConfig::is_default")]
    pub survey: SurveyConfig,
    /// The fidelity report: particles held out of the flows' training, scored against the stars.
    pub fidelity: FidelitySettings,
}

/// The fidelity report's knobs (`[fidelity]`; flow method only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FidelitySettings {
    /// Fraction of the particles never shown to any flow and used as the reference of the
    /// report (0 <= f < 0.5; 0: no report, every particle trains). The choice is a seeded hash
    /// of each particle's identity, so it does not depend on the order of the files.
    pub holdout_fraction: f64,
    /// Most held-out particles (and as many stars) a cluster's statistics compare (>= 50).
    pub max_points: usize,
    /// Radial shells of the profiles (log-spaced from the 1st to the 99th percentile radius of
    /// the held-out particles).
    pub shells: usize,
}

impl Default for FidelitySettings {
    fn default() -> Self {
        Self {
            holdout_fraction: 0.1,
            max_points: 20_000,
            shells: 12,
        }
    }
}

/// Gaia data release whose uncertainties a survey simulates.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    /// (E)DR3 (34 months).
    Dr3,
    /// DR4 (66 months).
    Dr4,
    /// DR5 (132 months).
    Dr5,
}

/// Where a survey's extinction A0 comes from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DustKind {
    /// No extinction.
    None,
    /// The same A0 (`a0`, mag) for every star.
    Constant,
    /// A uniform screen: A0 = `a0` (mag/kpc) × heliocentric distance.
    PerKpc,
    /// The neutral hydrogen column through the snapshot's gas (PartType0) between the observer
    /// and each star: A0 = N_H / `nh_per_av` (× Z / `z_sun` with `metal_scaling`).
    Gas,
}

/// One observer (a Sun) in the galaxy frame; defaults are astropy's Galactocentric ones.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ObserverConfig {
    /// Azimuth of the Sun in the galaxy frame, deg, from +x toward +y (the rotation sense).
    pub azimuth_deg: f64,
    /// Distance of the Sun from the galaxy centre, kpc.
    pub r0_kpc: f64,
    /// Height of the Sun above the disc plane, kpc (toward the North Galactic Pole, the galaxy
    /// frame's -z: the galaxy is made to turn the Milky Way's way).
    pub z_sun_kpc: f64,
    /// The Sun's Galactocentric velocity, km/s: (toward the centre, along the rotation, toward
    /// the North Galactic Pole).
    pub v_sun_kms: [f64; 3],
}

/// The mock survey (`DIR/survey_obsN.hdf5`, docs/SURVEY.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SurveyConfig {
    /// Write the survey catalogues.
    pub enabled: bool,
    /// Folder of PARSEC/CMD tables (`.dat`, `.dat.gz`) with G, G_BP and G_RP; absent: the
    /// Gaia EDR3 tables shipped with the program.
    pub isochrones: Option<PathBuf>,
    /// Observers; each is repeated `ring` times, evenly spaced in azimuth.
    pub observers: Vec<ObserverConfig>,
    /// Suns per observer on a ring (1: the observers as listed; 3: three Suns 120° apart).
    pub ring: usize,
    /// Gaia release of the error model: "dr3", "dr4" or "dr5".
    pub release: Release,
    /// Dust: "none", "constant" (A0 = a0 mag), "per_kpc" (A0 = a0 mag/kpc × distance) or
    /// "gas" (A0 from the neutral hydrogen column through the snapshot's gas).
    pub dust: DustKind,
    /// A0 (mag) or A0 per kpc (mag/kpc), by `dust`.
    pub a0: f64,
    /// Gas dust: cells per side of the cube grid the gas is deposited on (16..=1024; memory
    /// 8 × gas_grid³ bytes: 134 MB at 256).
    pub gas_grid: usize,
    /// Gas dust: side of the grid cube (kpc), centred on the galaxy centre; gas outside it is
    /// ignored. Must contain every observer.
    pub gas_box_kpc: f64,
    /// Gas dust: N_H / A_V in atoms cm⁻² mag⁻¹ (default 2.21e21, Güver & Özel 2009).
    pub nh_per_av: f64,
    /// Gas dust: scale each gas particle's dust by its metallicity, Z / `z_sun`.
    pub metal_scaling: bool,
    /// Gas dust: the solar metallicity of `metal_scaling` (mass fraction; 0.0152, PARSEC's).
    pub z_sun: f64,
    /// Faintest observed G kept, mag.
    pub g_max: f64,
    /// Also write remnants (initial mass above the isochrones' most massive living star;
    /// NaN magnitudes, flag 8), which the magnitude cut never keeps.
    pub keep_remnants: bool,
}

impl Default for ObserverConfig {
    fn default() -> Self {
        let o = survey::Observer::default();
        Self {
            azimuth_deg: o.azimuth_deg,
            r0_kpc: o.r0_kpc,
            z_sun_kpc: o.z_sun_kpc,
            v_sun_kms: o.v_sun_kms,
        }
    }
}

impl Default for SurveyConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            isochrones: None,
            observers: vec![ObserverConfig::default()],
            ring: 1,
            release: Release::Dr3,
            dust: DustKind::None,
            a0: 0.0,
            gas_grid: 256,
            gas_box_kpc: 60.0,
            nh_per_av: survey::extinction::NH_PER_AV_GUVER_OZEL,
            metal_scaling: false,
            z_sun: survey::extinction::Z_SUN_PARSEC,
            g_max: survey::selection::DEFAULT_G_MAX,
            keep_remnants: false,
        }
    }
}

impl SurveyConfig {
    /// Whether every knob has its default (then it is not written into outputs).
    pub fn is_default(&self) -> bool {
        *self == SurveyConfig::default()
    }

    /// Every observer of the run, in output order (`survey_obs0`, `survey_obs1`, …).
    pub fn observers(&self) -> Vec<survey::Observer> {
        self.observers
            .iter()
            .flat_map(|o| {
                survey::Observer {
                    r0_kpc: o.r0_kpc,
                    z_sun_kpc: o.z_sun_kpc,
                    v_sun_kms: o.v_sun_kms,
                    azimuth_deg: o.azimuth_deg,
                }
                .ring(self.ring)
            })
            .collect()
    }

    /// The dust model of the survey (gas: none here; its columns are computed per star).
    pub fn dust_model(&self) -> survey::extinction::DustModel {
        use survey::extinction::DustModel;
        match self.dust {
            DustKind::None | DustKind::Gas => DustModel::None,
            DustKind::Constant => DustModel::Constant(self.a0),
            DustKind::PerKpc => DustModel::PerKpc(self.a0),
        }
    }

    /// The release of the survey's error model.
    pub fn gaia_release(&self) -> survey::errors::GaiaRelease {
        use survey::errors::GaiaRelease;
        match self.release {
            Release::Dr3 => GaiaRelease::Dr3,
            Release::Dr4 => GaiaRelease::Dr4,
            Release::Dr5 => GaiaRelease::Dr5,
        }
    }

    /// Checks every knob, naming it and what was expected.
    pub fn validate(&self) -> Result<()> {
        if self.ring == 0 || self.ring > 360 {
            bail!(
                "survey.ring must be 1 to 360 Suns per observer, got {}",
                self.ring
            );
        }
        if self.observers.is_empty() {
            bail!("survey.observers must list at least one observer");
        }
        if self.observers.len() * self.ring > 1000 {
            bail!(
                "survey: {} observers × ring {} is more than 1000 catalogues",
                self.observers.len(),
                self.ring
            );
        }
        for (k, o) in self.observers.iter().enumerate() {
            if !(o.r0_kpc.is_finite() && o.r0_kpc > 0.0) {
                bail!(
                    "survey.observers[{k}].r0_kpc must be a positive distance in kpc, got {}",
                    o.r0_kpc
                );
            }
            if !(o.z_sun_kpc.is_finite() && o.z_sun_kpc.abs() < o.r0_kpc) {
                bail!(
                    "survey.observers[{k}].z_sun_kpc must be finite and smaller than r0_kpc in size, got {}",
                    o.z_sun_kpc
                );
            }
            if !o.azimuth_deg.is_finite() || o.v_sun_kms.iter().any(|v| !v.is_finite()) {
                bail!(
                    "survey.observers[{k}]: azimuth_deg and v_sun_kms must be finite, got {} and {:?}",
                    o.azimuth_deg,
                    o.v_sun_kms
                );
            }
        }
        match self.dust {
            DustKind::None | DustKind::Gas if self.a0 != 0.0 => bail!(
                "survey.a0 = {} is given but survey.dust = \"{}\": set dust = \"constant\" (A0 in mag) or \"per_kpc\" (mag/kpc)",
                self.a0,
                if self.dust == DustKind::Gas { "gas" } else { "none" }
            ),
            _ if !(self.a0.is_finite() && self.a0 >= 0.0 && self.a0 <= 100.0) => bail!(
                "survey.a0 must be an extinction in [0, 100] (mag, or mag/kpc with dust = \"per_kpc\"), got {}",
                self.a0
            ),
            _ => {}
        }
        self.validate_gas()?;
        if !(self.g_max.is_finite() && self.g_max > -5.0 && self.g_max < 40.0) {
            bail!(
                "survey.g_max must be a G magnitude between -5 and 40, got {}",
                self.g_max
            );
        }
        if let Some(dir) = &self.isochrones {
            if !dir.is_dir() {
                bail!(
                    "survey.isochrones: {} is not a folder (expected PARSEC/CMD tables *.dat or *.dat.gz; leave the key out for the shipped Gaia EDR3 tables)",
                    dir.display()
                );
            }
        }
        Ok(())
    }

    /// Checks the gas-dust knobs (always: a bad value is an error even while unused).
    fn validate_gas(&self) -> Result<()> {
        if !(16..=1024).contains(&self.gas_grid) {
            bail!(
                "survey.gas_grid must be 16 to 1024 cells per side (memory 8 × gas_grid³ bytes), got {}",
                self.gas_grid
            );
        }
        if !(self.gas_box_kpc.is_finite() && self.gas_box_kpc > 0.0 && self.gas_box_kpc <= 1e4) {
            bail!(
                "survey.gas_box_kpc must be a side in (0, 10000] kpc, got {}",
                self.gas_box_kpc
            );
        }
        if !(self.nh_per_av.is_finite() && (1e20..=1e23).contains(&self.nh_per_av)) {
            bail!(
                "survey.nh_per_av must be N_H / A_V in [1e20, 1e23] atoms cm^-2 mag^-1 (2.21e21: Güver & Özel 2009; 1.87e21: Bohlin et al. 1978), got {}",
                self.nh_per_av
            );
        }
        if !(self.z_sun.is_finite() && self.z_sun > 0.0 && self.z_sun <= 0.1) {
            bail!(
                "survey.z_sun must be a metal mass fraction in (0, 0.1], got {}",
                self.z_sun
            );
        }
        if self.dust == DustKind::Gas {
            for (k, o) in self.observers().iter().enumerate() {
                let p = o.position_galaxy_kpc();
                if p.iter().any(|c| c.abs() >= 0.5 * self.gas_box_kpc) {
                    bail!(
                        "survey.gas_box_kpc = {} kpc does not contain observer {k} at {:?} kpc (galaxy frame): the grid is centred on the galaxy, make it larger than twice the observer's distance",
                        self.gas_box_kpc,
                        p
                    );
                }
            }
        }
        Ok(())
    }
}

/// How the snapshot is read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// Particles with a non-finite or out-of-range field (mass <= 0, age outside [0, age of the
    /// universe], metallicity outside [0, 1], position outside the box, duplicated identity):
    /// "error" (default: stop, naming file, dataset, row and value) or "drop" (drop them and
    /// count each kind in report.json).
    pub on_invalid: snapio::InvalidPolicy,
}

/// A sphere in the galaxy frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// Centre, kpc (galaxy frame).
    #[serde(default)]
    pub center: [f64; 3],
    /// Radius, kpc.
    pub radius: f64,
}

/// How the galaxy frame is found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FrameConfig {
    /// Find centre, bulk velocity and spin axis (true) or keep the snapshot's frame (false).
    pub enabled: bool,
}

/// Decomposition knobs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// "cells" (spatial cells with ghost margins), "fof" (friends-of-friends groups) or
    /// "field:NAME" (groups given by an integer dataset NAME).
    pub method: ClusterMethod,
    /// cells: number of cells.
    pub n: usize,
    /// cells: ghost particles trained on per cell, as a fraction of the cell's own particles.
    pub margin: f64,
    /// fof: linking length, kpc.
    pub linking_length: f64,
    /// fof and field: populations smaller than this many particles are pooled into one.
    pub min_size: usize,
    /// field: side HDF5 file with `ParticleIDs` and NAME datasets (absent: the snapshot's
    /// star particles carry NAME).
    pub field_file: Option<PathBuf>,
    /// cells: first take out the groups whose 6D phase-space density stands above a smooth
    /// spherical background (cold streams, compact satellites) as clusters of their own; the
    /// rest is split into cells (fof and field populations ignore it).
    pub substructure: bool,
    /// substructure: fewest particles of a group that gets its own flows.
    pub substructure_min: usize,
    /// substructure: least 6D density contrast f/f_background (dimensionless, > 1) of the
    /// particles a group grows from.
    pub substructure_contrast: f64,
    /// substructure: least contrast (dimensionless, > 1) of the particles a group grows
    /// through from them in a disc galaxy's pass against the disc's rings (hysteresis; above
    /// `substructure_contrast` it is that threshold).
    pub substructure_grow: f64,
    /// cells: split the smooth particles into a rotating disc and a non-rotating spheroid
    /// (mirror of the retrograde circularities), each cut into cells of its own.
    pub components: bool,
    /// components: where a radial shell rotates, take the disc probability from a fitted pair of
    /// velocity ellipsoids (rotating disc, non-rotating spheroid) instead of the mirror alone.
    /// It keeps a hot disc whole (galaxy (b)); a slowly rotating spheroid keeps the mirror's p
    /// (docs/ACCURACY.md, 2026-12-03).
    pub component_ellipsoids: bool,
}

/// Network and ODE-solver knobs of every flow (position and velocity).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FlowNetConfig {
    /// Hidden units per layer of the vector field.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Activation: "tanh", "softplus" or "silu".
    pub activation: cnf::Activation,
    /// RK4 steps of the training integration.
    pub rk4_steps: usize,
    /// Relative tolerance of the adaptive solver (sampling, evaluation).
    pub rtol: f64,
    /// Absolute tolerance of the adaptive solver.
    pub atol: f64,
    /// Radially compress positions (asinh beyond their median radius) before the flows see
    /// them: galaxies' power-law outskirts become exponential tails a flow can represent.
    pub compress_positions: bool,
    /// Standardise velocities by the local mean rotation and radial/tangential dispersions
    /// (profiles in radius fitted per cluster, or per component: `pooled_dispersion`) before
    /// the velocity flow sees them.
    pub standardise_velocities: bool,
    /// Fit that standardisation once per smooth component (disc, spheroid, or all the smooth
    /// particles) for its cells around the centre, rather than per cell: the cells meet at the
    /// cusp, and each cell's own fit there rests on its share of the cusp's particles.
    pub pooled_dispersion: bool,
    /// Gaussianise positions of the clusters around the galaxy's centre, or reaching from near
    /// it to the outskirts (a disc's outer cells), by a fitted radial mass profile (inner
    /// slope, scale radius, outer slope; cut at the outermost particle) before the position
    /// flow sees them; replaces `compress_positions` for those clusters.
    pub gaussianise_radii: bool,
    /// Condition the velocity flows of those clusters on the Gaussianised position instead of
    /// x (compressed about the cell's median), so that the cusp, in a corner of every cell
    /// that meets at the centre, is not squeezed into a corner of the flow's context.
    pub gaussianised_context: bool,
    /// Whiten the Gaussianised positions of those clusters by their own mean and covariance
    /// (true) or not (false, the default): a cell is a wedge of the Gaussianised galaxy whose
    /// radial tail is already the N(0, I) base's, while whitened by the wedge's smaller
    /// covariance it needs a tail 1.6× wider, which a flow with a bounded velocity field
    /// cannot make (galaxy (a): outskirts over-full, the last 15 kpc 30% short). With false a
    /// disc's cells are centred on their mean and scaled along the disc's normal (z) only, so
    /// the thin disc is standardised vertically and its edge keeps its tail (galaxy (b): the
    /// last 2 kpc before the edge 0.86 → 1.01 of the truth; docs/ACCURACY.md, 29th and 30th
    /// sessions).
    pub whiten_gaussianised: bool,
}

/// Training knobs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Maximum epochs per flow.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Initial learning rate (Adam, cosine schedule).
    pub learning_rate: f64,
    /// Fraction of each cluster's particles held out for validation and early stopping.
    pub val_fraction: f64,
    /// Epochs without validation improvement before stopping; stretched by the same factor as
    /// the epochs of a small cluster that `min_steps` lengthens.
    pub patience: usize,
    /// Share of each flow's epochs that always run before patience may stop it (0: patience
    /// counts from the first epoch; 1: never stop early). Early in the cosine schedule the
    /// learning rate is high and the held-out NLL noisy.
    pub early_stop_from: f64,
    /// At most this many particles per cluster are trained on (a seeded random subset;
    /// 0: all).
    pub max_particles: usize,
    /// Fewest optimiser steps per flow: a small cluster (a satellite, a piece of stream) runs
    /// more epochs than `epochs` until it has taken this many steps (0: `epochs` for all).
    pub min_steps: usize,
    /// Independently seeded flow pairs per cluster (an ensemble, averaged in density).
    pub ensemble: usize,
    /// Weight of the kinetic-energy penalty ∫|F|² dt (whitened units; RNODE regularisation).
    pub kinetic_reg: f64,
    /// Weight of the Jacobian penalty ∫‖∂F/∂y‖²_F dt (whitened units).
    pub jacobian_reg: f64,
    /// Parts per mini-batch whose gradients are computed on separate threads when a cluster has
    /// cores to spare (few clusters, many cores); 1: the whole batch at once. Changes the float
    /// rounding of training, so part of what a seed reproduces; the thread count is not.
    pub batch_parts: usize,
    /// What each particle counts for in the likelihood: "initial_mass" (default: the flows
    /// learn the density of initial mass, which is what stars are drawn from) or "count"
    /// (every particle once: the density of particle numbers).
    pub weighting: Weighting,
    /// A velocity flow of standardised velocities (with at least 200 held-out particles)
    /// replaces its start, the local dispersion model itself, only when its held-out NLL beats
    /// the start's by this many standard errors of the paired per-particle difference (0: any
    /// gain counts).
    pub min_gain_z: f64,
}

/// What a particle counts for in the flows' likelihood.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// Its initial stellar mass (Msun): flows learn the initial-mass density.
    InitialMass,
    /// One: flows learn the number density of particles.
    Count,
}

/// Star-drawing knobs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StarConfig {
    /// Fraction of the stars drawn (0 < f <= 1).
    pub fraction: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 1,
            device: "flex".into(),
            method: Method::Flow,
            input: InputConfig::default(),
            region: None,
            frame: FrameConfig::default(),
            clusters: ClusterConfig::default(),
            flow: FlowNetConfig::default(),
            training: TrainingConfig::default(),
            stars: StarConfig::default(),
            imf: ImfConfig::default(),
            kernel: KernelConfig::default(),
            survey: SurveyConfig::default(),
            fidelity: FidelitySettings::default(),
        }
    }
}

impl Default for FrameConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            method: ClusterMethod::Cells,
            n: 8,
            margin: 0.5,
            linking_length: 0.1,
            min_size: 1000,
            field_file: None,
            substructure: true,
            substructure_min: 100,
            substructure_contrast: 30.0,
            substructure_grow: 10.0,
            components: true,
            component_ellipsoids: true,
        }
    }
}

impl Default for FlowNetConfig {
    fn default() -> Self {
        Self {
            width: 64,
            depth: 3,
            activation: cnf::Activation::Tanh,
            rk4_steps: 8,
            rtol: 1e-4,
            atol: 1e-4,
            compress_positions: true,
            standardise_velocities: true,
            pooled_dispersion: true,
            gaussianise_radii: true,
            gaussianised_context: true,
            whiten_gaussianised: false,
        }
    }
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            epochs: 40,
            batch_size: 512,
            learning_rate: 5e-3,
            val_fraction: 0.1,
            patience: 8,
            early_stop_from: 0.5,
            max_particles: 0,
            min_steps: 600,
            ensemble: 1,
            kinetic_reg: 0.01,
            jacobian_reg: 0.01,
            batch_parts: 1,
            weighting: Weighting::InitialMass,
            min_gain_z: 3.0,
        }
    }
}

impl Default for StarConfig {
    fn default() -> Self {
        Self { fraction: 1.0 }
    }
}

impl Config {
    /// Reads a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration file {}", path.display()))?;
        toml::from_str(&text).with_context(|| {
            format!("configuration file {} is not valid (expected the keys documented in pipelines/default.toml)", path.display())
        })
    }

    /// Checks every value's range, naming the knob and what was expected.
    pub fn validate(&self) -> Result<()> {
        if !(self.stars.fraction > 0.0 && self.stars.fraction <= 1.0) {
            bail!(
                "star fraction must be in (0, 1], got {}",
                self.stars.fraction
            );
        }
        if let Some(r) = &self.region {
            if !(r.radius.is_finite() && r.radius > 0.0) {
                bail!(
                    "region radius must be a positive number of kpc, got {}",
                    r.radius
                );
            }
            if r.center.iter().any(|c| !c.is_finite()) {
                bail!("region centre must be finite (kpc), got {:?}", r.center);
            }
        }
        Imf::new(&self.imf)?;
        if self.kernel.k == 0 {
            bail!("kernel.k (neighbours) must be at least 1");
        }
        if self.clusters.n == 0 {
            bail!("number of clusters must be at least 1");
        }
        if self.training.epochs == 0 {
            bail!("epochs must be at least 1");
        }
        let c = &self.clusters;
        if !(c.margin.is_finite() && c.margin >= 0.0) {
            bail!("clusters.margin must be a fraction >= 0, got {}", c.margin);
        }
        if !(c.linking_length.is_finite() && c.linking_length > 0.0) {
            bail!(
                "clusters.linking_length must be a positive number of kpc, got {}",
                c.linking_length
            );
        }
        if !(c.substructure_contrast.is_finite() && c.substructure_contrast > 1.0) {
            bail!(
                "clusters.substructure_contrast must be a finite number > 1 (a density ratio), \
                 got {}",
                c.substructure_contrast
            );
        }
        if !(c.substructure_grow.is_finite() && c.substructure_grow > 1.0) {
            bail!(
                "clusters.substructure_grow must be a finite number > 1 (a density ratio), got {}",
                c.substructure_grow
            );
        }
        if c.substructure_min < 2 {
            bail!(
                "clusters.substructure_min must be at least 2 particles, got {}",
                c.substructure_min
            );
        }
        let t = &self.training;
        if t.batch_size == 0 || t.ensemble == 0 || t.batch_parts == 0 {
            bail!("training.batch_size, training.ensemble and training.batch_parts must be at least 1");
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            bail!(
                "training.learning_rate must be positive, got {}",
                t.learning_rate
            );
        }
        if !(t.kinetic_reg >= 0.0 && t.jacobian_reg >= 0.0) {
            bail!("training.kinetic_reg and training.jacobian_reg must be >= 0");
        }
        if !(t.min_gain_z >= 0.0 && t.min_gain_z.is_finite()) {
            bail!(
                "training.min_gain_z must be a finite number of standard errors >= 0, got {}",
                t.min_gain_z
            );
        }
        if !(0.0..=1.0).contains(&t.early_stop_from) {
            bail!(
                "training.early_stop_from must be a fraction in [0, 1], got {}",
                t.early_stop_from
            );
        }
        if !(t.val_fraction > 0.0 && t.val_fraction < 1.0) {
            bail!(
                "training.val_fraction must be in (0, 1), got {}",
                t.val_fraction
            );
        }
        let f = &self.flow;
        if f.width == 0 || f.depth == 0 || f.rk4_steps == 0 {
            bail!("flow.width, flow.depth and flow.rk4_steps must be at least 1");
        }
        if !(f.rtol > 0.0 && f.atol > 0.0) {
            bail!("flow.rtol and flow.atol must be positive");
        }
        self.survey.validate()?;
        let h = &self.fidelity;
        if !(h.holdout_fraction >= 0.0 && h.holdout_fraction < 0.5) {
            bail!(
                "fidelity.holdout_fraction must be in [0, 0.5), got {}",
                h.holdout_fraction
            );
        }
        if h.max_points < 50 || h.shells == 0 {
            bail!("fidelity.max_points must be at least 50 and fidelity.shells at least 1");
        }
        let d = self.device.as_str();
        let cuda_ok = d
            .strip_prefix("cuda:")
            .is_some_and(|n| n.parse::<usize>().is_ok());
        if !(d == "flex" || d == "libtorch" || cuda_ok) {
            bail!("device must be flex, libtorch or cuda:N, got {d:?}");
        }
        Ok(())
    }

    /// The configuration as TOML text (written into outputs).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# configuration not serialisable: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_presets_are_valid_and_default_toml_states_the_defaults() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
        for name in ["default.toml", "quick.toml", "gaia.toml"] {
            let cfg = Config::from_file(&dir.join(name)).unwrap();
            cfg.validate().unwrap();
        }
        assert_eq!(
            Config::from_file(&dir.join("default.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn substructure_knobs_are_checked_by_name() {
        let bad = |toml: &str| {
            let c: Config = toml::from_str(toml).unwrap();
            format!("{:#}", c.validate().unwrap_err())
        };
        for v in ["1.0", "0.5", "nan", "inf", "-3.0"] {
            let e = bad(&format!("[clusters]\nsubstructure_contrast = {v}\n"));
            assert!(e.contains("clusters.substructure_contrast"), "{v}: {e}");
        }
        for v in ["1.0", "nan", "0.0"] {
            let e = bad(&format!("[clusters]\nsubstructure_grow = {v}\n"));
            assert!(e.contains("clusters.substructure_grow"), "{v}: {e}");
        }
        let e = bad("[clusters]\nsubstructure_min = 1\n");
        assert!(e.contains("clusters.substructure_min"), "{e}");
        // fof and field populations ignore it (they are groups already).
        let fof: Config = toml::from_str("[clusters]\nmethod = \"fof\"\n").unwrap();
        fof.validate().unwrap();
        let ok: Config =
            toml::from_str("[clusters]\nsubstructure = true\nsubstructure_contrast = 1.5\n")
                .unwrap();
        ok.validate().unwrap();
        assert!(ok.clusters.substructure);
        assert_eq!(ok.clusters.substructure_min, 100);
        assert!(Config::default().clusters.substructure, "on by default");
    }

    #[test]
    fn survey_knobs_are_checked_by_name() {
        let bad = |toml: &str| {
            let c: Result<Config> = toml::from_str(toml).map_err(anyhow::Error::from);
            match c {
                Err(e) => format!("{e:#}"),
                Ok(c) => format!("{:#}", c.validate().unwrap_err()),
            }
        };
        assert!(bad("[survey]\nring = 0\n").contains("survey.ring"));
        assert!(bad("[survey]\nrelease = \"dr9\"\n").contains("dr3"));
        assert!(bad("[survey]\ndust = \"dusty\"\n").contains("per_kpc"));
        assert!(bad("[survey]\ndust = \"gas\"\na0 = 1.0\n").contains("survey.a0"));
        assert!(bad("[survey]\ngas_grid = 8\n").contains("survey.gas_grid"));
        assert!(bad("[survey]\ngas_grid = 4096\n").contains("survey.gas_grid"));
        assert!(bad("[survey]\ngas_box_kpc = 0.0\n").contains("survey.gas_box_kpc"));
        assert!(bad("[survey]\nnh_per_av = 2.21\n").contains("survey.nh_per_av"));
        assert!(bad("[survey]\nz_sun = -0.01\n").contains("survey.z_sun"));
        let small = bad("[survey]\ndust = \"gas\"\ngas_box_kpc = 10.0\n");
        assert!(small.contains("does not contain observer 0"), "{small}");
        let gas: Config = toml::from_str("[survey]\nenabled = true\ndust = \"gas\"\n").unwrap();
        gas.validate().unwrap();
        assert_eq!(gas.survey.gas_grid, 256);
        assert_eq!(gas.survey.nh_per_av, 2.21e21);
        assert!(bad("[survey]\na0 = 1.0\n").contains("survey.dust"));
        assert!(bad("[survey]\ndust = \"constant\"\na0 = -1.0\n").contains("survey.a0"));
        assert!(bad("[survey]\ng_max = nan\n").contains("survey.g_max"));
        assert!(bad("[survey]\nobservers = []\n").contains("survey.observers"));
        assert!(bad("[[survey.observers]]\nr0_kpc = -8.0\n").contains("observers[0].r0_kpc"));
        assert!(bad("[survey]\nisochrones = \"/no/such/dir\"\n").contains("/no/such/dir"));
        assert!(bad("[survey]\nenable = true\n").contains("enable"));
        // Off and default: not written, so catalogues without a survey are unchanged.
        assert!(!Config::default().to_toml().contains("survey"));
        let mut c = Config::default();
        c.survey.enabled = true;
        c.survey.ring = 3;
        let back: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        let obs = c.survey.observers();
        assert_eq!(obs.len(), 3);
        assert_eq!(obs[1].azimuth_deg, 300.0);
    }
}
