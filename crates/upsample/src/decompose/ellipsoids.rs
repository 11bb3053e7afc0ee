//! Two velocity ellipsoids in a radial shell: a rotating disc and a non-rotating spheroid, fitted
//! by expectation–maximisation. A particle's disc probability is its posterior under the fit.
//!
//! Why: the mirror (`components.rs`) calls "disc" only the prograde *excess* at each |ε|, so a
//! hot disc's counter-rotating tail and an equal share of its slow prograde stars are handed to
//! the spheroid. In galaxy (b)'s bulge region (σ_R ≈ 90 km/s beside a rotation of 125 km/s) the
//! mirror finds a third to a half of the true disc, and the spheroid's particles carry a mean
//! v_φ of ~20 km/s that their flow does not keep (docs/ACCURACY.md, 2026-12-03).
//!
//! Model, in a shell (velocities km/s, all Gaussian and axis-aligned):
//!
//! ```text
//! disc:      f     N(v_R; 0, σ_R) N(v_φ; V, σ_φ) N(v_z; 0, σ_z)      (cylindrical)
//! spheroid:  1 − f N(v_r; 0, s_r) N(v_θ; 0, s_θ) N(v_φ; 0, s_φ)      (spherical)
//! ```
//!
//! The spheroid's v_φ is symmetric about 0 (a non-rotating population, as in the mirror), the
//! disc's is centred on its rotation V. EM starts from the mirror's probabilities, so it refines
//! a split rather than inventing one, and the fit is kept only where the shell's mean v_φ is
//! significantly positive and the disc it finds is rotation-supported (V ≥ each of σ_R, σ_φ,
//! σ_z) and holds particles enough to be a population: a non-rotating galaxy, however
//! anisotropic, keeps the mirror's p ≈ 0. So does a slowly rotating spheroid: there EM carves a
//! "disc" out of the prograde tail, with σ_φ small but σ_R ≈ σ_z ≈ the spheroid's and V below
//! them (the rotating Plummer sample: V ≈ 8 km/s, σ_R ≈ σ_z ≈ 11 km/s; galaxy (b)'s disc:
//! V/σ_R = 1.1–8, σ_z/σ_R ≈ 0.6). Any p keeps the catalogue's total density f
//! (`components.rs`); a better p gives each component's flows a population they can represent.

use crate::fidelity::{cylindrical_velocity, spherical_velocity};

/// Fewest particles in a shell for a mixture fit (below it the mirror's p stands).
const MIN_SHELL: usize = 200;
/// Least significance of the shell's mean v_φ (in standard errors) for a mixture fit.
const MIN_ROTATION_Z: f64 = 3.0;
/// Fewest (effective) particles in the fitted disc for the fit to stand.
const MIN_DISC: f64 = 20.0;
/// Least dispersion of either ellipsoid, as a share of the shell's rms speed: keeps a
/// component from collapsing onto a handful of particles.
const SIGMA_FLOOR: f64 = 0.05;
/// Most EM iterations.
const MAX_ITER: usize = 300;
/// EM stops when the disc share moves less than this in an iteration.
const TOLERANCE: f64 = 1e-7;

/// The fitted mixture of one shell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ShellMixture {
    /// Share of the shell's weight in the disc, f (dimensionless, in (0, 1)).
    disc_share: f64,
    /// Mean rotation of the disc, V (km/s, > 0).
    rotation: f64,
    /// Disc dispersions (σ_R, σ_φ, σ_z), km/s.
    disc_sigma: [f64; 3],
    /// Spheroid dispersions (s_r, s_θ, s_φ), km/s.
    spheroid_sigma: [f64; 3],
}

/// Velocity components of a particle: cylindrical (v_R, v_φ, v_z) and spherical (v_r, v_θ, v_φ),
/// km/s.
fn components(x: [f64; 3], v: [f64; 3]) -> ([f64; 3], [f64; 3]) {
    let sph = spherical_velocity(x, v);
    ([cylindrical_velocity(x, v)[0], sph[2], v[2]], sph)
}

impl ShellMixture {
    /// Fits the mixture to the particles `rows` of a shell at `positions` (kpc) with
    /// `velocities` (km/s) and `weights` (None: one each), starting from the disc probabilities
    /// `start` (one per row). None where the shell holds no significant rotating disc (module
    /// doc): the caller keeps `start`.
    pub(crate) fn fit(
        rows: &[usize],
        positions: &[[f64; 3]],
        velocities: &[[f64; 3]],
        weights: Option<&[f64]>,
        start: &[f64],
    ) -> Option<Self> {
        if rows.len() < MIN_SHELL {
            return None;
        }
        let comps: Vec<([f64; 3], [f64; 3])> = rows
            .iter()
            .map(|&i| components(positions[i], velocities[i]))
            .collect();
        let w: Vec<f64> = rows
            .iter()
            .map(|&i| weights.map_or(1.0, |w| w[i]))
            .collect();
        let (sw, sw2) = w
            .iter()
            .fold((0.0, 0.0), |(a, b), &wi| (a + wi, b + wi * wi));
        if sw <= 0.0 {
            return None;
        }
        let n_eff = sw * sw / sw2;
        // Significance of the shell's net rotation.
        let mean_vphi = comps.iter().zip(&w).map(|(c, wi)| wi * c.0[1]).sum::<f64>() / sw;
        let var_vphi = comps
            .iter()
            .zip(&w)
            .map(|(c, wi)| wi * (c.0[1] - mean_vphi).powi(2))
            .sum::<f64>()
            / sw;
        if var_vphi <= 0.0 || mean_vphi / (var_vphi / n_eff).sqrt() < MIN_ROTATION_Z {
            return None;
        }
        let speed2 = velocities_mean_square(&comps, &w, sw);
        let floor = SIGMA_FLOOR * speed2.sqrt();
        let mut q = start.to_vec();
        let mut fit = None;
        for _ in 0..MAX_ITER {
            let next = Self::maximise(&comps, &w, &q, floor)?;
            let done = fit
                .as_ref()
                .is_some_and(|f: &ShellMixture| (f.disc_share - next.disc_share).abs() < TOLERANCE);
            let odds = next.log_odds_at_rest();
            for (qk, c) in q.iter_mut().zip(&comps) {
                *qk = next.posterior(odds, c.0, c.1);
            }
            fit = Some(next);
            if done {
                break;
            }
        }
        let fit = fit?;
        let hottest = fit.disc_sigma.iter().fold(0.0_f64, |a, &b| a.max(b));
        if fit.rotation < hottest || fit.disc_share * n_eff < MIN_DISC {
            return None;
        }
        Some(fit)
    }

    /// The M step: the mixture that maximises the likelihood given disc probabilities `q`.
    /// None when either component is empty.
    fn maximise(comps: &[([f64; 3], [f64; 3])], w: &[f64], q: &[f64], floor: f64) -> Option<Self> {
        let (mut wd, mut ws, mut vd) = (0.0, 0.0, 0.0);
        for ((c, wi), qk) in comps.iter().zip(w).zip(q) {
            wd += wi * qk;
            ws += wi * (1.0 - qk);
            vd += wi * qk * c.0[1];
        }
        if !(wd > 0.0 && ws > 0.0) {
            return None;
        }
        let rotation = vd / wd;
        let (mut d2, mut s2) = ([0.0; 3], [0.0; 3]);
        for ((c, wi), qk) in comps.iter().zip(w).zip(q) {
            let (cyl, sph) = c;
            let dev = [cyl[0], cyl[1] - rotation, cyl[2]];
            for k in 0..3 {
                d2[k] += wi * qk * dev[k] * dev[k];
                s2[k] += wi * (1.0 - qk) * sph[k] * sph[k];
            }
        }
        let sigma = |sum: f64, norm: f64| (sum / norm).sqrt().max(floor);
        Some(ShellMixture {
            disc_share: wd / (wd + ws),
            rotation,
            disc_sigma: d2.map(|s| sigma(s, wd)),
            spheroid_sigma: s2.map(|s| sigma(s, ws)),
        })
    }

    /// ln of the disc's over the spheroid's density at v = 0 with V = 0: ln f − ln(1 − f) minus
    /// the disc's Σ ln σ plus the spheroid's.
    fn log_odds_at_rest(&self) -> f64 {
        let f = self.disc_share;
        let sum_ln = |s: &[f64; 3]| s.iter().map(|x| x.ln()).sum::<f64>();
        f.ln() - (1.0 - f).ln() - sum_ln(&self.disc_sigma) + sum_ln(&self.spheroid_sigma)
    }

    /// Posterior disc probability of cylindrical velocity `cyl` and spherical `sph` (km/s),
    /// given `odds` = [`log_odds_at_rest`](Self::log_odds_at_rest).
    fn posterior(&self, odds: f64, cyl: [f64; 3], sph: [f64; 3]) -> f64 {
        let d = &self.disc_sigma;
        let s = &self.spheroid_sigma;
        let chi2 =
            |u: [f64; 3], sig: &[f64; 3]| (0..3).map(|k| (u[k] / sig[k]).powi(2)).sum::<f64>();
        let dev = [cyl[0], cyl[1] - self.rotation, cyl[2]];
        // Logistic of the log ratio, written to overflow neither way.
        let t = odds - 0.5 * (chi2(dev, d) - chi2(sph, s));
        if t >= 0.0 {
            1.0 / (1.0 + (-t).exp())
        } else {
            let e = t.exp();
            e / (1.0 + e)
        }
    }

    /// Disc probability of a particle at `x` (kpc) with velocity `v` (km/s), in [0, 1].
    pub(crate) fn disc_probability(&self, x: [f64; 3], v: [f64; 3]) -> f64 {
        let (cyl, sph) = components(x, v);
        self.posterior(self.log_odds_at_rest(), cyl, sph)
    }
}

/// Weighted mean of |v|² (km²/s²) over the rows' spherical components.
fn velocities_mean_square(comps: &[([f64; 3], [f64; 3])], w: &[f64], sw: f64) -> f64 {
    comps
        .iter()
        .zip(w)
        .map(|(c, wi)| wi * c.1.iter().map(|u| u * u).sum::<f64>())
        .sum::<f64>()
        / sw
}
