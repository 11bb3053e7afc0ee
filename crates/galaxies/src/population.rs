//! Drawing a population: components sampled in parallel chunks with their own seeded
//! generators, optional radius-dependent particle masses, ages, metallicities and IDs.

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use snapio::StarParticles;

use crate::hernquist::norm;

/// Particles per generator chunk (the draw is the same whatever the thread count).
const CHUNK: usize = 1024;

/// IDs of the truth draw start here (the snapshot's start at 1).
pub const TRUTH_ID_OFFSET: u64 = 1 << 40;

/// Initial mass over current mass of every particle (a stated constant mass-loss fraction).
pub const INITIAL_OVER_CURRENT_MASS: f64 = 1.25;

/// Particle masses that vary with radius: a particle at radius r carries mass ∝ w(r) =
/// (1 + r/scale)^gamma, and particles are drawn with number density ∝ ρ/w, so that the mass
/// density stays the model's ρ (issue 12 item 4: training with weights).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MassWeights {
    /// Exponent γ (dimensionless; 0 = equal masses).
    pub gamma: f64,
    /// Scale radius r_s in kpc.
    pub scale: f64,
}

impl MassWeights {
    /// Relative particle mass w(r) at radius `r` (kpc), dimensionless.
    pub fn weight(&self, r: f64) -> f64 {
        (1.0 + r / self.scale).powf(self.gamma)
    }
}

/// A drawn population: particles and the component each belongs to.
#[derive(Debug, Clone, Default)]
pub struct Draw {
    /// Particles (kpc, km/s, Msun, Gyr), centred on the galaxy at rest at the origin.
    pub particles: StarParticles,
    /// Component of each particle (model-specific: see each model's `LABELS`).
    pub label: Vec<u8>,
}

/// A part of a model that draws one particle's phase-space point at a time.
pub(crate) trait Component: Sync {
    /// Draws a position (kpc) and velocity (km/s).
    fn draw_one(&self, rng: &mut StdRng) -> ([f64; 3], [f64; 3]);
    /// Largest radius (kpc) a draw can reach (bounds the mass-weight rejection).
    fn max_radius(&self) -> f64;
}

/// Mixes a seed with a stream number (splitmix64 finaliser).
pub fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Draws `n` points of `c` with `seed`; with `weights`, keeps a point at radius r with
/// probability (1/w(r)) / max(1/w) so the number density is ∝ ρ/w.
pub(crate) fn draw_component<C: Component>(
    c: &C,
    n: usize,
    seed: u64,
    weights: Option<&MassWeights>,
) -> Vec<([f64; 3], [f64; 3])> {
    let inv_max = weights.map_or(1.0, |w| {
        (1.0 / w.weight(0.0)).max(1.0 / w.weight(c.max_radius()))
    });
    (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .flat_map_iter(|chunk| {
            let mut rng = StdRng::seed_from_u64(mix(seed, chunk as u64));
            let len = CHUNK.min(n - chunk * CHUNK);
            let mut out = Vec::with_capacity(len);
            while out.len() < len {
                let (x, v) = c.draw_one(&mut rng);
                let keep =
                    weights.is_none_or(|w| rng.random::<f64>() * inv_max < 1.0 / w.weight(norm(x)));
                if keep {
                    out.push((x, v));
                }
            }
            out
        })
        .collect()
}

/// One component's drawn points, label and total mass (Msun).
pub(crate) struct Part {
    /// Label written for each of its particles.
    pub label: u8,
    /// Total current mass of the component in Msun.
    pub mass: f64,
    /// Drawn positions (kpc) and velocities (km/s).
    pub points: Vec<([f64; 3], [f64; 3])>,
}

/// Number of particles of each component when `n` are shared in proportion to `fractions`.
pub(crate) fn split_counts(n: usize, fractions: &[f64]) -> Vec<usize> {
    let total: f64 = fractions.iter().sum();
    let mut counts: Vec<usize> = fractions
        .iter()
        .map(|f| (n as f64 * f / total).floor() as usize)
        .collect();
    let short = n - counts.iter().sum::<usize>();
    counts[0] += short;
    counts
}

/// Assembles the components into particles: a component's mass is shared in proportion to
/// w(r) (equal without weights); ages uniform in [1, 12] Gyr; metallicity 0.02 exp(−r/20 kpc)
/// times a log-normal scatter of 0.1 dex; IDs 1..=N in order.
pub(crate) fn assemble(parts: Vec<Part>, seed: u64, weights: Option<&MassWeights>) -> Draw {
    let n: usize = parts.iter().map(|p| p.points.len()).sum();
    let mut d = Draw {
        particles: StarParticles::with_capacity(n),
        label: Vec::with_capacity(n),
    };
    let mut rng = StdRng::seed_from_u64(mix(seed, 0x6167_6573));
    for part in parts {
        let w: Vec<f64> = part
            .points
            .iter()
            .map(|(x, _)| weights.map_or(1.0, |mw| mw.weight(norm(*x))))
            .collect();
        let wsum: f64 = w.iter().sum();
        for ((x, v), wi) in part.points.into_iter().zip(w) {
            let s = &mut d.particles;
            let m = part.mass * wi / wsum;
            s.position.push(x);
            s.velocity.push(v);
            s.mass.push(m);
            s.initial_mass.push(m * INITIAL_OVER_CURRENT_MASS);
            s.id.push(s.id.len() as u64 + 1);
            s.age.push(1.0 + 11.0 * rng.random::<f64>());
            s.metallicity
                .push(0.02 * (-norm(x) / 20.0).exp() * 10f64.powf(0.1 * gauss(&mut rng)));
            d.label.push(part.label);
        }
    }
    d
}

/// A standard normal deviate.
pub(crate) fn gauss<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng)
}
