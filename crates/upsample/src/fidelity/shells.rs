//! Profiles in log-spaced spherical shells about the galaxy centre (galaxy frame): density,
//! σ_r, σ_t, β and mean v_φ, each with a sampling error.
//!
//! Definitions (weights w = masses when given, else 1): v_r = v·r̂, v_θ = v·θ̂, v_φ = v·φ̂
//! with φ̂ = ẑ × r̂ / |ẑ × r̂| (rotation about +z is v_φ > 0); σ_r², σ_θ², σ_φ² are the
//! weighted variances about each component's weighted mean (so σ_φ excludes the rotation);
//! σ_t² = (σ_θ² + σ_φ²)/2 is the tangential variance per component; β = 1 − σ_t²/σ_r².
//! Errors: density and share from Poisson counting, √Σw²; kinematics from a bootstrap of the
//! shell's particles (seeded per shell).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::standardise::mix;
use super::{FidelityError, PhaseSpace};

/// Configuration of [`shell_profile`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShellConfig {
    /// Inner radius of the first shell, kpc.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub r_min: f64,
    /// Outer radius of the last shell, kpc.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub r_max: f64,
    /// Number of shells, log-spaced in r.
    pub n_shells: usize,
    /// Bootstrap resamples per shell for the kinematic errors.
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for ShellConfig {
    /// 0.1 to 100 kpc in 15 shells, 100 bootstrap resamples, seed 0.
    fn default() -> Self {
        ShellConfig {
            r_min: 0.1,
            r_max: 100.0,
            n_shells: 15,
            bootstrap: 100,
            seed: 0,
        }
    }
}

impl ShellConfig {
    /// `n_shells` shells from the `lo` to the `hi` quantile of the radii of `positions`
    /// (kpc), e.g. 0.01 and 0.99 (defaults for the rest).
    pub fn spanning(positions: &[[f64; 3]], n_shells: usize, lo: f64, hi: f64) -> ShellConfig {
        let mut r: Vec<f64> = positions.iter().map(|x| radius(*x)).collect();
        r.sort_unstable_by(f64::total_cmp);
        let q = |f: f64| {
            r.get(((r.len() as f64 * f) as usize).min(r.len().saturating_sub(1)))
                .copied()
                .unwrap_or(1.0)
        };
        ShellConfig {
            r_min: q(lo).max(1e-6),
            r_max: q(hi).max(2e-6),
            n_shells,
            ..ShellConfig::default()
        }
    }

    /// The shell holding radius `r` (kpc): `None` inside `r_min` or from `r_max` out.
    pub fn index(&self, r: f64) -> Option<usize> {
        let s = ((r / self.r_min).ln() / self.log_step()).floor();
        (s >= 0.0 && (s as usize) < self.n_shells).then_some(s as usize)
    }

    /// Inner and outer radius of shell `s`, kpc.
    pub fn edges(&self, s: usize) -> (f64, f64) {
        let step = self.log_step();
        (
            self.r_min * (step * s as f64).exp(),
            self.r_min * (step * (s + 1) as f64).exp(),
        )
    }

    /// Geometric mid radius √(r_inner r_outer) of shell `s`, kpc.
    pub fn mid(&self, s: usize) -> f64 {
        let (ri, ro) = self.edges(s);
        (ri * ro).sqrt()
    }

    /// ln(r_outer / r_inner) of every shell.
    fn log_step(&self) -> f64 {
        (self.r_max / self.r_min).ln() / self.n_shells as f64
    }

    /// An error unless 0 < r_min < r_max and n_shells > 0.
    pub fn check(&self) -> Result<(), FidelityError> {
        let (r0, r1, ns) = (self.r_min, self.r_max, self.n_shells);
        if r0 > 0.0 && r1 > r0 && ns > 0 {
            Ok(())
        } else {
            Err(FidelityError::Config(format!(
                "shells need 0 < r_min < r_max and n_shells > 0 (got {r0}, {r1}, {ns})"
            )))
        }
    }
}

/// Velocity moments of one shell (km/s), each with its bootstrap standard error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Kinematics {
    /// Radial dispersion σ_r, km/s.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub sigma_r: f64,
    /// Standard error of σ_r, km/s.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub sigma_r_err: f64,
    /// Polar dispersion σ_θ, km/s.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub sigma_theta: f64,
    /// Azimuthal dispersion σ_φ about the mean rotation, km/s.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub sigma_phi: f64,
    /// Tangential dispersion per component, σ_t = √((σ_θ² + σ_φ²)/2), km/s.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub sigma_t: f64,
    /// Standard error of σ_t, km/s.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub sigma_t_err: f64,
    /// Anisotropy β = 1 − σ_t²/σ_r² (dimensionless).
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub beta: f64,
    /// Standard error of β.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub beta_err: f64,
    /// Mean rotation v̄_φ about +z, km/s.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub mean_vphi: f64,
    /// Standard error of v̄_φ, km/s.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub mean_vphi_err: f64,
}

/// One radial shell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shell {
    /// Inner radius, kpc.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub r_inner: f64,
    /// Outer radius, kpc.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub r_outer: f64,
    /// Geometric mid radius √(r_inner r_outer), kpc.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub r_mid: f64,
    /// Particles in the shell.
    pub count: usize,
    /// Density: Σw / shell volume, Msun/kpc³ (mass-weighted) or kpc⁻³ (counts).
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub density: f64,
    /// Poisson error of the density, same units.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub density_err: f64,
    /// The shell's share of the whole sample's weight, Σw_shell / Σw_all (dimensionless):
    /// compares samples of different sizes.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub share: f64,
    /// Poisson error of the share.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub share_err: f64,
    /// Velocity moments; `None` with fewer than 3 particles.
    pub kinematics: Option<Kinematics>,
}

/// Shell profiles of one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Whether weights are masses (else every particle counts 1).
    pub mass_weighted: bool,
    /// Σw over the whole sample (Msun or particles), shells or not.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub total_weight: f64,
    /// The shells, inside out.
    pub shells: Vec<Shell>,
}

/// Shell profiles of `set` (positions and velocities in the galaxy frame).
pub fn shell_profile(set: PhaseSpace<'_>, config: &ShellConfig) -> Result<Profile, FidelityError> {
    set.check("shell profile sample")?;
    config.check()?;
    let weight = |i: usize| set.mass.map_or(1.0, |m| m[i]);
    let total_weight: f64 = (0..set.len()).map(weight).sum();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); config.n_shells];
    for (i, x) in set.position.iter().enumerate() {
        if let Some(s) = config.index(radius(*x)) {
            members[s].push(i);
        }
    }
    let shells = members
        .par_iter()
        .enumerate()
        .map(|(s, rows)| {
            let (ri, ro) = config.edges(s);
            let volume = 4.0 / 3.0 * std::f64::consts::PI * (ro.powi(3) - ri.powi(3));
            let w: f64 = rows.iter().map(|&i| weight(i)).sum();
            let w2: f64 = rows.iter().map(|&i| weight(i).powi(2)).sum();
            let comps: Vec<([f64; 3], f64)> = rows
                .iter()
                .map(|&i| {
                    (
                        spherical_velocity(set.position[i], set.velocity[i]),
                        weight(i),
                    )
                })
                .collect();
            Shell {
                r_inner: ri,
                r_outer: ro,
                r_mid: config.mid(s),
                count: rows.len(),
                density: w / volume,
                density_err: w2.sqrt() / volume,
                share: w / total_weight,
                share_err: w2.sqrt() / total_weight,
                kinematics: kinematics(&comps, config.bootstrap, mix(config.seed, s as u64)),
            }
        })
        .collect();
    Ok(Profile {
        mass_weighted: set.mass.is_some(),
        total_weight,
        shells,
    })
}

/// Distance of position `x` (kpc) from the centre, kpc.
pub fn radius(x: [f64; 3]) -> f64 {
    (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt()
}

/// Cylindrical components (v_R, v_φ, v_z) of velocity `v` (any unit, km/s in the pipeline) at
/// position `x` (kpc), about the z axis; on the axis R̂ = x̂ and φ̂ = ŷ.
pub fn cylindrical_velocity(x: [f64; 3], v: [f64; 3]) -> [f64; 3] {
    let big_r = x[0].hypot(x[1]);
    if big_r > 0.0 {
        [
            (x[0] * v[0] + x[1] * v[1]) / big_r,
            (x[0] * v[1] - x[1] * v[0]) / big_r,
            v[2],
        ]
    } else {
        v
    }
}

/// Spherical components (v_r, v_θ, v_φ) of velocity `v` (any unit, km/s in the pipeline) at
/// position `x` (kpc); on the z axis φ̂ = ŷ and θ̂ = x̂.
pub fn spherical_velocity(x: [f64; 3], v: [f64; 3]) -> [f64; 3] {
    let r = radius(x).max(1e-300);
    let big_r = x[0].hypot(x[1]);
    let vr = (x[0] * v[0] + x[1] * v[1] + x[2] * v[2]) / r;
    if big_r < 1e-12 * r {
        // On the axis φ̂ is undefined: take φ̂ = ŷ, θ̂ = x̂ (sign of z irrelevant to variances).
        return [vr, v[0], v[1]];
    }
    let vphi = (x[0] * v[1] - x[1] * v[0]) / big_r;
    // θ̂ = (x z, y z, −R²) / (r R).
    let vtheta = (x[0] * x[2] * v[0] + x[1] * x[2] * v[1] - big_r * big_r * v[2]) / (r * big_r);
    [vr, vtheta, vphi]
}

/// [σ_r, σ_t, β, v̄_φ, σ_θ, σ_φ] of weighted (v_r, v_θ, v_φ).
fn moments(rows: impl Iterator<Item = ([f64; 3], f64)> + Clone) -> [f64; 6] {
    let (mut sw, mut m) = (0.0, [0.0; 3]);
    for (c, w) in rows.clone() {
        sw += w;
        for d in 0..3 {
            m[d] += w * c[d];
        }
    }
    m.iter_mut().for_each(|x| *x /= sw);
    let mut var = [0.0; 3];
    for (c, w) in rows {
        for d in 0..3 {
            var[d] += w * (c[d] - m[d]).powi(2);
        }
    }
    var.iter_mut().for_each(|x| *x /= sw);
    let st2 = 0.5 * (var[1] + var[2]);
    [
        var[0].sqrt(),
        st2.sqrt(),
        1.0 - st2 / var[0],
        m[2],
        var[1].sqrt(),
        var[2].sqrt(),
    ]
}

/// Moments of a shell with bootstrap errors (`None` below 3 particles).
fn kinematics(comps: &[([f64; 3], f64)], bootstrap: usize, seed: u64) -> Option<Kinematics> {
    let n = comps.len();
    if n < 3 {
        return None;
    }
    let best = moments(comps.iter().copied());
    let mut err = [0.0; 4];
    if bootstrap >= 2 {
        let mut rng = StdRng::seed_from_u64(seed);
        let draws: Vec<[f64; 6]> = (0..bootstrap)
            .map(|_| {
                let idx: Vec<usize> = (0..n)
                    .map(|_| ((rng.random::<f64>() * n as f64) as usize).min(n - 1))
                    .collect();
                moments(idx.iter().map(|&i| comps[i]))
            })
            .collect();
        for (q, e) in err.iter_mut().enumerate() {
            let mean = draws.iter().map(|d| d[q]).sum::<f64>() / bootstrap as f64;
            *e = (draws.iter().map(|d| (d[q] - mean).powi(2)).sum::<f64>()
                / (bootstrap - 1) as f64)
                .sqrt();
        }
    }
    Some(Kinematics {
        sigma_r: best[0],
        sigma_r_err: err[0],
        sigma_theta: best[4],
        sigma_phi: best[5],
        sigma_t: best[1],
        sigma_t_err: err[1],
        beta: best[2],
        beta_err: err[2],
        mean_vphi: best[3],
        mean_vphi_err: err[3],
    })
}

/// One shell of a catalogue against the same shell of the reference: ratios and differences
/// with their combined sampling errors (errors of the two profiles added in quadrature).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShellComparison {
    /// Geometric mid radius of the shell, kpc.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub r_mid: f64,
    /// Stars' share over the reference's share (density relative to the truth; 1 = right).
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub share_ratio: f64,
    /// Error of `share_ratio`.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub share_ratio_err: f64,
    /// σ_r of the stars over σ_r of the reference.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub sigma_r_ratio: f64,
    /// Error of `sigma_r_ratio`.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub sigma_r_ratio_err: f64,
    /// σ_t of the stars over σ_t of the reference.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub sigma_t_ratio: f64,
    /// Error of `sigma_t_ratio`.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub sigma_t_ratio_err: f64,
    /// β of the stars minus β of the reference.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub beta_diff: f64,
    /// Error of `beta_diff`.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub beta_diff_err: f64,
    /// Mean v_φ of the stars minus that of the reference, km/s.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub vphi_diff: f64,
    /// Error of `vphi_diff`, km/s.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub vphi_diff_err: f64,
}

/// Shell-by-shell comparison of `stars` with `reference` (profiles made with the same
/// [`ShellConfig`]); shells where either lacks kinematics or particles are left out.
pub fn compare_profiles(stars: &Profile, reference: &Profile) -> Vec<ShellComparison> {
    let ratio = |a: f64, ea: f64, b: f64, eb: f64| {
        let q = a / b;
        (q, q * ((ea / a).powi(2) + (eb / b).powi(2)).sqrt())
    };
    stars
        .shells
        .iter()
        .zip(&reference.shells)
        .filter(|(s, r)| s.count > 0 && r.count > 0)
        .filter_map(|(s, r)| {
            let (ks, kr) = (s.kinematics?, r.kinematics?);
            let (share_ratio, share_ratio_err) = ratio(s.share, s.share_err, r.share, r.share_err);
            let (sigma_r_ratio, sigma_r_ratio_err) =
                ratio(ks.sigma_r, ks.sigma_r_err, kr.sigma_r, kr.sigma_r_err);
            let (sigma_t_ratio, sigma_t_ratio_err) =
                ratio(ks.sigma_t, ks.sigma_t_err, kr.sigma_t, kr.sigma_t_err);
            Some(ShellComparison {
                r_mid: s.r_mid,
                share_ratio,
                share_ratio_err,
                sigma_r_ratio,
                sigma_r_ratio_err,
                sigma_t_ratio,
                sigma_t_ratio_err,
                beta_diff: ks.beta - kr.beta,
                beta_diff_err: ks.beta_err.hypot(kr.beta_err),
                vphi_diff: ks.mean_vphi - kr.mean_vphi,
                vphi_diff_err: ks.mean_vphi_err.hypot(kr.mean_vphi_err),
            })
        })
        .collect()
}
