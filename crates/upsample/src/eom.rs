//! Accelerations from a phase-space density by the steady-state collisionless Boltzmann equation.
//!
//! In a steady state, `v·∂f/∂x + a·∂f/∂v = 0` at every (x, v), with `a = -∇Φ`. At a position x,
//! with K velocities `v_n` drawn from `f(v | x)`, minimising `Σ_n w_n |s_n + a·g_n|²` over `a`
//! gives the 3×3 normal equations `M a + B = 0`, `M = Σ w g gᵀ`, `B = Σ w s g`, where
//!
//! - log form ([`Form::Log`], default): the equation divided by f, `g = ∇_v log f`,
//!   `s = v·∇_x log f`, `w = 1`;
//! - linear form ([`Form::Linear`]): `g = ∇_v f`, `s = v·∇_x f`, i.e. the log-form terms with
//!   `w = f²` (rescaled by the largest f at the point, which leaves `a` unchanged).
//!
//! The gradients of a trained model are noisy, and noise in the regressors `g` biases ordinary
//! least squares towards `a = 0` (attenuation): `M` is inflated by the noise covariance. The
//! default fit ([`Fit::Tls`]) removes it: total least squares on the columns `[g, c s]` scaled to
//! equal RMS, which is `(M − λ I) a + B = 0` with λ the smallest eigenvalue of the bordered matrix
//! `[[M, c B], [c Bᵀ, c² S]]`, `S = Σ w s²` (λ = 0 for an exact steady state, so exact densities
//! are solved exactly either way).
//!
//! The solver knows nothing of flows: anything implementing [`PhaseSpaceDensity`] will do (the
//! analytic Plummer sphere of [`crate::plummer`], the trained flows of a run). Sums of densities
//! (ensembles of flows, overlapping clusters) are [`Mixture`]s, combined by [`LogFGrad::mixture`].
//! Units: positions kpc, velocities km/s, accelerations (km/s)²/kpc. See `docs/EOM.md`.

// Small dense linear algebra reads best with index loops.
#![allow(clippy::needless_range_loop)]

use anyhow::{bail, Context, Result};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, RngExt};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::stars::{mix_seed, particle_rng};

/// log f and its gradients at one phase-space point (x kpc, v km/s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogFGrad {
    /// log f (natural log; f in any fixed units, e.g. Msun kpc⁻³ (km/s)⁻³); -inf where f = 0.
    pub log_f: f64,
    /// ∂ log f / ∂x, per kpc.
    pub d_dx: [f64; 3],
    /// ∂ log f / ∂v, per km/s.
    pub d_dv: [f64; 3],
}

impl LogFGrad {
    /// The value at a point where f = 0 (or is unknown): log f = -inf, gradients NaN.
    pub const EMPTY: LogFGrad = LogFGrad {
        log_f: f64::NEG_INFINITY,
        d_dx: [f64::NAN; 3],
        d_dv: [f64::NAN; 3],
    };

    /// The sum `f = Σ_i exp(log_weight_i) f_i` of weighted densities at one point: log f by
    /// log-sum-exp and `∇ log f = Σ_i w_i f_i ∇ log f_i / Σ_i w_i f_i`. Terms with f_i = 0 or
    /// weight 0 (log -inf) drop out; if all do, the result is [`LogFGrad::EMPTY`].
    ///
    /// This is the one place where densities are added: ensembles of flows (weights 1/E) and
    /// overlapping clusters (weights N_c) both go through it.
    pub fn mixture(terms: impl IntoIterator<Item = (f64, LogFGrad)>) -> LogFGrad {
        let terms: Vec<(f64, LogFGrad)> = terms
            .into_iter()
            .map(|(lw, g)| (lw + g.log_f, g))
            .filter(|(l, _)| *l != f64::NEG_INFINITY)
            .collect();
        if terms.iter().any(|(l, _)| l.is_nan()) {
            return LogFGrad {
                log_f: f64::NAN,
                ..LogFGrad::EMPTY
            };
        }
        let Some(max) = terms.iter().map(|(l, _)| *l).reduce(f64::max) else {
            return LogFGrad::EMPTY;
        };
        if max == f64::INFINITY {
            return LogFGrad {
                log_f: f64::INFINITY,
                ..LogFGrad::EMPTY
            };
        }
        let mut total = 0.0;
        let mut d_dx = [0.0; 3];
        let mut d_dv = [0.0; 3];
        for (l, g) in &terms {
            let w = (l - max).exp();
            total += w;
            for j in 0..3 {
                d_dx[j] += w * g.d_dx[j];
                d_dv[j] += w * g.d_dv[j];
            }
        }
        for j in 0..3 {
            d_dx[j] /= total;
            d_dv[j] /= total;
        }
        LogFGrad {
            log_f: max + total.ln(),
            d_dx,
            d_dv,
        }
    }
}

/// A phase-space density that can be sampled in v at fixed x and differentiated.
///
/// Positions are in kpc, velocities in km/s. A density may have no support at some positions
/// (a cell model outside its cells): there `log_density` is -inf, sampled velocities are NaN and
/// gradients are [`LogFGrad::EMPTY`]; the solver flags those points instead of failing.
pub trait PhaseSpaceDensity: Sync {
    /// log n(x) = log ∫ f(x, v) d³v at each position (same units as f times (km/s)³; -inf where
    /// the density has no support). Used to weigh the parts of a [`Mixture`].
    fn log_density(&self, x: &[[f64; 3]]) -> Result<Vec<f64>>;

    /// `k` velocities (km/s) drawn from f(v | x) at each position (kpc), the draws of point `i`
    /// seeded by `seeds[i]` alone (so results do not depend on batching); returns `x.len() * k`
    /// rows, point-major. NaN rows where the density has no support.
    fn sample_velocities(&self, x: &[[f64; 3]], k: usize, seeds: &[u64]) -> Result<Vec<[f64; 3]>>;

    /// log f and its gradients with respect to x (per kpc) and v (per km/s) at each pair
    /// (x_i, v): `v` holds `v.len() / x.len()` velocities per position, point-major (as
    /// returned by [`PhaseSpaceDensity::sample_velocities`]); returns one row per velocity.
    fn grad_log_f(&self, x: &[[f64; 3]], v: &[[f64; 3]]) -> Result<Vec<LogFGrad>>;
}

/// Velocities per position of a point-major (x, v) batch, checked.
pub fn velocities_per_point(x: &[[f64; 3]], v: &[[f64; 3]]) -> Result<usize> {
    if x.is_empty() {
        if v.is_empty() {
            return Ok(0);
        }
        bail!("{} velocities given for no position", v.len());
    }
    if v.len() % x.len() != 0 {
        bail!(
            "{} velocities for {} positions: expected a whole number per position",
            v.len(),
            x.len()
        );
    }
    Ok(v.len() / x.len())
}

/// A random seed for stream `stream` of the query point with seed `seed` (SplitMix64-mixed).
pub fn sub_seed(seed: u64, stream: u64) -> u64 {
    mix_seed(seed, stream)
}

/// A weighted sum of densities `f = Σ_c w_c f_c` (weights >= 0, e.g. N_c Msun for clusters and
/// 1/E for the members of an ensemble). Velocities at x are drawn from the mixture: component c
/// with probability ∝ w_c n_c(x), then v from f_c(v | x).
///
/// Components whose weight at x, w_c n_c(x), is below exp(-[`Mixture::PRUNE_NATS`]) times the
/// largest are not evaluated there (their share of f is negligible unless their velocity
/// distribution is more than e^40 times denser at the sampled velocities).
pub struct Mixture<D> {
    /// (weight, density) pairs; weight in the units that make Σ w_c f_c the wanted f.
    pub components: Vec<(f64, D)>,
}

impl<D> Mixture<D> {
    /// Components lighter than this many e-folds below the heaviest at x are skipped.
    pub const PRUNE_NATS: f64 = 40.0;
}

impl<D: PhaseSpaceDensity> Mixture<D> {
    /// log(w_c n_c(x)) for each component c (outer) and point (inner).
    fn log_weights(&self, x: &[[f64; 3]]) -> Result<Vec<Vec<f64>>> {
        self.components
            .iter()
            .enumerate()
            .map(|(c, (w, d))| {
                if !(*w >= 0.0 && w.is_finite()) {
                    bail!("mixture component {c}: weight {w} (expected finite and >= 0)");
                }
                if *w == 0.0 {
                    return Ok(vec![f64::NEG_INFINITY; x.len()]);
                }
                let ln = d
                    .log_density(x)
                    .with_context(|| format!("log density of mixture component {c}"))?;
                Ok(ln.into_iter().map(|l| l + w.ln()).collect())
            })
            .collect()
    }
}

impl<D: PhaseSpaceDensity> PhaseSpaceDensity for Mixture<D> {
    fn log_density(&self, x: &[[f64; 3]]) -> Result<Vec<f64>> {
        let lw = self.log_weights(x)?;
        Ok((0..x.len())
            .map(|i| {
                LogFGrad::mixture(lw.iter().map(|l| {
                    (
                        l[i],
                        LogFGrad {
                            log_f: 0.0,
                            d_dx: [0.0; 3],
                            d_dv: [0.0; 3],
                        },
                    )
                }))
                .log_f
            })
            .collect())
    }

    fn sample_velocities(&self, x: &[[f64; 3]], k: usize, seeds: &[u64]) -> Result<Vec<[f64; 3]>> {
        if seeds.len() != x.len() {
            bail!("{} seeds for {} positions", seeds.len(), x.len());
        }
        let lw = self.log_weights(x)?;
        let nc = self.components.len();
        // Per component: (output row, position, seed) of each draw assigned to it.
        let mut jobs: Vec<Vec<(usize, [f64; 3], u64)>> = vec![Vec::new(); nc];
        let mut out = vec![[f64::NAN; 3]; x.len() * k];
        for (i, xi) in x.iter().enumerate() {
            let max = lw.iter().map(|l| l[i]).fold(f64::NEG_INFINITY, f64::max);
            if !max.is_finite() {
                continue; // no support (NaN rows) or broken density (NaN rows too)
            }
            let p: Vec<f64> = lw.iter().map(|l| (l[i] - max).exp()).collect();
            let total: f64 = p.iter().sum();
            let mut rng = particle_rng(seeds[i], 0x6d69_7874); // "mixt"
            for j in 0..k {
                let u = rng.random::<f64>() * total;
                let c = pick(&p, u);
                jobs[c].push((i * k + j, *xi, rng.next_u64()));
            }
        }
        for (c, job) in jobs.iter().enumerate() {
            if job.is_empty() {
                continue;
            }
            let xs: Vec<[f64; 3]> = job.iter().map(|j| j.1).collect();
            let ss: Vec<u64> = job.iter().map(|j| j.2).collect();
            let v = self.components[c]
                .1
                .sample_velocities(&xs, 1, &ss)
                .with_context(|| format!("sampling velocities of mixture component {c}"))?;
            for (row, vj) in job.iter().map(|j| j.0).zip(v) {
                out[row] = vj;
            }
        }
        Ok(out)
    }

    fn grad_log_f(&self, x: &[[f64; 3]], v: &[[f64; 3]]) -> Result<Vec<LogFGrad>> {
        let k = velocities_per_point(x, v)?;
        let lw = self.log_weights(x)?;
        let mut parts: Vec<Vec<(f64, LogFGrad)>> = vec![Vec::new(); v.len()];
        for (c, (w, d)) in self.components.iter().enumerate() {
            let keep: Vec<usize> = (0..x.len())
                .filter(|&i| {
                    let max = lw.iter().map(|l| l[i]).fold(f64::NEG_INFINITY, f64::max);
                    lw[c][i] > f64::NEG_INFINITY && lw[c][i] >= max - Self::PRUNE_NATS
                })
                .collect();
            if keep.is_empty() {
                continue;
            }
            let xs: Vec<[f64; 3]> = keep.iter().map(|&i| x[i]).collect();
            let vs: Vec<[f64; 3]> = keep
                .iter()
                .flat_map(|&i| v[i * k..(i + 1) * k].iter().copied())
                .collect();
            let g = d
                .grad_log_f(&xs, &vs)
                .with_context(|| format!("gradients of mixture component {c}"))?;
            if g.len() != vs.len() {
                bail!(
                    "mixture component {c} returned {} gradients for {} velocities",
                    g.len(),
                    vs.len()
                );
            }
            for (n, &i) in keep.iter().enumerate() {
                for j in 0..k {
                    parts[i * k + j].push((w.ln(), g[n * k + j]));
                }
            }
        }
        Ok(parts.into_iter().map(LogFGrad::mixture).collect())
    }
}

/// The index c with Σ_{j<c} p_j <= u < Σ_{j<=c} p_j among positive p (rounding: the last positive).
fn pick(p: &[f64], u: f64) -> usize {
    let mut acc = 0.0;
    let mut last = 0;
    for (c, &pc) in p.iter().enumerate() {
        if pc > 0.0 {
            acc += pc;
            last = c;
            if u < acc {
                return c;
            }
        }
    }
    last
}

/// Which form of the equation is fitted (see the module documentation and `docs/EOM.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// The equation divided by f: every velocity sample counts equally (default).
    #[default]
    Log,
    /// The equation in f itself: samples weighted by f², dominated by the velocity peak.
    Linear,
}

/// How the over-determined system is fitted (see the module documentation and `docs/EOM.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Errors-in-variables (total least squares, columns scaled to equal RMS):
    /// `(M − λ I) a + B = 0`. Unbiased when the model's gradients are noisy (default).
    #[default]
    Tls,
    /// Ordinary least squares, `M a + B = 0`: biased towards `a = 0` by noise in `∇_v log f`.
    Ols,
}

/// Settings of the solver.
#[derive(Debug, Clone, Serialize)]
pub struct EomOptions {
    /// Velocity samples per position (K).
    pub k: usize,
    /// Random seed; point `i` draws from its own stream (seed, i).
    pub seed: u64,
    /// Form of the equation.
    pub form: Form,
    /// How the system is fitted.
    pub fit: Fit,
    /// Bootstrap resamples of the K samples per point for the error estimate (0: none).
    pub bootstrap: usize,
    /// Largest accepted condition number of M (eigenvalue ratio); above it the acceleration is
    /// NaN and the point flagged [`Status::IllConditioned`].
    pub max_condition: f64,
    /// Positions evaluated per batch (N·K velocities go through the density at once).
    pub batch_points: usize,
}

impl Default for EomOptions {
    fn default() -> Self {
        EomOptions {
            k: 128,
            seed: 1,
            form: Form::Log,
            fit: Fit::Tls,
            bootstrap: 100,
            max_condition: 1e6,
            batch_points: 1024,
        }
    }
}

impl EomOptions {
    /// Checks the settings; names the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.k < 3 {
            bail!(
                "k (velocity samples per point) must be >= 3, got {}",
                self.k
            );
        }
        if self.bootstrap == 1 {
            bail!("bootstrap must be 0 (none) or >= 2 resamples, got 1");
        }
        if self.max_condition.is_nan() || self.max_condition <= 1.0 {
            bail!("max_condition must be > 1, got {}", self.max_condition);
        }
        if self.batch_points == 0 {
            bail!("batch_points must be >= 1");
        }
        Ok(())
    }
}

/// Outcome of the solve at one position (stored as an integer flag: the discriminant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[repr(u32)]
pub enum Status {
    /// Solved.
    Ok = 0,
    /// M is singular or its condition number exceeds the limit: the samples do not constrain
    /// every direction of a (e.g. f does not depend on some velocity direction). NaN result.
    IllConditioned = 1,
    /// Fewer than 3 samples with finite log f and gradients (e.g. outside every cell). NaN result.
    NoDensity = 2,
}

impl Status {
    /// The integer flag written to outputs.
    pub fn flag(self) -> u32 {
        self as u32
    }
}

/// The acceleration at one position and its diagnostics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Acceleration {
    /// a = -∇Φ, (km/s)²/kpc; NaN unless `status` is [`Status::Ok`].
    pub a: [f64; 3],
    /// Bootstrap standard deviation of each component, (km/s)²/kpc (NaN without bootstrap).
    pub error: [f64; 3],
    /// Velocity samples used (finite log f and gradients).
    pub samples: usize,
    /// Condition number of the matrix inverted: M, or M − λ I with [`Fit::Tls`] (largest /
    /// smallest eigenvalue; inf if singular).
    pub condition: f64,
    /// Relative residual `sqrt(Σ w (s + a·g)²) / sqrt(Σ w s²)` of the equation at the solution
    /// (0 for an exact steady state; near 1 means a explains little of the streaming term).
    pub residual: f64,
    /// Outcome.
    pub status: Status,
}

/// One velocity sample's terms of the equation `s + a·g = 0` and its least-squares weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Term {
    /// Weight (1 in the log form, (f / f_max)² in the linear form).
    pub w: f64,
    /// Streaming term v·∇_x log f, (km/s)/kpc.
    pub s: f64,
    /// ∇_v log f, per km/s.
    pub g: [f64; 3],
}

/// The equation terms of the samples of one point in the given form; samples with non-finite
/// values are left out.
pub fn terms(grads: &[LogFGrad], v: &[[f64; 3]], form: Form) -> Vec<Term> {
    let finite = |g: &LogFGrad, v: &[f64; 3]| {
        g.log_f.is_finite() && g.d_dx.iter().chain(&g.d_dv).chain(v).all(|a| a.is_finite())
    };
    let max_log = grads
        .iter()
        .zip(v)
        .filter(|(g, v)| finite(g, v))
        .map(|(g, _)| g.log_f)
        .fold(f64::NEG_INFINITY, f64::max);
    grads
        .iter()
        .zip(v)
        .filter(|(g, v)| finite(g, v))
        .map(|(g, v)| Term {
            w: match form {
                Form::Log => 1.0,
                Form::Linear => (2.0 * (g.log_f - max_log)).exp(),
            },
            s: dot(v, &g.d_dx),
            g: g.d_dv,
        })
        .collect()
}

/// The sums of the least-squares problem over a point's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormalEquations {
    /// M = Σ w g gᵀ, (km/s)⁻².
    pub m: [[f64; 3]; 3],
    /// B = Σ w s g, kpc⁻¹.
    pub b: [f64; 3],
    /// S = Σ w s², (km/s)² kpc⁻².
    pub s: f64,
}

/// The sums M, B and S over the samples `idx` of `terms`.
pub fn normal_equations(terms: &[Term], idx: impl IntoIterator<Item = usize>) -> NormalEquations {
    let mut ne = NormalEquations {
        m: [[0.0; 3]; 3],
        b: [0.0; 3],
        s: 0.0,
    };
    for n in idx {
        let t = &terms[n];
        ne.s += t.w * t.s * t.s;
        for i in 0..3 {
            ne.b[i] += t.w * t.s * t.g[i];
            for j in 0..3 {
                ne.m[i][j] += t.w * t.g[i] * t.g[j];
            }
        }
    }
    ne
}

/// The noise power λ that the errors-in-variables fit removes from M: the smallest eigenvalue
/// of `[[M, c B], [c Bᵀ, c² S]]` with `c² = tr M / S` (the columns g and c·s at equal RMS).
/// Zero when the samples satisfy the equation exactly; `0 ≤ λ ≤ λ_min(M)` (interlacing).
pub fn noise_power(ne: &NormalEquations) -> f64 {
    let tr = ne.m[0][0] + ne.m[1][1] + ne.m[2][2];
    if !(ne.s > 0.0 && tr > 0.0) {
        return 0.0;
    }
    let c = (tr / ne.s).sqrt();
    let mut big = [[0.0; 4]; 4];
    for i in 0..3 {
        for j in 0..3 {
            big[i][j] = ne.m[i][j];
        }
        big[i][3] = c * ne.b[i];
        big[3][i] = c * ne.b[i];
    }
    big[3][3] = tr; // c² S
    let (vals, _) = symmetric_eigen(&big);
    vals[0].max(0.0)
}

/// Solves the normal equations of one point with `fit`: (a, condition number of the matrix
/// inverted), as [`solve_normal_equations`].
pub fn solve_fit(ne: &NormalEquations, fit: Fit, max_condition: f64) -> ([f64; 3], f64) {
    let mut m = ne.m;
    if fit == Fit::Tls {
        let lambda = noise_power(ne);
        for i in 0..3 {
            m[i][i] -= lambda;
        }
    }
    solve_normal_equations(&m, &ne.b, max_condition)
}

/// Eigen-decomposition of a small symmetric N×N matrix by cyclic Jacobi rotations:
/// (eigenvalues, eigenvectors as columns), eigenvalues in ascending order. Accurate to rounding
/// for any symmetric input (no closed-form characteristic polynomial).
pub fn symmetric_eigen<const N: usize>(m: &[[f64; N]; N]) -> ([f64; N], [[f64; N]; N]) {
    let mut a = *m;
    let mut v = [[0.0; N]; N];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _sweep in 0..64 {
        let mut off = 0.0;
        let mut diag = 0.0;
        for p in 0..N {
            diag += a[p][p].powi(2);
            for q in p + 1..N {
                off += a[p][q].powi(2);
            }
        }
        if off <= 1e-36 * diag || off == 0.0 {
            break;
        }
        for (p, q) in (0..N).flat_map(|p| (p + 1..N).map(move |q| (p, q))) {
            if a[p][q] == 0.0 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // A <- Jᵀ A J with J the rotation in the (p, q) plane.
            for r in 0..N {
                let arp = a[r][p];
                let arq = a[r][q];
                a[r][p] = c * arp - s * arq;
                a[r][q] = s * arp + c * arq;
            }
            for r in 0..N {
                let apr = a[p][r];
                let aqr = a[q][r];
                a[p][r] = c * apr - s * aqr;
                a[q][r] = s * apr + c * aqr;
            }
            for r in 0..N {
                let vrp = v[r][p];
                let vrq = v[r][q];
                v[r][p] = c * vrp - s * vrq;
                v[r][q] = s * vrp + c * vrq;
            }
        }
    }
    let mut order = [0; N];
    for (i, o) in order.iter_mut().enumerate() {
        *o = i;
    }
    order.sort_by(|&i, &j| a[i][i].total_cmp(&a[j][j]));
    let mut vals = [0.0; N];
    let mut vecs = [[0.0; N]; N];
    for (col, &o) in order.iter().enumerate() {
        vals[col] = a[o][o];
        for r in 0..N {
            vecs[r][col] = v[r][o];
        }
    }
    (vals, vecs)
}

/// Solves M a = -B for symmetric positive semi-definite M by eigen-decomposition: (a, condition
/// number). a is NaN when the condition number (λ_max / λ_min, inf when λ_min <= 0) exceeds
/// `max_condition` or M is not finite.
pub fn solve_normal_equations(
    m: &[[f64; 3]; 3],
    b: &[f64; 3],
    max_condition: f64,
) -> ([f64; 3], f64) {
    if !m.iter().flatten().chain(b).all(|x| x.is_finite()) {
        return ([f64::NAN; 3], f64::NAN);
    }
    let (vals, vecs) = symmetric_eigen(m);
    let cond = if vals[0] > 0.0 {
        vals[2] / vals[0]
    } else {
        f64::INFINITY
    };
    if cond.is_nan() || cond > max_condition {
        return ([f64::NAN; 3], cond);
    }
    let mut a = [0.0; 3];
    for k in 0..3 {
        let proj = (0..3).map(|r| vecs[r][k] * b[r]).sum::<f64>() / vals[k];
        for r in 0..3 {
            a[r] -= vecs[r][k] * proj;
        }
    }
    (a, cond)
}

fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Relative residual `sqrt(Σ w (s + a·g)²) / sqrt(Σ w s²)` of the equation at `a`.
pub fn relative_residual(terms: &[Term], a: &[f64; 3]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for t in terms {
        let r = t.s + dot(a, &t.g);
        num += t.w * r * r;
        den += t.w * t.s * t.s;
    }
    if num == 0.0 {
        0.0
    } else {
        (num / den).sqrt()
    }
}

/// Solves one point from its samples' terms: acceleration, diagnostics and (with `bootstrap`
/// ≥ 2) the bootstrap standard deviation over resamples of the terms, drawn from `rng`.
pub fn solve_point(
    terms: &[Term],
    fit: Fit,
    bootstrap: usize,
    max_condition: f64,
    rng: &mut Xoshiro256PlusPlus,
) -> Acceleration {
    let n = terms.len();
    let nan3 = [f64::NAN; 3];
    if n < 3 {
        return Acceleration {
            a: nan3,
            error: nan3,
            samples: n,
            condition: f64::NAN,
            residual: f64::NAN,
            status: Status::NoDensity,
        };
    }
    let (a, condition) = solve_fit(&normal_equations(terms, 0..n), fit, max_condition);
    if !a.iter().all(|x| x.is_finite()) {
        return Acceleration {
            a: nan3,
            error: nan3,
            samples: n,
            condition,
            residual: f64::NAN,
            status: Status::IllConditioned,
        };
    }
    let residual = relative_residual(terms, &a);
    let error = if bootstrap >= 2 {
        let mut sum = [0.0; 3];
        let mut sum2 = [0.0; 3];
        let mut good = 0usize;
        for _ in 0..bootstrap {
            let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            let (ab, _) = solve_fit(&normal_equations(terms, idx), fit, max_condition);
            if ab.iter().all(|x| x.is_finite()) {
                good += 1;
                for j in 0..3 {
                    // Centred on the full-sample solution for numerical stability.
                    let d = ab[j] - a[j];
                    sum[j] += d;
                    sum2[j] += d * d;
                }
            }
        }
        if good >= 2 {
            let g = good as f64;
            let mut e = [0.0; 3];
            for j in 0..3 {
                e[j] = ((sum2[j] - sum[j] * sum[j] / g) / (g - 1.0))
                    .max(0.0)
                    .sqrt();
            }
            e
        } else {
            nan3
        }
    } else {
        nan3
    };
    Acceleration {
        a,
        error,
        samples: n,
        condition,
        residual,
        status: Status::Ok,
    }
}

/// The seed of query point `index` of a run with `seed`.
pub fn point_seed(seed: u64, index: usize) -> u64 {
    sub_seed(seed, index as u64)
}

/// Accelerations at positions `x` (kpc) from `density`; point `i` uses its own random stream
/// ([`point_seed`]), so results do not depend on the batch size or the order of points.
/// `progress(done, total)` is called after each batch.
pub fn accelerations<D: PhaseSpaceDensity + ?Sized>(
    density: &D,
    x: &[[f64; 3]],
    opts: &EomOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Acceleration>> {
    let seeds: Vec<u64> = (0..x.len()).map(|i| point_seed(opts.seed, i)).collect();
    accelerations_seeded(density, x, &seeds, opts, progress)
}

/// [`accelerations`] with explicit per-point seeds (equal seeds give common random numbers,
/// e.g. for the finite-difference stencil of [`poisson_density`]).
pub fn accelerations_seeded<D: PhaseSpaceDensity + ?Sized>(
    density: &D,
    x: &[[f64; 3]],
    seeds: &[u64],
    opts: &EomOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Acceleration>> {
    opts.validate()?;
    if seeds.len() != x.len() {
        bail!("{} seeds for {} positions", seeds.len(), x.len());
    }
    let k = opts.k;
    let mut out = Vec::with_capacity(x.len());
    for (xb, sb) in x
        .chunks(opts.batch_points)
        .zip(seeds.chunks(opts.batch_points))
    {
        let v = density
            .sample_velocities(xb, k, sb)
            .context("drawing velocities from the density")?;
        if v.len() != xb.len() * k {
            bail!(
                "the density returned {} velocities for {} positions x {k}",
                v.len(),
                xb.len()
            );
        }
        let g = density
            .grad_log_f(xb, &v)
            .context("evaluating the gradients of log f")?;
        if g.len() != v.len() {
            bail!(
                "the density returned {} gradients for {} velocities",
                g.len(),
                v.len()
            );
        }
        let solved: Vec<Acceleration> = (0..xb.len())
            .into_par_iter()
            .map(|i| {
                let t = terms(&g[i * k..(i + 1) * k], &v[i * k..(i + 1) * k], opts.form);
                let mut rng = particle_rng(sb[i], 0x626f_6f74); // "boot"
                solve_point(&t, opts.fit, opts.bootstrap, opts.max_condition, &mut rng)
            })
            .collect();
        out.extend(solved);
        progress(out.len(), x.len());
    }
    Ok(out)
}

/// Mass density ρ = -∇·a / (4πG) in Msun/kpc³ at each position, by central finite differences
/// of the solved accelerations with step `h` kpc (6 extra solves per point; the stencil shares
/// the point's random stream, so sampling noise largely cancels in the differences). NaN where
/// any stencil point failed. Truncation error O(h²); noise grows as 1/h.
pub fn poisson_density<D: PhaseSpaceDensity + ?Sized>(
    density: &D,
    x: &[[f64; 3]],
    h: f64,
    opts: &EomOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f64>> {
    if !(h > 0.0 && h.is_finite()) {
        bail!("finite-difference step must be > 0 kpc, got {h}");
    }
    let mut xs = Vec::with_capacity(6 * x.len());
    let mut seeds = Vec::with_capacity(6 * x.len());
    for (i, p) in x.iter().enumerate() {
        for d in 0..3 {
            for sgn in [1.0, -1.0] {
                let mut q = *p;
                q[d] += sgn * h;
                xs.push(q);
                seeds.push(point_seed(opts.seed, i));
            }
        }
    }
    let o = EomOptions {
        bootstrap: 0,
        ..opts.clone()
    };
    let acc = accelerations_seeded(density, &xs, &seeds, &o, progress)?;
    Ok(acc
        .chunks_exact(6)
        .map(|s| {
            let div: f64 = (0..3)
                .map(|d| (s[2 * d].a[d] - s[2 * d + 1].a[d]) / (2.0 * h))
                .sum();
            -div / (4.0 * std::f64::consts::PI * snapio::G_KPC_KMS2_MSUN)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> Xoshiro256PlusPlus {
        particle_rng(seed, 0)
    }

    fn eigen_reconstructs<const N: usize>(seed: u64) {
        let mut r = rng(seed);
        for _ in 0..200 {
            let mut m = [[0.0; N]; N];
            for i in 0..N {
                for j in 0..=i {
                    let x = r.random::<f64>() * 2.0 - 1.0;
                    m[i][j] = x;
                    m[j][i] = x;
                }
            }
            let (vals, vecs) = symmetric_eigen(&m);
            assert!(vals.windows(2).all(|w| w[0] <= w[1]));
            for i in 0..N {
                for j in 0..N {
                    let rec: f64 = (0..N).map(|k| vecs[i][k] * vals[k] * vecs[j][k]).sum();
                    assert!((rec - m[i][j]).abs() < 1e-13, "{rec} vs {}", m[i][j]);
                    let orth: f64 = (0..N).map(|k| vecs[k][i] * vecs[k][j]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((orth - want).abs() < 1e-13);
                }
            }
        }
    }

    #[test]
    fn eigen_reconstructs_3x3_and_4x4_matrices() {
        eigen_reconstructs::<3>(3);
        eigen_reconstructs::<4>(4);
    }

    fn normal(r: &mut Xoshiro256PlusPlus) -> f64 {
        rand_distr::Distribution::sample(&rand_distr::StandardNormal, r)
    }

    #[test]
    fn tls_removes_the_attenuation_of_noisy_gradients() {
        // g0 ~ N(0, I), s0 = -a·g0 with |a|² = 3 = E|g0|², so both columns have the same RMS;
        // then noise σ on every column. OLS shrinks a by 1/(1 + σ²) (regression dilution); the
        // errors-in-variables fit does not.
        let a_true = [-1.0, 1.0, 1.0];
        let sigma = 0.5;
        let mut r = rng(21);
        let terms: Vec<Term> = (0..40_000)
            .map(|_| {
                let g0 = [normal(&mut r), normal(&mut r), normal(&mut r)];
                let s0 = -dot(&a_true, &g0);
                Term {
                    w: 1.0,
                    s: s0 + sigma * normal(&mut r),
                    g: [
                        g0[0] + sigma * normal(&mut r),
                        g0[1] + sigma * normal(&mut r),
                        g0[2] + sigma * normal(&mut r),
                    ],
                }
            })
            .collect();
        let ols = solve_point(&terms, Fit::Ols, 0, 1e6, &mut rng(1));
        let tls = solve_point(&terms, Fit::Tls, 0, 1e6, &mut rng(1));
        let dilution = 1.0 / (1.0 + sigma * sigma);
        for j in 0..3 {
            assert!(
                (ols.a[j] / a_true[j] - dilution).abs() < 0.03,
                "OLS component {j}: {} vs {}",
                ols.a[j],
                a_true[j] * dilution
            );
            assert!(
                (tls.a[j] / a_true[j] - 1.0).abs() < 0.05,
                "TLS component {j}: {} vs {}",
                tls.a[j],
                a_true[j]
            );
        }
        // The noise power it removed is the noise variance per sample (σ² on each column).
        let ne = normal_equations(&terms, 0..terms.len());
        let lambda = noise_power(&ne) / terms.len() as f64;
        assert!(
            (lambda / (sigma * sigma) - 1.0).abs() < 0.1,
            "λ/K = {lambda}"
        );
    }

    #[test]
    fn solve_flags_singular_and_ill_conditioned_matrices() {
        let m = [[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]];
        let (a, c) = solve_normal_equations(&m, &[1.0, 1.0, 0.0], 1e6);
        assert!(a.iter().all(|x| x.is_nan()) && c.is_infinite());
        let m = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1e-7]];
        let (a, c) = solve_normal_equations(&m, &[1.0, 1.0, 1.0], 1e6);
        assert!(a[0].is_nan() && (c - 1e7).abs() < 1e-3);
        let (a, c) = solve_normal_equations(&m, &[1.0, 2.0, 1e-7], 1e8);
        assert!((c - 1e7).abs() < 1e-3);
        assert!((a[0] + 1.0).abs() < 1e-12 && (a[1] + 2.0).abs() < 1e-12);
        assert!((a[2] + 1.0).abs() < 1e-8);
    }

    #[test]
    fn mixture_of_gradients_matches_the_sum_of_densities() {
        // f = 2 exp(l1) + 0.5 exp(l2), with l linear in x and v: compare with differences.
        let l1 = |x: f64, v: f64| -1.0 + 0.3 * x - 0.2 * v * v;
        let l2 = |x: f64, v: f64| 0.5 - 0.7 * x * x + 0.1 * v;
        let total = |x: f64, v: f64| (2.0 * l1(x, v).exp() + 0.5 * l2(x, v).exp()).ln();
        let (x, v) = (0.4, -1.3);
        let g = |l: f64, dx: f64, dv: f64| LogFGrad {
            log_f: l,
            d_dx: [dx, 0.0, 0.0],
            d_dv: [dv, 0.0, 0.0],
        };
        let m = LogFGrad::mixture([
            (2f64.ln(), g(l1(x, v), 0.3, -0.4 * v)),
            (0.5f64.ln(), g(l2(x, v), -1.4 * x, 0.1)),
            (0.0, LogFGrad::EMPTY),
        ]);
        let h = 1e-6;
        assert!((m.log_f - total(x, v)).abs() < 1e-14);
        let dx = (total(x + h, v) - total(x - h, v)) / (2.0 * h);
        let dv = (total(x, v + h) - total(x, v - h)) / (2.0 * h);
        assert!((m.d_dx[0] - dx).abs() < 1e-8, "{} vs {dx}", m.d_dx[0]);
        assert!((m.d_dv[0] - dv).abs() < 1e-8, "{} vs {dv}", m.d_dv[0]);
        // Huge log values do not overflow; nothing left gives EMPTY.
        let big = LogFGrad::mixture([(0.0, g(1e4, 1.0, 2.0)), (0.0, g(1e4, 3.0, 4.0))]);
        assert!((big.log_f - (1e4 + 2f64.ln())).abs() < 1e-9 && big.d_dx[0] == 2.0);
        let none = LogFGrad::mixture([(0.0, LogFGrad::EMPTY)]);
        assert!(none.log_f == f64::NEG_INFINITY && none.d_dv[0].is_nan());
    }

    #[test]
    fn bootstrap_error_of_exact_terms_is_zero_and_noise_is_measured() {
        // Terms with s = -a·g exactly: the solution is a and every resample agrees.
        let a_true = [-3.0, 1.5, 0.25];
        let mut r = rng(9);
        let mut gs = Vec::new();
        for _ in 0..200 {
            gs.push([
                r.random::<f64>() - 0.5,
                r.random::<f64>() - 0.5,
                r.random::<f64>() - 0.5,
            ]);
        }
        let exact: Vec<Term> = gs
            .iter()
            .map(|g| Term {
                w: 1.0,
                s: -dot(&a_true, g),
                g: *g,
            })
            .collect();
        for fit in [Fit::Ols, Fit::Tls] {
            let sol = solve_point(&exact, fit, 50, 1e6, &mut rng(1));
            assert_eq!(sol.status, Status::Ok);
            for j in 0..3 {
                assert!((sol.a[j] - a_true[j]).abs() < 1e-12, "{fit:?}");
                assert!(sol.error[j] < 1e-12, "{fit:?}");
            }
            assert!(sol.residual < 1e-12, "{fit:?}");
        }
        // Noisy s: the bootstrap spread matches the scatter over independent noise draws.
        let sigma = 0.05;
        let solve_noisy = |seed: u64, boot: usize| {
            let mut r = rng(seed);
            let t: Vec<Term> = exact
                .iter()
                .map(|t| {
                    let z: f64 =
                        rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut r);
                    Term {
                        s: t.s + sigma * z,
                        ..*t
                    }
                })
                .collect();
            solve_point(&t, Fit::Ols, boot, 1e6, &mut rng(seed + 1000))
        };
        let runs: Vec<Acceleration> = (0..300).map(|s| solve_noisy(100 + s, 0)).collect();
        let boot = solve_noisy(7, 400);
        for j in 0..3 {
            let mean = runs.iter().map(|r| r.a[j]).sum::<f64>() / runs.len() as f64;
            let sd = (runs.iter().map(|r| (r.a[j] - mean).powi(2)).sum::<f64>()
                / (runs.len() - 1) as f64)
                .sqrt();
            let ratio = boot.error[j] / sd;
            assert!(
                (0.7..1.4).contains(&ratio),
                "component {j}: bootstrap/true {ratio}"
            );
        }
        assert!(boot.residual > 0.0 && boot.residual < 1.0);
    }
}
