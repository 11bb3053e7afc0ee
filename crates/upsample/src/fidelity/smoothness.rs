//! Smoothness: does the catalogue huddle around the particles it was trained on? For each star
//! and each held-out particle, the standardised 6D distance to the nearest training particle.
//! Independent draws of the training distribution (a good flow's stars, the held-out
//! particles) give the same distance distribution (ratio of medians ≈ 1); stars spawned
//! around their parents sit closer (the kernel method: ≈ 0.55).

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::standardise::{median, subsample, Scales};
use super::two_sample::mix;
use super::{FidelityError, PhaseSpace};

/// Configuration of [`smoothness`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SmoothnessConfig {
    /// Stars and held-out particles are each subsampled (seeded) to at most this many.
    pub max_points: usize,
    /// Seed of the subsampling.
    pub seed: u64,
}

impl Default for SmoothnessConfig {
    /// At most 20 000 points per set, seed 0.
    fn default() -> Self {
        SmoothnessConfig {
            max_points: 20_000,
            seed: 0,
        }
    }
}

/// Nearest-training-particle distances of stars against held-out particles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Smoothness {
    /// Stars used.
    pub n_stars: usize,
    /// Held-out particles used.
    pub n_reference: usize,
    /// Training particles searched.
    pub n_training: usize,
    /// Median distance from a star to its nearest training particle (standardised 6D units:
    /// each axis divided by the reference's robust spread, [`Scales`]).
    pub median_star: f64,
    /// Median distance from a held-out particle to its nearest training particle (same units).
    pub median_reference: f64,
    /// median_star / median_reference (≈ 1 smooth, < 1 huddled around the training particles).
    pub ratio: f64,
    /// Kolmogorov–Smirnov distance between the two distance distributions.
    pub ks: f64,
}

/// The smoothness statistic of `stars` against the held-out `reference`, nearest neighbours
/// searched among `training`.
pub fn smoothness(
    stars: PhaseSpace<'_>,
    reference: PhaseSpace<'_>,
    training: PhaseSpace<'_>,
    config: &SmoothnessConfig,
) -> Result<Smoothness, FidelityError> {
    stars.check("stars")?;
    reference.check("reference")?;
    training.check("training")?;
    for (what, set) in [
        ("stars", stars),
        ("reference", reference),
        ("training", training),
    ] {
        if set.is_empty() {
            return Err(FidelityError::TooFew {
                what: what.into(),
                have: 0,
                need: 1,
            });
        }
    }
    let scales = Scales::of(reference)?;
    let all: Vec<usize> = (0..training.len()).collect();
    let tree = ImmutableKdTree::<f64, 6>::new_from_slice(&scales.points(training, &all))
        .map_err(|e| FidelityError::Config(format!("6D k-d tree of training: {e:?}")))?;
    let distances = |set: PhaseSpace<'_>, stream: u64| -> Vec<f64> {
        let rows = subsample(set.len(), config.max_points, mix(config.seed, stream));
        scales
            .points(set, &rows)
            .par_iter()
            .map(|p| {
                tree.query(p)
                    .nearest_one::<SquaredEuclidean<f64>>()
                    .execute()
                    .distance
                    .sqrt()
            })
            .collect()
    };
    let mut ds = distances(stars, 1);
    let mut dr = distances(reference, 2);
    let ks = ks_two_sample(&ds, &dr);
    let (n_stars, n_reference) = (ds.len(), dr.len());
    let (median_star, median_reference) = (median(&mut ds), median(&mut dr));
    Ok(Smoothness {
        n_stars,
        n_reference,
        n_training: training.len(),
        median_star,
        median_reference,
        ratio: median_star / median_reference,
        ks,
    })
}

/// Two-sample Kolmogorov–Smirnov distance: the largest gap between the empirical cumulative
/// distributions of `a` and `b` (0 when either is empty).
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / na - j as f64 / nb).abs());
    }
    d
}
