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
//! The solver knows nothing of flows: anything implementing [`PhaseSpaceDensity`] (`density.rs`)
//! will do (the analytic Plummer sphere of `plummer.rs`, the trained flows of a run in
//! `flow_density.rs`). Its small dense linear algebra is in `linalg.rs`.
//! Units: positions kpc, velocities km/s, accelerations (km/s)²/kpc. See `docs/EOM.md`.

// Small dense linear algebra reads best with index loops.
#![allow(clippy::needless_range_loop)]

use anyhow::{bail, Context, Result};
use rand::RngExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::density::{LogFGrad, PhaseSpaceDensity};
use super::linalg::{solve_normal_equations, symmetric_eigen};
use crate::seed::{point_seed, stream, BOOTSTRAP};

/// Which form of the equation is fitted (see the module documentation and `docs/EOM.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// The equation divided by f: every velocity sample counts equally (default).
    #[default]
    Log,
    /// The equation in f itself: samples weighted by f², dominated by the velocity peak.
    Linear,
}

/// How the over-determined system is fitted (see the module documentation and `docs/EOM.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    rng: &mut rand::rngs::Xoshiro256PlusPlus,
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
                let mut rng = stream(sb[i], BOOTSTRAP);
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

    use rand::rngs::Xoshiro256PlusPlus;

    fn rng(seed: u64) -> Xoshiro256PlusPlus {
        stream(seed, 0)
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
