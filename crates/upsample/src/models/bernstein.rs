//! A smooth monotone map of [0, 1] onto itself: the distribution function of a mixture of the
//! Beta(k + 1, n − k) densities, k = 0…n−1 (a Bernstein polynomial of degree n),
//!
//! ```text
//! B(u) = Σ_k w_k I_u(k + 1, n − k) = Σ_j C(n, j) uʲ (1 − u)ⁿ⁻ʲ W_j,   W_j = Σ_{k<j} w_k,
//! b(u) = B'(u) = n Σ_k w_k C(n − 1, k) uᵏ (1 − u)ⁿ⁻¹⁻ᵏ,
//! ```
//!
//! with weights w_k ≥ 0 summing to 1 (equal weights: B(u) = u). It corrects a fitted parametric
//! distribution F: if the data's F(r) values are not uniform, B(F(r)) is the distribution whose
//! values are, to the resolution ~1/√n the degree allows. Both B and 1 − B are sums of positive
//! terms, computed in logarithms, so they keep their precision at both ends (the
//! Gaussianisation needs ln F and ln(1 − F) there); b is a polynomial, smooth for the
//! acceleration solver that differentiates it. Used by [`super::RadialProfile`].

use super::newton::bracketed_newton;
use serde::{Deserialize, Serialize};

/// Mixture weights of the Beta(k + 1, n − k) densities, k = 0…n−1 (n = their count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bernstein {
    /// w_k ≥ 0, Σ w_k = 1.
    pub weights: Vec<f64>,
}

/// m! for m = 0…[`MAX_DEGREE`] (exact: 16! < 2⁵³).
const FACTORIAL: [f64; MAX_DEGREE + 1] = {
    let mut t = [0.0; MAX_DEGREE + 1];
    let mut f = 1.0;
    let mut m = 1;
    while m <= MAX_DEGREE {
        f *= m as f64;
        t[m] = f;
        m += 1;
    }
    t[0] = 1.0;
    t
};

/// Highest degree [`Bernstein`] supports.
pub(super) const MAX_DEGREE: usize = 16;

/// ln C(n, j) (n ≤ [`MAX_DEGREE`]).
fn ln_binomial(n: usize, j: usize) -> f64 {
    (FACTORIAL[n] / (FACTORIAL[j] * FACTORIAL[n - j])).ln()
}

/// ln Σ exp(aᵢ) over `terms` (−∞ for none).
fn log_sum_exp(terms: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = terms.clone().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + terms.map(|a| (a - m).exp()).sum::<f64>().ln()
}

/// ln of the binomial probability C(n, j) uʲ (1 − u)ⁿ⁻ʲ from ln u and ln(1 − u).
fn ln_pmf(n: usize, j: usize, ln_u: f64, ln_1mu: f64) -> f64 {
    let a = if j == 0 { 0.0 } else { j as f64 * ln_u };
    let b = if j == n { 0.0 } else { (n - j) as f64 * ln_1mu };
    ln_binomial(n, j) + a + b
}

impl Bernstein {
    /// The degree n.
    fn n(&self) -> usize {
        self.weights.len()
    }

    /// (ln B(u), ln(1 − B(u))) from (ln u, ln(1 − u)). On the stack: the quantile's Newton
    /// steps call it for every star drawn.
    pub fn ln_cdf(&self, ln_u: f64, ln_1mu: f64) -> (f64, f64) {
        let n = self.n();
        let mut below = [0.0; MAX_DEGREE + 1];
        for j in 1..=n {
            below[j] = below[j - 1] + self.weights[j - 1];
        }
        let lb = log_sum_exp(
            (1..=n)
                .filter(|&j| below[j] > 0.0)
                .map(|j| ln_pmf(n, j, ln_u, ln_1mu) + below[j].ln()),
        );
        // 1 − W_j = Σ_{k ≥ j} w_k, summed from the top so that it keeps its precision.
        let mut above = [0.0; MAX_DEGREE + 1];
        for j in (0..n).rev() {
            above[j] = above[j + 1] + self.weights[j];
        }
        let la = log_sum_exp(
            (0..n)
                .filter(|&j| above[j] > 0.0)
                .map(|j| ln_pmf(n, j, ln_u, ln_1mu) + above[j].ln()),
        );
        (lb, la)
    }

    /// ln b(u) from (ln u, ln(1 − u)).
    pub fn ln_pdf(&self, ln_u: f64, ln_1mu: f64) -> f64 {
        let n = self.n();
        (n as f64).ln()
            + log_sum_exp(
                (0..n)
                    .filter(|&k| self.weights[k] > 0.0)
                    .map(|k| self.weights[k].ln() + ln_pmf(n - 1, k, ln_u, ln_1mu)),
            )
    }

    /// b'(u) / b(u) at u (0 < u < 1).
    pub fn d_ln_pdf(&self, u: f64) -> f64 {
        let n = self.n();
        if n < 2 {
            return 0.0;
        }
        let (lu, l1) = (u.ln(), (-u).ln_1p());
        let b: f64 = (0..n)
            .map(|k| self.weights[k] * ln_pmf(n - 1, k, lu, l1).exp())
            .sum::<f64>()
            * n as f64;
        let db: f64 = (0..n - 1)
            .map(|k| (self.weights[k + 1] - self.weights[k]) * ln_pmf(n - 2, k, lu, l1).exp())
            .sum::<f64>()
            * (n * (n - 1)) as f64;
        db / b
    }

    /// (ln u, ln(1 − u)) with B(u) = F, F given as (ln F, ln(1 − F)): Newton's method on
    /// the logit s of u, comparing ln B in the lower half and ln(1 − B) in the upper (both
    /// increasing in s with slope b u (1 − u) / B, resp. −b u (1 − u) / (1 − B)), kept inside
    /// a shrinking bracket.
    pub fn quantile(&self, ln_f: f64, ln_1mf: f64) -> (f64, f64) {
        let split = |s: f64| {
            // (ln u, ln(1 − u)) for logit s.
            let lu = -(-s).exp().ln_1p();
            let l1 = -s.exp().ln_1p();
            (lu, l1)
        };
        let inner = ln_f <= -std::f64::consts::LN_2;
        let (lo, hi) = (-745.0, 745.0);
        // f(s) increasing, root wanted; df/ds = b u (1 − u) / B (inner) or / (1 − B).
        let eval = |s: f64| {
            let (lu, l1) = split(s);
            let (lb, la) = self.ln_cdf(lu, l1);
            let lpdf = self.ln_pdf(lu, l1);
            if inner {
                (lb - ln_f, (lpdf + lu + l1 - lb).exp())
            } else {
                (ln_1mf - la, (lpdf + lu + l1 - la).exp())
            }
        };
        // Start from the identity's answer, u = F.
        let s = bracketed_newton(
            eval,
            lo,
            hi,
            (ln_f - ln_1mf).clamp(lo, hi),
            200,
            |s, next, lo, hi| {
                let tol = 1e-13 * s.abs().max(1.0);
                (next - s).abs() <= tol || hi - lo < tol
            },
        );
        split(s)
    }

    /// The degree-n fit (n = 2…`max_degree`) with the best Bayesian information criterion,
    /// gain − (n − 1)/2 · ln Σw, or None where the identity (criterion 0) beats every degree:
    /// the weights `w` count particles (mean 1), so a degree is kept only where the data pay
    /// for its n − 1 free weights, and a distribution the identity fits stays uncorrected.
    pub fn fit_selected(u: &[f64], w: &[f64], max_degree: usize) -> Option<Bernstein> {
        let binned = Binned::new(u, w);
        let penalty = 0.5 * binned.total.max(1.0).ln();
        let mut best: Option<(f64, Bernstein)> = None;
        for n in 2..=max_degree.min(MAX_DEGREE) {
            let (b, gain) = binned.fit(n);
            let score = gain - penalty * (n - 1) as f64;
            if score > best.as_ref().map_or(0.0, |(s, _)| *s) {
                best = Some((score, b));
            }
        }
        best.map(|(_, b)| b)
    }
}

/// Values of u in [`FIT_BINS`] equal bins (b varies on scales of ~1/n, far wider): the
/// occupied bins' centres and masses.
struct Binned {
    /// Centres of the occupied bins.
    centres: Vec<f64>,
    /// Summed weights in each.
    mass: Vec<f64>,
    /// Σ w.
    total: f64,
}

impl Binned {
    /// Bins values `u` in (0, 1) weighted by `w`.
    fn new(u: &[f64], w: &[f64]) -> Binned {
        let mut mass = vec![0.0; FIT_BINS];
        for (&ui, &wi) in u.iter().zip(w) {
            let k = ((ui * FIT_BINS as f64).max(0.0) as usize).min(FIT_BINS - 1);
            mass[k] += wi;
        }
        let (centres, mass): (Vec<f64>, Vec<f64>) = mass
            .iter()
            .enumerate()
            .filter(|(_, &m)| m > 0.0)
            .map(|(k, &m)| ((k as f64 + 0.5) / FIT_BINS as f64, m))
            .unzip();
        let total = mass.iter().sum();
        Binned {
            centres,
            mass,
            total,
        }
    }

    /// Degree-n weights (n ≤ [`MAX_DEGREE`]) fitted by maximum likelihood, EM from equal
    /// weights (the identity map), and their log-likelihood gain over the identity, Σ w ln b.
    /// Basis densities at bin centres (u ≥ 1/(2 [`FIT_BINS`]), n ≤ 16) stay far above
    /// underflow, so EM runs on plain products.
    fn fit(&self, n: usize) -> (Bernstein, f64) {
        let n = n.clamp(1, MAX_DEGREE);
        // basis[j][bin]: the Beta(j + 1, n − j) density at the bin's centre.
        let basis: Vec<Vec<f64>> = (0..n)
            .map(|j| {
                self.centres
                    .iter()
                    .map(|&uc| ((n as f64).ln() + ln_pmf(n - 1, j, uc.ln(), (-uc).ln_1p())).exp())
                    .collect()
            })
            .collect();
        let mut weights = vec![1.0 / n as f64; n];
        let mut mix = vec![0.0; self.centres.len()];
        let mut gain = 0.0;
        for it in 0..FIT_ITERATIONS {
            mix.iter_mut().for_each(|m| *m = 0.0);
            for (wj, bj) in weights.iter().zip(&basis) {
                for (m, b) in mix.iter_mut().zip(bj) {
                    *m += wj * b;
                }
            }
            let ll: f64 = self.mass.iter().zip(&mix).map(|(m, x)| m * x.ln()).sum();
            for (wj, bj) in weights.iter_mut().zip(&basis) {
                let r: f64 = self
                    .mass
                    .iter()
                    .zip(&mix)
                    .zip(bj)
                    .map(|((m, x), b)| m * b / x)
                    .sum();
                *wj *= r / self.total;
            }
            let converged = it > 0 && (ll - gain).abs() < FIT_TOLERANCE;
            gain = ll;
            if converged {
                break;
            }
        }
        let s: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|v| *v /= s);
        (Bernstein { weights }, gain)
    }
}

/// Bins of u for a fit ([`Binned`]).
const FIT_BINS: usize = 1000;
/// Most EM iterations of a fit (EM crawls where the basis densities overlap).
const FIT_ITERATIONS: usize = 5000;
/// A fit has converged when an iteration gains less than this in log-likelihood (in
/// particles' units: far below what tells degrees apart).
const FIT_TOLERANCE: f64 = 1e-6;

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal weights are the identity, B(u) = u and b = 1, at both ends to full precision.
    #[test]
    fn equal_weights_are_the_identity() {
        let b = Bernstein {
            weights: vec![1.0 / 12.0; 12],
        };
        for &u in &[1e-200, 1e-9, 0.01, 0.3, 0.5, 0.77, 1.0 - 1e-9] {
            let (lu, l1) = (f64::ln(u), (-u).ln_1p());
            let (lb, la) = b.ln_cdf(lu, l1);
            assert!(
                (lb - lu).abs() < 1e-10 && (la - l1).abs() < 1e-6,
                "{u}: {lb} {la}"
            );
            assert!(b.ln_pdf(lu, l1).abs() < 1e-10);
            assert!(b.d_ln_pdf(u.clamp(1e-6, 0.999)).abs() < 1e-8);
            let (qu, _) = b.quantile(lu, l1);
            assert!((qu - lu).abs() < 1e-8 * lu.abs().max(1.0), "{u}: {qu} {lu}");
        }
    }

    /// The density is the CDF's derivative, its logarithmic derivative b'/b matches finite
    /// differences, and the quantile inverts the CDF, for uneven weights.
    #[test]
    fn density_derivative_and_quantile_agree_with_the_cdf() {
        let b = Bernstein {
            weights: vec![0.02, 0.1, 0.3, 0.05, 0.0, 0.2, 0.13, 0.2],
        };
        let cdf = |u: f64| b.ln_cdf(u.ln(), (-u).ln_1p()).0.exp();
        let pdf = |u: f64| b.ln_pdf(u.ln(), (-u).ln_1p()).exp();
        for &u in &[0.01, 0.2, 0.45, 0.7, 0.95] {
            let h = 1e-6;
            let num = (cdf(u + h) - cdf(u - h)) / (2.0 * h);
            assert!((num / pdf(u) - 1.0).abs() < 1e-6, "{u}: {num} {}", pdf(u));
            let dl = (pdf(u + h).ln() - pdf(u - h).ln()) / (2.0 * h);
            assert!((dl - b.d_ln_pdf(u)).abs() < 1e-5 * dl.abs().max(1.0), "{u}");
            let (lb, la) = b.ln_cdf(u.ln(), (-u).ln_1p());
            assert!((lb.exp() + la.exp() - 1.0).abs() < 1e-12);
            let (qu, _) = b.quantile(lb, la);
            assert!((qu.exp() / u - 1.0).abs() < 1e-9, "{u}: {}", qu.exp());
        }
    }

    /// Values drawn from u² (B(u) = u², not the identity) are fitted closely, with a large
    /// likelihood gain; uniform values gain only the noise of n − 1 free weights.
    #[test]
    fn fit_recovers_a_non_uniform_distribution_and_not_noise() {
        let m = 20_000;
        // Evenly spread quantiles: u = √p for B(u) = u², u = p for the identity.
        let p: Vec<f64> = (0..m).map(|i| (i as f64 + 0.5) / m as f64).collect();
        let w = vec![1.0; m];
        let sq: Vec<f64> = p.iter().map(|v| v.sqrt()).collect();
        let (b, gain) = Binned::new(&sq, &w).fit(12);
        for &u in &[0.1f64, 0.3, 0.5, 0.8, 0.95] {
            let f = b.ln_cdf(u.ln(), (-u).ln_1p()).0.exp();
            assert!((f - u * u).abs() < 0.01, "{u}: {f}");
        }
        assert!(gain > 0.1 * m as f64, "{gain}");
        let (_, gain0) = Binned::new(&p, &w).fit(12);
        assert!(gain0.abs() < 5.0, "{gain0}");
    }

    /// The information criterion picks the lowest degree that holds the distribution (u²:
    /// b(u) = 2u, degree 2) and no correction for uniform random values.
    #[test]
    fn selection_keeps_the_degree_the_data_pay_for() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let uni: Vec<f64> = (0..20_000).map(|_| rng.random::<f64>()).collect();
        let w = vec![1.0; uni.len()];
        assert_eq!(Bernstein::fit_selected(&uni, &w, MAX_DEGREE), None);
        let sq: Vec<f64> = uni.iter().map(|v| v.sqrt()).collect();
        let b = Bernstein::fit_selected(&sq, &w, MAX_DEGREE).expect("a correction");
        assert!(b.weights.len() <= 3, "{:?}", b.weights);
        let f = b.ln_cdf(0.5f64.ln(), 0.5f64.ln()).0.exp();
        assert!((f - 0.25).abs() < 0.01, "{f}");
    }
}
