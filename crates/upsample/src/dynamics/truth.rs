//! Checks of solved accelerations against the analytic Plummer sphere: the acceptance test of
//! trained flows (tests, benchmarks and the `test-support` feature only; not part of the
//! library's API).

use anyhow::Result;
use serde::Serialize;

use super::eom::{accelerations, EomOptions, Status};
use super::{PhaseSpaceDensity, Plummer};

/// Statistics of solved accelerations against an analytic truth.
#[derive(Debug, Clone, Serialize)]
pub struct TruthCheck {
    /// Query points.
    pub points: usize,
    /// Points solved ([`Status::Ok`]).
    pub solved: usize,
    /// Median over solved points of |a - a_true| / |a_true|.
    pub median_relative_error: f64,
    /// Largest relative error over solved points.
    pub max_relative_error: f64,
    /// Fraction of solved points whose radial component a·x̂ is negative (pointing inwards, as
    /// the truth's).
    pub radial_sign_right: f64,
}

/// Query points at radii log-spaced between `r_min` and `r_max` (kpc), directions on a
/// Fibonacci sphere: deterministic and evenly spread.
pub fn shell_points(r_min: f64, r_max: f64, n: usize) -> Vec<[f64; 3]> {
    let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
    (0..n)
        .map(|i| {
            let t = (i as f64 + 0.5) / n as f64;
            let r = r_min * (r_max / r_min).powf(t);
            let z = 1.0 - 2.0 * t;
            let s = (1.0 - z * z).sqrt();
            let phi = golden * i as f64;
            [r * s * phi.cos(), r * s * phi.sin(), r * z]
        })
        .collect()
}

/// Solves the accelerations of `density` at [`shell_points`] between `r_min` and `r_max` kpc and
/// compares them with the Plummer sphere `truth` (the acceptance check on trained flows uses
/// 0.5 b to 5 b).
pub fn check_against_plummer<D: PhaseSpaceDensity + ?Sized>(
    density: &D,
    truth: &Plummer,
    r_min: f64,
    r_max: f64,
    n: usize,
    opts: &EomOptions,
) -> Result<TruthCheck> {
    let x = shell_points(r_min, r_max, n);
    let acc = accelerations(density, &x, opts, &mut |_, _| {})?;
    let mut errors = Vec::new();
    let mut inward = 0usize;
    for (p, a) in x.iter().zip(&acc) {
        if a.status != Status::Ok {
            continue;
        }
        let t = truth.acceleration(p);
        let d: f64 = (0..3).map(|j| (a.a[j] - t[j]).powi(2)).sum::<f64>().sqrt();
        let tn: f64 = t.iter().map(|c| c * c).sum::<f64>().sqrt();
        errors.push(d / tn);
        if (0..3).map(|j| a.a[j] * p[j]).sum::<f64>() < 0.0 {
            inward += 1;
        }
    }
    let solved = errors.len();
    errors.sort_by(f64::total_cmp);
    let median = match solved {
        0 => f64::NAN,
        s if s % 2 == 1 => errors[s / 2],
        s => 0.5 * (errors[s / 2 - 1] + errors[s / 2]),
    };
    Ok(TruthCheck {
        points: n,
        solved,
        median_relative_error: median,
        max_relative_error: errors.last().copied().unwrap_or(f64::NAN),
        radial_sign_right: if solved > 0 {
            inward as f64 / solved as f64
        } else {
            f64::NAN
        },
    })
}
