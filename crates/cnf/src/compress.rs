//! Radial compression: a fixed bijection applied to data (or context) before whitening, for
//! data with power-law tails. With r = |x − c|,
//!
//! `y = c + (x − c) · g(r) / r`,  `g(r) = s · asinh(r / s)`,
//!
//! the identity near c (r ≪ s) and logarithmic far out, so a density falling as a power of r
//! becomes one falling exponentially in |y − c|, which a flow from a Gaussian base represents
//! far better. In d dimensions `log |det ∂y/∂x| = log g'(r) + (d − 1) log(g(r) / r)` with
//! `g'(r) = 1 / sqrt(1 + r²/s²)`. The centre c is the coordinate-wise median of the training
//! data and s the median distance from it (weighted medians when the rows carry weights).

use crate::error::CnfError;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Below this value of r/s (or |y − c|/s) the series expansions are used (f32 cancellation).
const SMALL: f64 = 1e-2;

/// Parameters of the radial compression: centre c and scale s (data units).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RadialCompression {
    /// Centre c, one value per dimension.
    pub center: Vec<f64>,
    /// Scale s where compression sets in.
    pub scale: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Weighted median of `(value, weight)` pairs (weights ≥ 0, not all zero): the smallest value
/// whose cumulative weight reaches half the total; where the cumulative weight equals half the
/// total exactly, the mean of that value and the next one of non-zero weight (the convention
/// of the unweighted median of an even count). NaN when the total weight is not positive.
pub fn weighted_median(mut v: Vec<(f64, f64)>) -> f64 {
    v.retain(|&(_, w)| w > 0.0);
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = v.iter().map(|&(_, w)| w).sum();
    if total.is_nan() || total <= 0.0 {
        return f64::NAN;
    }
    let half = 0.5 * total;
    let mut cum = 0.0;
    for (k, &(value, w)) in v.iter().enumerate() {
        cum += w;
        if cum > half {
            return value;
        }
        if cum == half {
            return v
                .get(k + 1)
                .map_or(value, |&(next, _)| 0.5 * (value + next));
        }
    }
    v.last().map_or(f64::NAN, |&(value, _)| value)
}

/// asinh(u)/u and its series near 0 (u ≥ 0).
fn asinh_ratio(u: f64) -> f64 {
    if u < SMALL {
        1.0 - u * u / 6.0
    } else {
        u.asinh() / u
    }
}

impl RadialCompression {
    /// Fits centre (coordinate-wise median) and scale (median distance) to row-major data.
    pub fn fit(x: &[f64], dim: usize) -> Result<Self, CnfError> {
        Self::fit_weighted(x, dim, None)
    }

    /// [`RadialCompression::fit`] with one weight per row (≥ 0, finite, not all zero): centre
    /// and scale are then weighted medians. `None` is the unweighted fit, number for number.
    pub fn fit_weighted(x: &[f64], dim: usize, weights: Option<&[f64]>) -> Result<Self, CnfError> {
        let n = x.len() / dim.max(1);
        if n == 0 || x.len() != n * dim {
            return Err(CnfError::InvalidInput(format!(
                "radial compression needs rows of dimension {dim}, got {} values",
                x.len()
            )));
        }
        if let Some(w) = weights {
            if w.len() != n {
                return Err(CnfError::InvalidInput(format!(
                    "radial compression: {} weights for {n} rows",
                    w.len()
                )));
            }
        }
        let med = |v: Vec<f64>| match weights {
            None => median(v),
            Some(w) => weighted_median(v.into_iter().zip(w.iter().copied()).collect()),
        };
        let center: Vec<f64> = (0..dim)
            .map(|d| med(x.iter().skip(d).step_by(dim).copied().collect()))
            .collect();
        let scale = med(x
            .chunks_exact(dim)
            .map(|row| {
                row.iter()
                    .zip(&center)
                    .map(|(a, c)| (a - c).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect());
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(CnfError::InvalidInput(
                "radial compression: the data have no spread around their median".into(),
            ));
        }
        Ok(Self { center, scale })
    }

    /// Compresses row-major data on the host; returns (y, log |det ∂y/∂x| per row).
    pub fn apply_host(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let d = self.center.len();
        let s = self.scale;
        let mut y = Vec::with_capacity(x.len());
        let mut logdet = Vec::with_capacity(x.len() / d.max(1));
        for row in x.chunks_exact(d) {
            let r = row
                .iter()
                .zip(&self.center)
                .map(|(a, c)| (a - c).powi(2))
                .sum::<f64>()
                .sqrt();
            let u = r / s;
            let f = asinh_ratio(u);
            y.extend(row.iter().zip(&self.center).map(|(a, c)| c + (a - c) * f));
            logdet.push(-0.5 * (u * u).ln_1p() + (d as f64 - 1.0) * f.ln());
        }
        (y, logdet)
    }

    fn center_tensor(&self, device: &burn::tensor::Device) -> Tensor<2> {
        let c: Vec<f32> = self.center.iter().map(|&v| v as f32).collect();
        Tensor::from_data(TensorData::new(c, [1, self.center.len()]), device)
    }

    /// Compresses `x [B, d]` on the device; returns (y, log |det ∂y/∂x| `[B, 1]`).
    /// Differentiable.
    pub fn apply(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let d = self.center.len() as f64;
        let c = self.center_tensor(&x.device());
        let dx = x - c.clone();
        let u = dx.clone().square().sum_dim(1).sqrt().div_scalar(self.scale);
        let u2 = u.clone().square();
        // asinh(u)/u = ln(u + sqrt(1 + u²)) / u, by its series where u is small.
        let small = u.clone().lower_elem(SMALL);
        let safe_u = u.clone().mask_fill(small.clone(), 1.0);
        let exact =
            (safe_u.clone() + safe_u.clone().square().add_scalar(1.0).sqrt()).log() / safe_u;
        let series = u2.clone().mul_scalar(-1.0 / 6.0).add_scalar(1.0);
        let f = exact.mask_where(small, series);
        let logdet =
            u2.add_scalar(1.0).log().mul_scalar(-0.5) + f.clone().log().mul_scalar(d - 1.0);
        (c + dx * f, logdet)
    }

    /// Inverts the compression on the device: `x = c + (y − c) · s sinh(ρ/s) / ρ`, ρ = |y − c|.
    pub fn invert(&self, y: Tensor<2>) -> Tensor<2> {
        let c = self.center_tensor(&y.device());
        let dy = y - c.clone();
        // w = ρ/s, capped so that sinh stays finite in f32 (x up to ~1e30 s).
        let w = dy
            .clone()
            .square()
            .sum_dim(1)
            .sqrt()
            .div_scalar(self.scale)
            .clamp_max(70.0);
        let small = w.clone().lower_elem(SMALL);
        let safe_w = w.clone().mask_fill(small.clone(), 1.0);
        let exact = (safe_w.clone().exp() - safe_w.clone().neg().exp()).mul_scalar(0.5) / safe_w;
        let series = w.square().mul_scalar(1.0 / 6.0).add_scalar(1.0);
        let f = exact.mask_where(small, series);
        c + dy * f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::download;

    fn host_map(c: &RadialCompression, x: [f64; 3]) -> [f64; 3] {
        let y = c.apply_host(&x).0;
        [y[0], y[1], y[2]]
    }

    #[test]
    fn log_det_matches_finite_differences_and_device_matches_host() {
        let c = RadialCompression {
            center: vec![0.5, -1.0, 2.0],
            scale: 0.7,
        };
        let pts = [
            [0.5 + 1e-3, -1.0, 2.0 + 2e-3],
            [0.9, -0.4, 2.3],
            [5.0, 3.0, -8.0],
            [40.0, -60.0, 25.0],
        ];
        let h = 1e-5;
        for x in pts {
            let mut jac = [[0.0; 3]; 3];
            for j in 0..3 {
                let (mut a, mut b) = (x, x);
                a[j] += h;
                b[j] -= h;
                let (ya, yb) = (host_map(&c, a), host_map(&c, b));
                for i in 0..3 {
                    jac[i][j] = (ya[i] - yb[i]) / (2.0 * h);
                }
            }
            let det = jac[0][0] * (jac[1][1] * jac[2][2] - jac[1][2] * jac[2][1])
                - jac[0][1] * (jac[1][0] * jac[2][2] - jac[1][2] * jac[2][0])
                + jac[0][2] * (jac[1][0] * jac[2][1] - jac[1][1] * jac[2][0]);
            let ld = c.apply_host(&x).1[0];
            assert!((det.ln() - ld).abs() < 1e-6, "{x:?}: {} vs {ld}", det.ln());
        }
        // The device map (f32) agrees with the host map and inverts.
        let device = crate::parse_device("flex").unwrap();
        let flat: Vec<f32> = pts.iter().flatten().map(|&v| v as f32).collect();
        let xt = Tensor::<2>::from_data(TensorData::new(flat, [pts.len(), 3]), &device);
        let (y, ld) = c.apply(xt.clone());
        let back = download(c.invert(y.clone())).unwrap();
        let y = download(y).unwrap();
        let ld = download(ld).unwrap();
        for (k, x) in pts.iter().enumerate() {
            let (yh, ldh) = c.apply_host(x);
            for i in 0..3 {
                assert!((y[k * 3 + i] - yh[i]).abs() < 1e-5 * (1.0 + yh[i].abs()));
                assert!((back[k * 3 + i] - x[i]).abs() < 1e-4 * (1.0 + x[i].abs()));
            }
            assert!((ld[k] - ldh[0]).abs() < 1e-4, "{} vs {}", ld[k], ldh[0]);
        }
        // Fit: centre = medians, scale = median distance.
        let data = [0.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 4.0, 4.0];
        let f = RadialCompression::fit(&data, 3).unwrap();
        assert_eq!(f.center, vec![1.0, 2.0, 2.0]);
        assert!((f.scale - 3.0).abs() < 1e-12);
        assert!(RadialCompression::fit(&[1.0, 1.0, 1.0], 3).is_err());
    }

    #[test]
    fn weighted_fit_uses_weighted_medians() {
        // Equal weights: the unweighted medians, even count included.
        let v = vec![3.0, 1.0, 4.0, 2.0];
        assert_eq!(
            weighted_median(v.iter().map(|&x| (x, 0.25)).collect()),
            median(v)
        );
        // Integer weights act as repeated rows: 1 once, 5 three times -> median 5.
        assert_eq!(weighted_median(vec![(1.0, 1.0), (5.0, 3.0)]), 5.0);
        // Zero weights are ignored; a single weighted row is the median.
        assert_eq!(
            weighted_median(vec![(-2.0, 0.0), (7.0, 2.5), (9.0, 0.0)]),
            7.0
        );
        assert!(weighted_median(vec![(1.0, 0.0)]).is_nan());
        // Rows along x at 0, 1, 2, 10 with weights 1, 1, 1, 5: weighted centre 10 in x, and
        // distances 10, 9, 8, 0 with weights 1, 1, 1, 5 -> scale 0.
        let data = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 10.0, 0.0, 0.0];
        let w = [1.0, 1.0, 1.0, 5.0];
        assert!(RadialCompression::fit_weighted(&data, 3, Some(&w)).is_err());
        let w = [2.0, 1.0, 1.0, 1.0];
        let f = RadialCompression::fit_weighted(&data, 3, Some(&w)).unwrap();
        // cumulative 2, 3 of 5 in x: centre 1; distances 1, 0, 1, 9 (weights 2, 1, 1, 1): 1.
        assert_eq!(f.center, vec![1.0, 0.0, 0.0]);
        assert_eq!(f.scale, 1.0);
        let plain = RadialCompression::fit(&data, 3).unwrap();
        assert_eq!(
            RadialCompression::fit_weighted(&data, 3, None).unwrap(),
            plain
        );
        assert!(RadialCompression::fit_weighted(&data, 3, Some(&[1.0])).is_err());
    }
}
