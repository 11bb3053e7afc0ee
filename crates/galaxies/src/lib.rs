//! Test galaxies drawn from known models, each with an independent truth draw of the same model
//! and the analytic profiles the tests score against (`docs/GALAXIES.md`).
//!
//! Three models ([`Model`]):
//! - [`Spheroid`]: a cuspy Hernquist sphere with Osipkov–Merritt radial anisotropy, drawn from
//!   its distribution function (β rises from 0 in the centre to 1 outside r_a);
//! - [`DiscBulge`]: an exponential sech² disc with σ_R ∝ exp(−R/2R_d) and asymmetric-drift
//!   rotation on a stated rotation curve, plus an isotropic Hernquist bulge;
//! - [`HaloStream`]: an isotropic Hernquist halo with one cold stream along an orbit in the
//!   halo's potential and one compact Plummer satellite, offset and moving.
//!
//! Every draw is deterministic from its seed (parallel over chunks with their own generators),
//! labels each particle's component, and can carry unequal particle masses ([`MassWeights`]).
//! Units: kpc, km/s, Msun, Gyr; G = 4.30091727e-6 kpc (km/s)² / Msun.

pub mod disc;
pub mod hernquist;
pub mod plummer;
pub mod population;
pub mod snapshot;
pub mod spheroid;
pub mod stream;
pub mod windows;

use serde::{Deserialize, Serialize};
pub use snapio::StarParticles;

pub use disc::DiscBulge;
pub use hernquist::{Hernquist, OsipkovMerritt};
pub use plummer::Plummer;
pub use population::{Draw, MassWeights};
pub use snapshot::{write_galaxy, Written};
pub use spheroid::Spheroid;
pub use stream::HaloStream;
pub use windows::{Window, Windows};

/// Gravitational constant in kpc (km/s)² / Msun.
pub const G: f64 = 4.30091727e-6;

/// One of the test-galaxy models with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Model {
    /// Osipkov–Merritt Hernquist spheroid.
    Spheroid(Spheroid),
    /// Exponential disc + Hernquist bulge.
    DiscBulge(DiscBulge),
    /// Hernquist halo + cold stream + Plummer satellite.
    HaloStream(HaloStream),
}

impl Model {
    /// The names [`Model::by_name`] knows.
    pub const NAMES: [&'static str; 3] = ["spheroid", "disc", "stream"];

    /// The default model called `name` (`spheroid`, `disc` or `stream`), if any.
    pub fn by_name(name: &str) -> Option<Model> {
        match name {
            "spheroid" => Some(Model::Spheroid(Spheroid::default())),
            "disc" | "disc_bulge" => Some(Model::DiscBulge(DiscBulge::default())),
            "stream" | "halo_stream" => Some(Model::HaloStream(HaloStream::default())),
            _ => None,
        }
    }

    /// Draws `n` particles with `seed`; `weights` makes particle masses vary with radius.
    pub fn draw(&self, n: usize, seed: u64, weights: Option<&MassWeights>) -> Draw {
        match self {
            Model::Spheroid(m) => m.draw(n, seed, weights),
            Model::DiscBulge(m) => m.draw(n, seed, weights),
            Model::HaloStream(m) => m.draw(n, seed, weights),
        }
    }
}

/// How a galaxy is drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Number of particles in the snapshot.
    pub n: usize,
    /// Number of particles in the truth draw.
    pub n_truth: usize,
    /// Seed of the snapshot draw (the truth draw uses a seed derived from it).
    pub seed: u64,
    /// Unequal particle masses in the snapshot (the truth draw always has equal masses).
    pub mass_weights: Option<MassWeights>,
}

impl Options {
    /// `n` particles in both draws, seed `seed`, equal masses.
    pub fn new(n: usize, seed: u64) -> Options {
        Options {
            n,
            n_truth: n,
            seed,
            mass_weights: None,
        }
    }
}

/// A test galaxy: the model, the snapshot's particles and an independent truth draw.
#[derive(Debug, Clone)]
pub struct Galaxy {
    /// The model and its parameters (the analytic truth).
    pub model: Model,
    /// How it was drawn.
    pub options: Options,
    /// The particles that go into the snapshot.
    pub sample: Draw,
    /// An independent draw of the same model (different seed, equal masses), for scoring.
    pub truth: Draw,
}

/// Seed of the truth draw belonging to snapshot seed `seed`.
pub fn truth_seed(seed: u64) -> u64 {
    population::mix(seed, 0x7275_7468)
}

/// Draws the galaxy `model` with `options`: the snapshot sample and its truth draw.
pub fn generate(model: Model, options: Options) -> Galaxy {
    let sample = model.draw(options.n, options.seed, options.mass_weights.as_ref());
    let mut truth = model.draw(options.n_truth, truth_seed(options.seed), None);
    for id in &mut truth.particles.id {
        *id += population::TRUTH_ID_OFFSET;
    }
    Galaxy {
        model,
        options,
        sample,
        truth,
    }
}
