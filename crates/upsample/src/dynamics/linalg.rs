//! Small dense linear algebra of the least-squares solve: symmetric eigen-decomposition by
//! Jacobi rotations and the pseudo-inverse solve of the 3×3 normal equations.

// Small dense linear algebra reads best with index loops.
#![allow(clippy::needless_range_loop)]

/// Eigen-decomposition of a small symmetric N×N matrix by cyclic Jacobi rotations:
/// (eigenvalues, eigenvectors as columns), eigenvalues in ascending order. Accurate to rounding
/// for any symmetric input (no closed-form characteristic polynomial).
pub(crate) fn symmetric_eigen<const N: usize>(m: &[[f64; N]; N]) -> ([f64; N], [[f64; N]; N]) {
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
pub(crate) fn solve_normal_equations(
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
