//! The k-nearest-neighbour two-sample statistic in 6D (Schilling 1986, JASA 81, 799; Henze
//! 1988, Ann. Stat. 16, 772): pool the two samples, and take the mean fraction of each point's
//! k nearest neighbours that come from its own sample. Under the null (same distribution) the
//! labels are exchangeable on the fixed neighbour graph, so the null mean is
//! (n₁(n₁−1) + n₂(n₂−1)) / (N(N−1)) and the null spread comes from seeded label permutations on
//! that same graph (exact for the sizes used, no asymptotic constants needed).

use std::num::NonZeroUsize;

use kiddo::SquaredEuclidean;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::shells::{radius, ShellConfig};
use super::standardise::{kd_tree, mix, subsample, Scales};
use super::{FidelityError, PhaseSpace};

/// Configuration of [`two_sample`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TwoSampleConfig {
    /// Neighbours per point, k (dimensionless).
    pub k: usize,
    /// Each sample is subsampled (seeded) to at most this many points (bounded cost), and for
    /// [`two_sample`] both to the same size (balanced samples).
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
    /// Whether the reference's particles counted with their masses
    /// ([`two_sample_mass_weighted`]: `statistic` is then the mean product of neighbouring
    /// label residuals, null mean 0); false: the same-neighbour fraction against a reference
    /// that follows the stars' density. False in reports written before it.
    #[serde(default)]
    pub mass_weighted: bool,
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
    if config.permutations < 2 {
        return Err(FidelityError::Config(format!(
            "two-sample permutations = {} must be >= 2",
            config.permutations
        )));
    }
    let pool = Pool::new(stars, reference, config, shells, true)?;
    let (n, total, k) = (pool.n_stars, pool.total(), config.k);
    let labels: Vec<bool> = (0..total).map(|i| i < n).collect();
    let observed = pool.same_counts(&labels);
    let null: Vec<SameCounts> = (0..config.permutations)
        .into_par_iter()
        .map(|p| {
            let mut l = labels.clone();
            let mut rng = StdRng::seed_from_u64(mix(config.seed, 1000 + p as u64));
            for i in (1..l.len()).rev() {
                let j = ((rng.random::<f64>() * (i + 1) as f64) as usize).min(i);
                l.swap(i, j);
            }
            pool.same_counts(&l)
        })
        .collect();
    let (n1, n2, nt) = (n as f64, n as f64, total as f64);
    let null_mean = (n1 * (n1 - 1.0) + n2 * (n2 - 1.0)) / (nt * (nt - 1.0));
    let fraction = |same: usize, points: usize| same as f64 / (points * k) as f64;
    let (_, null_sd) = mean_sd(null.iter().map(|c| fraction(c.all, total)));
    let statistic = fraction(observed.all, total);
    let by_shell = pool.by_shell(shells, |s, points| {
        let (mean, sd) = mean_sd(null.iter().map(|c| fraction(c.shells[s], points)));
        let shell_statistic = fraction(observed.shells[s], points);
        let z = if points > 1 && sd > 0.0 {
            (shell_statistic - mean) / sd
        } else {
            f64::NAN
        };
        let z_part = (shell_statistic - null_mean) * points as f64 / (nt * null_sd);
        (shell_statistic, z, z_part)
    });
    Ok(TwoSample {
        k,
        n_stars: n,
        n_reference: n,
        statistic,
        null_mean,
        null_sd,
        z: (statistic - null_mean) / null_sd,
        shells: by_shell,
        mass_weighted: false,
    })
}

/// The local mean particle mass ([`super::local_mass`], Msun) at each star and at each
/// reference point: up to one constant, the ratio of the stars' density to the reference's.
#[derive(Debug, Clone, Copy)]
pub struct LocalMass<'a> {
    /// At each star.
    pub stars: &'a [f64],
    /// At each reference point.
    pub reference: &'a [f64],
}

/// The two-sample statistic of `stars`, which follow the mass density, against a `reference`
/// of particles whose masses differ (so which follows their number density), with every
/// reference point counting rather than a subset thinned ∝ mass (and the samples need not be
/// of equal size: each is taken whole up to `max_per_sample`). A conditional randomisation
/// test on the fixed neighbour graph of the pooled points: under the null, given the pooled
/// positions, a point at which the local mean mass is m̄ is a star independently with
/// probability π = c m̄ / (c m̄ + 1) (c: so that the π sum to the number of stars). The
/// statistic is the mean over points of (label − π) × the sum of (label − π) over its k
/// neighbours, divided by k (label 1 for a star): 0 under the null, positive where stars
/// gather or thin out against the mass density, whichever way. Its null spread is exact:
/// Σ over neighbour pairs of (1 + [mutual]) π(1−π) π'(1−π') / (N k)². With equal masses it is
/// (2 × the same-neighbour fraction − 1) / 4 of [`two_sample`].
pub fn two_sample_mass_weighted(
    stars: PhaseSpace<'_>,
    reference: PhaseSpace<'_>,
    local_mass: LocalMass<'_>,
    config: &TwoSampleConfig,
    shells: Option<&ShellConfig>,
) -> Result<TwoSample, FidelityError> {
    for (what, m, set) in [
        ("stars", local_mass.stars, stars),
        ("reference", local_mass.reference, reference),
    ] {
        if m.len() != set.len() || m.iter().any(|&x| !(x.is_finite() && x > 0.0)) {
            return Err(FidelityError::Config(format!(
                "local masses of the {what}: {} for {} points, each must be finite and > 0",
                m.len(),
                set.len()
            )));
        }
    }
    let pool = Pool::new(stars, reference, config, shells, false)?;
    let (n, total, k) = (pool.n_stars, pool.total(), config.k);
    let m: Vec<f64> = pool
        .star_rows
        .iter()
        .map(|&i| local_mass.stars[i])
        .chain(pool.reference_rows.iter().map(|&i| local_mass.reference[i]))
        .collect();
    let pi = star_probabilities(&m, n as f64);
    let residual: Vec<f64> = (0..total)
        .map(|i| f64::from(u8::from(i < n)) - pi[i])
        .collect();
    let var: Vec<f64> = pi.iter().map(|p| p * (1.0 - p)).collect();
    let nb = |i: usize| &pool.neighbours[i * k..(i + 1) * k];
    // Per point: its term of the sum, and its parts of the null variance of the whole sum and
    // of its shell's sum (a neighbour pair counts twice where each is among the other's k).
    let terms: Vec<(f64, f64, f64)> = (0..total)
        .into_par_iter()
        .map(|i| {
            let mut term = 0.0;
            let (mut v_all, mut v_shell) = (0.0, 0.0);
            for &j in nb(i) {
                let j = j as usize;
                term += residual[j];
                let mutual = f64::from(u8::from(nb(j).contains(&(i as u32))));
                let same_shell = f64::from(u8::from(
                    pool.shell_of[i].is_some() && pool.shell_of[i] == pool.shell_of[j],
                ));
                v_all += (1.0 + mutual) * var[i] * var[j];
                v_shell += (1.0 + mutual * same_shell) * var[i] * var[j];
            }
            (residual[i] * term, v_all, v_shell)
        })
        .collect();
    let nk = (total * k) as f64;
    let statistic = terms.iter().map(|t| t.0).sum::<f64>() / nk;
    let null_sd = terms.iter().map(|t| t.1).sum::<f64>().sqrt() / nk;
    let by_shell = pool.by_shell(shells, |s, points| {
        let inside = || (0..total).filter(|&i| pool.shell_of[i] == Some(s));
        let sum = inside().map(|i| terms[i].0).sum::<f64>();
        let sd = inside().map(|i| terms[i].2).sum::<f64>().sqrt();
        let z = if points > 1 && sd > 0.0 {
            sum / sd
        } else {
            f64::NAN
        };
        (sum / (points * k) as f64, z, sum / (nk * null_sd))
    });
    Ok(TwoSample {
        k,
        n_stars: n,
        n_reference: pool.n_reference,
        statistic,
        null_mean: 0.0,
        null_sd,
        z: statistic / null_sd,
        shells: by_shell,
        mass_weighted: true,
    })
}

/// Each point's null probability of being a star, π_i = c m_i / (c m_i + 1), with c such that
/// the π sum to `stars` (bisection in log c; the sum rises with c).
fn star_probabilities(m: &[f64], stars: f64) -> Vec<f64> {
    let mean = m.iter().sum::<f64>() / m.len() as f64;
    let pi = |log_c: f64| {
        m.iter()
            .map(move |&x| {
                let odds = log_c.exp() * x / mean;
                odds / (odds + 1.0)
            })
            .collect::<Vec<f64>>()
    };
    let (mut lo, mut hi) = (-60.0f64, 60.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if pi(mid).iter().sum::<f64>() < stars {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    pi(0.5 * (lo + hi))
}

/// The pooled points of a two-sample statistic and their neighbour graph: rows `0..n_stars`
/// stars, the rest reference points.
struct Pool {
    /// Stars pooled.
    n_stars: usize,
    /// Reference points pooled.
    n_reference: usize,
    /// Neighbours per point.
    k: usize,
    /// The stars' rows used.
    star_rows: Vec<usize>,
    /// The reference's rows used.
    reference_rows: Vec<usize>,
    /// Each pooled point's k nearest others (row-major).
    neighbours: Vec<u32>,
    /// Each pooled point's shell, where shells are asked for.
    shell_of: Vec<Option<usize>>,
    /// Number of shells (0 when none are asked for).
    n_shells: usize,
}

impl Pool {
    /// Checks the inputs, takes seeded subsets of at most `max_per_sample` of each sample (of
    /// equal size when `balance`) and builds the neighbour graph in coordinates standardised
    /// by the reference ([`Scales`]).
    fn new(
        stars: PhaseSpace<'_>,
        reference: PhaseSpace<'_>,
        config: &TwoSampleConfig,
        shells: Option<&ShellConfig>,
        balance: bool,
    ) -> Result<Pool, FidelityError> {
        stars.check("stars")?;
        reference.check("reference")?;
        if let Some(sc) = shells {
            sc.check()?;
        }
        let k = config.k;
        if k == 0 {
            return Err(FidelityError::Config(
                "two-sample k = 0 must be >= 1".into(),
            ));
        }
        for (what, set) in [("stars", stars), ("reference", reference)] {
            if set.len() < k + 1 {
                return Err(FidelityError::TooFew {
                    what: what.into(),
                    have: set.len(),
                    need: k + 1,
                });
            }
        }
        let (n_stars, n_reference) = if balance {
            let n = stars.len().min(reference.len()).min(config.max_per_sample);
            (n, n)
        } else {
            let cap = |set: PhaseSpace<'_>| set.len().min(config.max_per_sample);
            (cap(stars), cap(reference))
        };
        let scales = Scales::of(reference)?;
        let star_rows = subsample(stars.len(), n_stars, mix(config.seed, 1));
        let reference_rows = subsample(reference.len(), n_reference, mix(config.seed, 2));
        let mut pooled = scales.points(stars, &star_rows);
        pooled.extend(scales.points(reference, &reference_rows));
        let shell_of: Vec<Option<usize>> = match shells {
            Some(sc) => star_rows
                .iter()
                .map(|&i| stars.position[i])
                .chain(reference_rows.iter().map(|&i| reference.position[i]))
                .map(|x| sc.index(radius(x)))
                .collect(),
            None => vec![None; pooled.len()],
        };
        Ok(Pool {
            n_stars,
            n_reference,
            k,
            neighbours: neighbour_graph(&pooled, k)?,
            star_rows,
            reference_rows,
            shell_of,
            n_shells: shells.map_or(0, |sc| sc.n_shells),
        })
    }

    /// Pooled points.
    fn total(&self) -> usize {
        self.n_stars + self.n_reference
    }

    /// The figures of each shell with points: `figures(shell, points)` gives its statistic,
    /// its own z and its part of the whole z.
    fn by_shell(
        &self,
        shells: Option<&ShellConfig>,
        figures: impl Fn(usize, usize) -> (f64, f64, f64),
    ) -> Vec<ShellTwoSample> {
        let Some(sc) = shells else {
            return Vec::new();
        };
        let in_shell = |s: usize, from: std::ops::Range<usize>| {
            from.filter(|&i| self.shell_of[i] == Some(s)).count()
        };
        (0..sc.n_shells)
            .filter_map(|s| {
                let (n_stars, n_reference) = (
                    in_shell(s, 0..self.n_stars),
                    in_shell(s, self.n_stars..self.total()),
                );
                let points = n_stars + n_reference;
                (points > 0).then(|| {
                    let (statistic, z, z_part) = figures(s, points);
                    ShellTwoSample {
                        r_mid: sc.mid(s),
                        n_stars,
                        n_reference,
                        statistic,
                        z,
                        z_part,
                    }
                })
            })
            .collect()
    }

    /// Counts the neighbours sharing their point's label, over all points and each shell's.
    fn same_counts(&self, labels: &[bool]) -> SameCounts {
        let per_point: Vec<usize> = self
            .neighbours
            .par_chunks(self.k)
            .enumerate()
            .map(|(i, nb)| {
                nb.iter()
                    .filter(|&&j| labels[j as usize] == labels[i])
                    .count()
            })
            .collect();
        let mut shells = vec![0; self.n_shells];
        for (same, shell) in per_point.iter().zip(&self.shell_of) {
            if let Some(s) = shell {
                shells[*s] += same;
            }
        }
        SameCounts {
            all: per_point.iter().sum(),
            shells,
        }
    }
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
    let tree = kd_tree(points, &format!("{} pooled points", points.len()))?;
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
