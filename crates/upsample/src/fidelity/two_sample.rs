//! The k-nearest-neighbour two-sample statistic in 6D (Schilling 1986, JASA 81, 799; Henze
//! 1988, Ann. Stat. 16, 772): pool the two samples, and take the mean fraction of each point's
//! k nearest neighbours that come from its own sample. Under the null (same distribution) the
//! labels are exchangeable on the fixed neighbour graph, so the null mean is
//! (n₁(n₁−1) + n₂(n₂−1)) / (N(N−1)) and the null spread comes from seeded label permutations on
//! that same graph (exact for the sizes used, no asymptotic constants needed).

use std::num::NonZeroUsize;

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::standardise::{subsample, Scales};
use super::{FidelityError, PhaseSpace};

/// Configuration of [`two_sample`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TwoSampleConfig {
    /// Neighbours per point, k (dimensionless).
    pub k: usize,
    /// Each sample is subsampled (seeded) to the same size, at most this many points: balanced
    /// samples, bounded cost.
    pub max_per_sample: usize,
    /// Label permutations for the null spread.
    pub permutations: usize,
    /// Seed of the subsampling and the permutations.
    pub seed: u64,
}

impl Default for TwoSampleConfig {
    /// k = 10, at most 20 000 points per sample, 200 permutations, seed 0.
    fn default() -> Self {
        TwoSampleConfig {
            k: 10,
            max_per_sample: 20_000,
            permutations: 200,
            seed: 0,
        }
    }
}

/// The statistic, its null expectation and noise, and the z-score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwoSample {
    /// Neighbours per point.
    pub k: usize,
    /// Stars used (after balancing).
    pub n_stars: usize,
    /// Reference points used (after balancing).
    pub n_reference: usize,
    /// Mean fraction of same-sample neighbours (dimensionless, ≈ 0.5 for balanced samples
    /// from one distribution, up to 1 for disjoint ones).
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub statistic: f64,
    /// Its expectation under the null for these sizes.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub null_mean: f64,
    /// Its standard deviation under the null (label permutations on the same neighbour graph).
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub null_sd: f64,
    /// (statistic − null_mean) / null_sd: how many null standard deviations apart.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub z: f64,
}

/// The 6D k-NN two-sample statistic of `stars` against `reference`, in coordinates
/// standardised by the reference's per-axis robust spreads ([`Scales`]).
pub fn two_sample(
    stars: PhaseSpace<'_>,
    reference: PhaseSpace<'_>,
    config: &TwoSampleConfig,
) -> Result<TwoSample, FidelityError> {
    stars.check("stars")?;
    reference.check("reference")?;
    let k = config.k;
    if k == 0 || config.permutations < 2 {
        return Err(FidelityError::Config(format!(
            "two-sample k = {k} and permutations = {} must be >= 1 and >= 2",
            config.permutations
        )));
    }
    let n = stars.len().min(reference.len()).min(config.max_per_sample);
    for (what, set) in [("stars", stars), ("reference", reference)] {
        if set.len() < n.max(k + 1) || n < k + 1 {
            return Err(FidelityError::TooFew {
                what: what.into(),
                have: set.len(),
                need: k + 1,
            });
        }
    }
    let scales = Scales::of(reference)?;
    let mut pooled = scales.points(stars, &subsample(stars.len(), n, mix(config.seed, 1)));
    pooled.extend(scales.points(
        reference,
        &subsample(reference.len(), n, mix(config.seed, 2)),
    ));
    let neighbours = neighbour_graph(&pooled, k)?;
    let total = pooled.len();
    let labels: Vec<bool> = (0..total).map(|i| i < n).collect();
    let statistic = same_fraction(&neighbours, &labels, k);
    let null: Vec<f64> = (0..config.permutations)
        .into_par_iter()
        .map(|p| {
            let mut l = labels.clone();
            let mut rng = StdRng::seed_from_u64(mix(config.seed, 1000 + p as u64));
            for i in (1..l.len()).rev() {
                let j = ((rng.random::<f64>() * (i + 1) as f64) as usize).min(i);
                l.swap(i, j);
            }
            same_fraction(&neighbours, &l, k)
        })
        .collect();
    let (n1, n2, nt) = (n as f64, n as f64, total as f64);
    let null_mean = (n1 * (n1 - 1.0) + n2 * (n2 - 1.0)) / (nt * (nt - 1.0));
    let pm = null.iter().sum::<f64>() / null.len() as f64;
    let null_sd =
        (null.iter().map(|t| (t - pm).powi(2)).sum::<f64>() / (null.len() - 1) as f64).sqrt();
    Ok(TwoSample {
        k,
        n_stars: n,
        n_reference: n,
        statistic,
        null_mean,
        null_sd,
        z: (statistic - null_mean) / null_sd,
    })
}

/// The k nearest other points of each point (row-major, k per point).
fn neighbour_graph(points: &[[f64; 6]], k: usize) -> Result<Vec<u32>, FidelityError> {
    let tree = ImmutableKdTree::<f64, 6>::new_from_slice(points)
        .map_err(|e| FidelityError::Config(format!("6D k-d tree of {}: {e:?}", points.len())))?;
    let nk = NonZeroUsize::new(k + 1).unwrap_or(NonZeroUsize::MIN);
    Ok(points
        .par_iter()
        .enumerate()
        .flat_map_iter(|(i, p)| {
            let found = tree
                .query(p)
                .nearest_n::<SquaredEuclidean<f64>>(nk)
                .execute();
            let mut out: Vec<u32> = found
                .iter()
                .map(|nb| nb.item)
                .filter(|&j| j as usize != i)
                .take(k)
                .collect();
            out.resize(k, found.last().map_or(0, |nb| nb.item));
            out
        })
        .collect())
}

/// Mean fraction of neighbours sharing the point's label.
fn same_fraction(neighbours: &[u32], labels: &[bool], k: usize) -> f64 {
    let same: usize = neighbours
        .par_chunks(k)
        .enumerate()
        .map(|(i, nb)| {
            nb.iter()
                .filter(|&&j| labels[j as usize] == labels[i])
                .count()
        })
        .sum();
    same as f64 / neighbours.len() as f64
}

/// Mixes a seed with a stream number (splitmix64 finaliser).
pub(crate) fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
