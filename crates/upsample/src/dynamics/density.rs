//! Phase-space densities as the acceleration solver sees them: the [`PhaseSpaceDensity`] trait
//! (log n(x), velocity draws at fixed x, ∇ log f), the [`LogFGrad`] of one (x, v) point and
//! [`Mixture`]s, weighted sums of densities (ensembles of flows, overlapping clusters), combined
//! by [`LogFGrad::mixture`]. Units: positions kpc, velocities km/s.

use anyhow::{bail, Context, Result};
use rand::{Rng, RngExt};

use crate::seed::{stream, MIXTURE_PICK};

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
pub(crate) fn velocities_per_point(x: &[[f64; 3]], v: &[[f64; 3]]) -> Result<usize> {
    if x.is_empty() {
        if v.is_empty() {
            return Ok(0);
        }
        bail!("{} velocities given for no position", v.len());
    }
    if !v.len().is_multiple_of(x.len()) {
        bail!(
            "{} velocities for {} positions: expected a whole number per position",
            v.len(),
            x.len()
        );
    }
    Ok(v.len() / x.len())
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
            let mut rng = stream(seeds[i], MIXTURE_PICK);
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
