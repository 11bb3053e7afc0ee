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

use super::shells::{radius, ShellConfig};
use super::standardise::{mix, subsample, Scales};
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
    /// The statistic shell by shell (points binned by their radius), where it is asked for:
    /// where in the galaxy the two samples differ. Empty in reports written before it.
    #[serde(default)]
    pub shells: Vec<ShellTwoSample>,
}

impl TwoSample {
    /// The shell that adds most to `z` (largest [`ShellTwoSample::z_part`]), when taken by shell.
    pub fn largest_part(&self) -> Option<&ShellTwoSample> {
        self.shells
            .iter()
            .filter(|s| s.z_part.is_finite())
            .max_by(|a, b| a.z_part.total_cmp(&b.z_part))
    }

    /// For a log line: `", most from r ≈ R kpc (part P, the shell's own z Z)"`, or nothing.
    pub fn largest_part_note(&self) -> String {
        self.largest_part().map_or(String::new(), |s| {
            format!(
                ", most from r ≈ {:.3} kpc (part {:.1}, the shell's own z {:.1})",
                s.r_mid, s.z_part, s.z
            )
        })
    }
}

/// The two-sample statistic restricted to the points (stars and held-out particles of the
/// balanced samples) of one radial shell, on the neighbour graph of all of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShellTwoSample {
    /// Geometric mid radius of the shell, kpc.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub r_mid: f64,
    /// Stars in the shell.
    pub n_stars: usize,
    /// Held-out particles in the shell.
    pub n_reference: usize,
    /// Mean fraction of same-sample neighbours of the shell's points (dimensionless).
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub statistic: f64,
    /// The shell's own z: its statistic against its mean and spread under the same label
    /// permutations as the whole (NaN with fewer than two points).
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub z: f64,
    /// The shell's part of the whole z: Σ over its points of (same fraction − null mean) /
    /// (all points × null sd). The parts of all shells and of the points outside them add up
    /// to [`TwoSample::z`].
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub z_part: f64,
}

/// The 6D k-NN two-sample statistic of `stars` against `reference`, in coordinates
/// standardised by the reference's per-axis robust spreads ([`Scales`]).
pub fn two_sample(
    stars: PhaseSpace<'_>,
    reference: PhaseSpace<'_>,
    config: &TwoSampleConfig,
) -> Result<TwoSample, FidelityError> {
    two_sample_by_shell(stars, reference, config, None)
}

/// [`two_sample`], and with `shells` also the statistic in each radial shell
/// ([`TwoSample::shells`]; positions in the galaxy frame, kpc).
pub fn two_sample_by_shell(
    stars: PhaseSpace<'_>,
    reference: PhaseSpace<'_>,
    config: &TwoSampleConfig,
    shells: Option<&ShellConfig>,
) -> Result<TwoSample, FidelityError> {
    stars.check("stars")?;
    reference.check("reference")?;
    if let Some(sc) = shells {
        sc.check()?;
    }
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
    let star_rows = subsample(stars.len(), n, mix(config.seed, 1));
    let reference_rows = subsample(reference.len(), n, mix(config.seed, 2));
    let mut pooled = scales.points(stars, &star_rows);
    pooled.extend(scales.points(reference, &reference_rows));
    let n_shells = shells.map_or(0, |sc| sc.n_shells);
    let shell_of: Vec<Option<usize>> = match shells {
        Some(sc) => star_rows
            .iter()
            .map(|&i| stars.position[i])
            .chain(reference_rows.iter().map(|&i| reference.position[i]))
            .map(|x| sc.index(radius(x)))
            .collect(),
        None => vec![None; pooled.len()],
    };
    let neighbours = neighbour_graph(&pooled, k)?;
    let total = pooled.len();
    let labels: Vec<bool> = (0..total).map(|i| i < n).collect();
    let observed = same_counts(&neighbours, &labels, k, &shell_of, n_shells);
    let null: Vec<SameCounts> = (0..config.permutations)
        .into_par_iter()
        .map(|p| {
            let mut l = labels.clone();
            let mut rng = StdRng::seed_from_u64(mix(config.seed, 1000 + p as u64));
            for i in (1..l.len()).rev() {
                let j = ((rng.random::<f64>() * (i + 1) as f64) as usize).min(i);
                l.swap(i, j);
            }
            same_counts(&neighbours, &l, k, &shell_of, n_shells)
        })
        .collect();
    let (n1, n2, nt) = (n as f64, n as f64, total as f64);
    let null_mean = (n1 * (n1 - 1.0) + n2 * (n2 - 1.0)) / (nt * (nt - 1.0));
    let fraction = |same: usize, points: usize| same as f64 / (points * k) as f64;
    let (_, null_sd) = mean_sd(null.iter().map(|c| fraction(c.all, total)));
    let statistic = fraction(observed.all, total);
    let shell_figures = |s: usize, sc: &ShellConfig| {
        let in_shell =
            |from: std::ops::Range<usize>| from.filter(|&i| shell_of[i] == Some(s)).count();
        let (n_stars, n_reference) = (in_shell(0..n), in_shell(n..total));
        let points = n_stars + n_reference;
        if points == 0 {
            return None;
        }
        let (mean, sd) = mean_sd(null.iter().map(|c| fraction(c.shells[s], points)));
        let shell_statistic = fraction(observed.shells[s], points);
        Some(ShellTwoSample {
            r_mid: sc.mid(s),
            n_stars,
            n_reference,
            statistic: shell_statistic,
            z: if points > 1 && sd > 0.0 {
                (shell_statistic - mean) / sd
            } else {
                f64::NAN
            },
            z_part: (shell_statistic - null_mean) * points as f64 / (nt * null_sd),
        })
    };
    let by_shell = match shells {
        Some(sc) => (0..sc.n_shells)
            .filter_map(|s| shell_figures(s, sc))
            .collect(),
        None => Vec::new(),
    };
    Ok(TwoSample {
        k,
        n_stars: n,
        n_reference: n,
        statistic,
        null_mean,
        null_sd,
        z: (statistic - null_mean) / null_sd,
        shells: by_shell,
    })
}

/// Mean and sample standard deviation of `xs`.
fn mean_sd(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let count = xs.clone().count() as f64;
    let mean = xs.clone().sum::<f64>() / count;
    let var = xs.map(|x| (x - mean).powi(2)).sum::<f64>() / (count - 1.0);
    (mean, var.sqrt())
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

/// Neighbours that share their point's label, over all points and over each shell's points.
struct SameCounts {
    /// Over all points.
    all: usize,
    /// Over the points of each shell.
    shells: Vec<usize>,
}

/// Counts the neighbours sharing their point's label (`shell_of`: each point's shell).
fn same_counts(
    neighbours: &[u32],
    labels: &[bool],
    k: usize,
    shell_of: &[Option<usize>],
    n_shells: usize,
) -> SameCounts {
    let per_point: Vec<usize> = neighbours
        .par_chunks(k)
        .enumerate()
        .map(|(i, nb)| {
            nb.iter()
                .filter(|&&j| labels[j as usize] == labels[i])
                .count()
        })
        .collect();
    let mut shells = vec![0; n_shells];
    for (same, shell) in per_point.iter().zip(shell_of) {
        if let Some(s) = shell {
            shells[*s] += same;
        }
    }
    SameCounts {
        all: per_point.iter().sum(),
        shells,
    }
}
