//! ODE integrators on batched states `[B, n]`: fixed-step RK4 (differentiable, for training) and
//! adaptive Dormand–Prince 5(4) with error control (for evaluation and sampling).
//!
//! The batch shares one step size: the error norm is the largest per-sample RMS of the scaled
//! local error, so every sample meets the tolerance. Integration runs from `t0` to `t1` in either
//! direction.

use crate::error::CnfError;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Tolerances and limits of the adaptive solver.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OdeTolerance {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Maximum number of attempted steps before giving up.
    pub max_steps: usize,
}

impl Default for OdeTolerance {
    fn default() -> Self {
        Self {
            rtol: 1e-5,
            atol: 1e-5,
            max_steps: 2000,
        }
    }
}

/// Counters of one adaptive solve.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Dopri5Stats {
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps.
    pub rejected: usize,
    /// Right-hand-side evaluations.
    pub evaluations: usize,
}

/// Classical fixed-step Runge–Kutta 4 from `t0` to `t1` in `steps` steps.
pub fn rk4<F>(mut f: F, y0: Tensor<2>, t0: f64, t1: f64, steps: usize) -> Tensor<2>
where
    F: FnMut(f64, Tensor<2>) -> Tensor<2>,
{
    let steps = steps.max(1);
    let h = (t1 - t0) / steps as f64;
    let mut y = y0;
    for i in 0..steps {
        let t = t0 + i as f64 * h;
        let k1 = f(t, y.clone());
        let k2 = f(t + 0.5 * h, y.clone() + k1.clone().mul_scalar(0.5 * h));
        let k3 = f(t + 0.5 * h, y.clone() + k2.clone().mul_scalar(0.5 * h));
        let k4 = f(t + h, y.clone() + k3.clone().mul_scalar(h));
        let incr = (k1 + k4 + (k2 + k3).mul_scalar(2.0)).mul_scalar(h / 6.0);
        y = y + incr;
    }
    y
}

// Dormand–Prince 5(4) tableau.
const C: [f64; 7] = [0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0];
const A: [&[f64]; 7] = [
    &[],
    &[0.2],
    &[3.0 / 40.0, 9.0 / 40.0],
    &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
    &[
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
    ],
    &[
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
    ],
    &[
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
];
/// 5th-order minus 4th-order weights (error estimator).
const E: [f64; 7] = [
    71.0 / 57600.0,
    0.0,
    -71.0 / 16695.0,
    71.0 / 1920.0,
    -17253.0 / 339200.0,
    22.0 / 525.0,
    -1.0 / 40.0,
];

fn lincomb(y: &Tensor<2>, h: f64, coeffs: &[f64], ks: &[Tensor<2>]) -> Tensor<2> {
    let mut acc: Option<Tensor<2>> = None;
    for (c, k) in coeffs.iter().zip(ks) {
        if *c == 0.0 {
            continue;
        }
        let term = k.clone().mul_scalar(h * c);
        acc = Some(match acc {
            None => term,
            Some(a) => a + term,
        });
    }
    match acc {
        None => y.clone(),
        Some(a) => y.clone() + a,
    }
}

/// Adaptive Dormand–Prince 5(4) from `t0` to `t1` (either direction), first-same-as-last, with
/// the standard step controller `h ← h · clamp(0.9 · err^(-1/5), 0.2, 5)`. Returns the state at
/// `t1` and counters.
pub fn dopri5<F>(
    mut f: F,
    y0: Tensor<2>,
    t0: f64,
    t1: f64,
    tol: &OdeTolerance,
) -> Result<(Tensor<2>, Dopri5Stats), CnfError>
where
    F: FnMut(f64, Tensor<2>) -> Tensor<2>,
{
    let mut stats = Dopri5Stats::default();
    let span = t1 - t0;
    if span == 0.0 {
        return Ok((y0, stats));
    }
    let dir = span.signum();
    let mut t = t0;
    let mut y = y0;
    let mut h = 0.05 * span.abs();
    let mut k1 = f(t, y.clone());
    stats.evaluations += 1;
    while dir * (t1 - t) > 1e-12 * span.abs() {
        if stats.accepted + stats.rejected >= tol.max_steps {
            return Err(CnfError::Solver(format!(
                "Dormand-Prince: {} steps did not reach t = {t1} (t = {t}, h = {h:e})",
                tol.max_steps
            )));
        }
        h = h.min(dir * (t1 - t));
        let hs = dir * h;
        let mut ks = vec![k1.clone()];
        for s in 1..7 {
            let ys = lincomb(&y, hs, A[s], &ks);
            ks.push(f(t + C[s] * hs, ys));
        }
        stats.evaluations += 6;
        let y_new = lincomb(&y, hs, A[6], &ks);
        let err = lincomb(&y.zeros_like(), hs, &E, &ks);
        let scale = y
            .clone()
            .abs()
            .max_pair(y_new.clone().abs())
            .mul_scalar(tol.rtol)
            .add_scalar(tol.atol);
        let ratio = (err / scale).square().mean_dim(1).max();
        let err_norm: f64 = ratio
            .into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .map_err(|e| CnfError::Readback(format!("{e:?}")))?
            .first()
            .copied()
            .unwrap_or(f64::NAN)
            .sqrt();
        if !err_norm.is_finite() {
            return Err(CnfError::Solver(format!(
                "Dormand-Prince: non-finite error estimate at t = {t}"
            )));
        }
        if err_norm <= 1.0 {
            t += hs;
            y = y_new;
            k1 = ks.pop().unwrap_or_else(|| f(t, y.clone()));
            stats.accepted += 1;
        } else {
            stats.rejected += 1;
        }
        let factor = if err_norm == 0.0 {
            5.0
        } else {
            (0.9 * err_norm.powf(-0.2)).clamp(0.2, 5.0)
        };
        h *= factor;
        if h < 1e-10 * span.abs() {
            return Err(CnfError::Solver(format!(
                "Dormand-Prince: step size underflow at t = {t}"
            )));
        }
    }
    Ok((y, stats))
}
