//! Star assembly: IMF masses against each parent particle's initial mass, the main-sequence
//! lifetime cut, phase-space positions from a sampler, inherited age, metallicity and parent,
//! streamed in batches into the catalogue.

use anyhow::Result;
use rand::rngs::Xoshiro256PlusPlus;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;
use snapio::{CatalogWriter, StarBatch, StarParticles};

use crate::imf::{main_sequence_lifetime_gyr, Imf};

/// Parent particles processed per batch (bounds memory: their stars are written before the next).
const PARTICLES_PER_BATCH: usize = 2048;

/// Totals of a star-drawing pass.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StarTotals {
    /// Stars written to the catalogue.
    pub stars_written: u64,
    /// Stars drawn from the IMF (before the lifetime cut).
    pub stars_drawn: u64,
    /// Initial mass of all stars drawn, Msun (expected: fraction × particles' initial mass).
    pub initial_mass_drawn_msun: f64,
    /// Initial mass of the stars written, Msun.
    pub initial_mass_written_msun: f64,
    /// Initial mass of the parent particles, Msun.
    pub particle_initial_mass_msun: f64,
}

/// What the stars are drawn from: the IMF, the fraction of stars wanted and the job's seed.
#[derive(Debug, Clone)]
pub struct StarDraw<'a> {
    /// Initial mass function sampler.
    pub imf: &'a Imf,
    /// Fraction of the stars drawn (0 < f <= 1).
    pub fraction: f64,
    /// Random seed of the job.
    pub seed: u64,
}

/// A random stream for one parent particle, independent of processing order and threads.
pub fn particle_rng(seed: u64, particle_id: u64) -> Xoshiro256PlusPlus {
    // SplitMix64 finaliser over (seed, id) for well-mixed, distinct seeds.
    let mut z = seed ^ particle_id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Xoshiro256PlusPlus::seed_from_u64(z ^ (z >> 31))
}

/// Draws the stars of every particle of `parents` (galaxy frame) and appends them to `writer`.
/// Star counts and masses come from `draw.imf` against each parent's initial mass.
/// `place(i, rng)` returns a star's (position kpc, velocity km/s) for parent `i`; `cluster(i)`
/// the cluster index recorded with it. Deterministic given `seed`, whatever the thread count.
pub fn draw_stars<P, C>(
    parents: &StarParticles,
    draw: &StarDraw,
    place: P,
    cluster: C,
    writer: &mut CatalogWriter,
    mut progress: impl FnMut(usize, u64),
) -> Result<StarTotals>
where
    P: Fn(usize, &mut Xoshiro256PlusPlus) -> ([f64; 3], [f64; 3]) + Sync,
    C: Fn(usize) -> u32 + Sync,
{
    let mut totals = StarTotals {
        particle_initial_mass_msun: parents.initial_mass.iter().sum(),
        ..Default::default()
    };
    let n = parents.len();
    for start in (0..n).step_by(PARTICLES_PER_BATCH) {
        let end = (start + PARTICLES_PER_BATCH).min(n);
        let per_particle: Vec<(StarBatch, u64, f64)> = (start..end)
            .into_par_iter()
            .map(|i| {
                let mut rng = particle_rng(draw.seed, parents.id[i]);
                let k = draw
                    .imf
                    .star_count(parents.initial_mass[i], draw.fraction, &mut rng);
                let mut b = StarBatch::default();
                let mut drawn_mass = 0.0;
                for _ in 0..k {
                    let m = draw.imf.sample(&mut rng);
                    drawn_mass += m;
                    // Draw the phase-space point whether or not the star survives, so the
                    // random stream does not depend on the lifetime relation.
                    let (x, v) = place(i, &mut rng);
                    if main_sequence_lifetime_gyr(m) < parents.age[i] {
                        continue;
                    }
                    b.position.push(x);
                    b.velocity.push(v);
                    b.mass.push(m);
                    b.initial_mass.push(m);
                    b.age.push(parents.age[i]);
                    b.metallicity.push(parents.metallicity[i]);
                    b.parent_id.push(parents.id[i]);
                    b.cluster.push(cluster(i));
                }
                (b, k, drawn_mass)
            })
            .collect();
        let mut batch = StarBatch::default();
        for (b, k, m) in per_particle {
            totals.stars_drawn += k;
            totals.initial_mass_drawn_msun += m;
            totals.initial_mass_written_msun += b.initial_mass.iter().sum::<f64>();
            batch.extend(&b);
        }
        totals.stars_written += batch.len() as u64;
        if !batch.is_empty() {
            writer.append(&batch)?;
        }
        progress(end, totals.stars_written);
    }
    Ok(totals)
}
