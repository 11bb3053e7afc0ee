//! Smoothness: does the catalogue huddle around the particles it was trained on? For each star
//! and each held-out particle, the standardised 6D distance to the nearest training particle.
//! Independent draws of the training distribution (a good flow's stars, the held-out
//! particles) give the same distance distribution (ratio of medians ≈ 1); stars spawned
//! around their parents sit closer (the kernel method: ≈ 0.55).

use kiddo::SquaredEuclidean;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::standardise::{median, mix, subsample, Scales};
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
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub median_star: f64,
    /// Median distance from a held-out particle to its nearest training particle (same units).
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub median_reference: f64,
    /// median_star / median_reference (≈ 1 smooth, < 1 huddled around the training particles).
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub ratio: f64,
    /// Kolmogorov–Smirnov distance between the two distance distributions.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub ks: f64,
}

/// Distances from stars and from held-out particles to their nearest training particle, the
/// raw material of [`Smoothness`]; kept so that several clusters' distances can be pooled
/// ([`NearestDistances::pool`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NearestDistances {
    /// Each (subsampled) star's distance to its nearest training particle (standardised 6D
    /// units, [`Scales`] of the reference).
    pub stars: Vec<f64>,
    /// Each (subsampled) held-out particle's distance to its nearest training particle (same
    /// units).
    pub reference: Vec<f64>,
    /// Each of `reference`'s weights (its particle's initial mass, Msun, or in a pool that
    /// scaled to its cluster's share); empty: every held-out particle weighs the same.
    pub reference_weight: Vec<f64>,
    /// Training particles searched.
    pub n_training: usize,
}

impl NearestDistances {
    /// Several sets' distances in one, each set's distances divided by the median of its own
    /// reference distances (so clusters standardised by different scales pool in the same,
    /// dimensionless unit: a held-out particle's typical distance is 1), every set entering
    /// with its share `weights[i] / Σ weights` of the pooled stars and references (a seeded
    /// random subset of its rows; the pooled size is the largest every set can fill). Where
    /// any set's references carry weights, every reference row enters instead, its weight
    /// (unweighted sets: 1 each) scaled so that each set's sum to its share of the pooled
    /// rows' count. Sets with no distances are skipped.
    pub fn pool(sets: &[&NearestDistances], weights: &[f64]) -> NearestDistances {
        // Each set's distances in units of its own reference median (sets without one: left out).
        let unit: Vec<f64> = sets
            .iter()
            .map(|s| {
                let m = s.reference_median();
                if m.is_finite() && m > 0.0 && !s.stars.is_empty() {
                    m
                } else {
                    f64::NAN
                }
            })
            .collect();
        let w: Vec<f64> = weights
            .iter()
            .zip(&unit)
            .map(|(&w, m)| if m.is_nan() { 0.0 } else { w })
            .collect();
        let weighted = sets.iter().any(|s| !s.reference_weight.is_empty());
        let star_lens: Vec<usize> = sets.iter().map(|s| s.stars.len()).collect();
        let ks = pool_counts(&star_lens, &w, usize::MAX);
        let kr: Vec<usize> = if weighted {
            // Every row of every usable set: the weights carry the shares.
            sets.iter()
                .zip(&w)
                .map(|(s, &wi)| if wi > 0.0 { s.reference.len() } else { 0 })
                .collect()
        } else {
            let lens: Vec<usize> = sets.iter().map(|s| s.reference.len()).collect();
            pool_counts(&lens, &w, usize::MAX)
        };
        let (rows_total, w_total) = (kr.iter().sum::<usize>() as f64, w.iter().sum::<f64>());
        let mut out = NearestDistances::default();
        for (i, s) in sets.iter().enumerate() {
            if w[i] <= 0.0 {
                continue;
            }
            let rows = |len: usize, k: usize, stream: u64| subsample(len, k, mix(i as u64, stream));
            out.stars.extend(
                rows(s.stars.len(), ks[i], 1)
                    .into_iter()
                    .map(|j| s.stars[j] / unit[i]),
            );
            let picked = rows(s.reference.len(), kr[i], 2);
            out.reference
                .extend(picked.iter().map(|&j| s.reference[j] / unit[i]));
            if weighted {
                let weight = |j: usize| s.reference_weight.get(j).copied().unwrap_or(1.0);
                let share = rows_total * w[i] / w_total;
                let scale = share / picked.iter().map(|&j| weight(j)).sum::<f64>();
                out.reference_weight
                    .extend(picked.iter().map(|&j| weight(j) * scale));
            }
            out.n_training += s.n_training;
        }
        out
    }

    /// The (weighted) median of the reference distances; NaN when there are none.
    fn reference_median(&self) -> f64 {
        if self.reference_weight.is_empty() {
            median(&mut self.reference.clone())
        } else {
            cnf::weighted_median(
                self.reference
                    .iter()
                    .copied()
                    .zip(self.reference_weight.iter().copied())
                    .collect(),
            )
        }
    }
}

/// How many rows to take from each of several sets of `lens` rows so that set i makes up the
/// share `weights[i] / Σ weights` of the pooled rows: the largest pooled total, at most `max`,
/// that every set with a positive weight can fill (at least one row from each such set; none
/// from sets with zero weight or no rows).
pub fn pool_counts(lens: &[usize], weights: &[f64], max: usize) -> Vec<usize> {
    let usable = |i: usize| lens[i] > 0 && weights[i] > 0.0 && weights[i].is_finite();
    let total: f64 = (0..lens.len())
        .filter(|&i| usable(i))
        .map(|i| weights[i])
        .sum();
    let pooled = (0..lens.len())
        .filter(|&i| usable(i))
        .map(|i| lens[i] as f64 * total / weights[i])
        .fold(max as f64, f64::min);
    (0..lens.len())
        .map(|i| {
            if usable(i) {
                ((pooled * weights[i] / total).round() as usize).clamp(1, lens[i])
            } else {
                0
            }
        })
        .collect()
}

impl From<&NearestDistances> for Smoothness {
    /// The statistic; held-out distances weighted by `reference_weight` where given.
    fn from(d: &NearestDistances) -> Smoothness {
        let weights = (!d.reference_weight.is_empty()).then_some(d.reference_weight.as_slice());
        let ks = ks_two_sample_weighted(&d.stars, None, &d.reference, weights);
        let (median_star, median_reference) = (median(&mut d.stars.clone()), d.reference_median());
        Smoothness {
            n_stars: d.stars.len(),
            n_reference: d.reference.len(),
            n_training: d.n_training,
            median_star,
            median_reference,
            ratio: median_star / median_reference,
            ks,
        }
    }
}

/// The smoothness statistic of `stars` against the held-out `reference`, nearest neighbours
/// searched among `training`.
pub fn smoothness(
    stars: PhaseSpace<'_>,
    reference: PhaseSpace<'_>,
    training: PhaseSpace<'_>,
    config: &SmoothnessConfig,
) -> Result<Smoothness, FidelityError> {
    Ok(Smoothness::from(&nearest_distances(
        stars, reference, training, config,
    )?))
}

/// The nearest-training-particle distances of (subsamples of) `stars` and the held-out
/// `reference`, in coordinates standardised by the reference's robust spreads.
pub fn nearest_distances(
    stars: PhaseSpace<'_>,
    reference: PhaseSpace<'_>,
    training: PhaseSpace<'_>,
    config: &SmoothnessConfig,
) -> Result<NearestDistances, FidelityError> {
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
    let tree = scales.tree(training, "training")?;
    // Each set's rows (a seeded subset of at most `max_points`) and their distances.
    let distances = |set: PhaseSpace<'_>, stream: u64| -> (Vec<usize>, Vec<f64>) {
        let rows = subsample(set.len(), config.max_points, mix(config.seed, stream));
        let d = scales
            .points(set, &rows)
            .par_iter()
            .map(|p| {
                tree.query(p)
                    .nearest_one::<SquaredEuclidean<f64>>()
                    .execute()
                    .distance
                    .sqrt()
            })
            .collect();
        (rows, d)
    };
    let ((_, star_distances), (reference_rows, reference_distances)) =
        (distances(stars, 1), distances(reference, 2));
    Ok(NearestDistances {
        stars: star_distances,
        reference: reference_distances,
        reference_weight: reference
            .mass
            .map(|m| reference_rows.iter().map(|&i| m[i]).collect())
            .unwrap_or_default(),
        n_training: training.len(),
    })
}

/// Two-sample Kolmogorov–Smirnov distance: the largest gap between the empirical cumulative
/// distributions of `a` and `b` (0 when either is empty).
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> f64 {
    ks_two_sample_weighted(a, None, b, None)
}

/// Two-sample Kolmogorov–Smirnov distance between weighted samples: the largest gap between
/// the cumulative distributions of `a` with weights `wa` and `b` with weights `wb` (`None`:
/// every value weighs 1; e.g. particles weighted by initial mass, Msun, against stars). 0 when
/// either sample is empty or weighs nothing.
///
/// # Panics
/// When a weight slice's length differs from its sample's.
pub fn ks_two_sample_weighted(a: &[f64], wa: Option<&[f64]>, b: &[f64], wb: Option<&[f64]>) -> f64 {
    // (value, weight) sorted by value, and the total weight.
    let sorted = |x: &[f64], w: Option<&[f64]>| {
        if let Some(w) = w {
            assert_eq!(w.len(), x.len(), "one weight per value");
        }
        let mut pairs: Vec<(f64, f64)> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| (v, w.map_or(1.0, |w| w[i])))
            .collect();
        pairs.sort_unstable_by(|p, q| p.0.total_cmp(&q.0));
        let total: f64 = pairs.iter().map(|p| p.1).sum();
        (pairs, total)
    };
    let ((a, ta), (b, tb)) = (sorted(a, wa), sorted(b, wb));
    if a.is_empty() || b.is_empty() || ta <= 0.0 || tb <= 0.0 {
        return 0.0;
    }
    let (mut i, mut j, mut ca, mut cb, mut d) = (0, 0, 0.0, 0.0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].0.min(b[j].0);
        while i < a.len() && a[i].0 <= x {
            ca += a[i].1;
            i += 1;
        }
        while j < b.len() && b[j].0 <= x {
            cb += b[j].1;
            j += 1;
        }
        d = d.max((ca / ta - cb / tb).abs());
    }
    d
}
