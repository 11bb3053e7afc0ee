//! The Plummer sphere with ergodic (and smoothly rotating) distribution functions, exact: the
//! analytic [`PhaseSpaceDensity`] against which the EOM solver is tested, and the truth of the
//! shipped sample (`data/snap_099.truth.json`) for the acceptance check on trained flows.
//!
//! Potential Φ(r) = -GM / sqrt(r² + b²); distribution function
//! `f(x, v) = A (-E)^p (1 + α tanh(L_z / L_0))` with `E = v²/2 + Φ`. With p = 7/2 and α = 0 it is
//! Plummer's self-consistent isotropic DF (Binney & Tremaine 2008, eq. 4.83) and its density is
//! ρ(r) = 3M/(4πb³) (1 + r²/b²)^(-5/2). Any p > 0 and |α| < 1 give a steady state in the same
//! potential (f depends on the integrals E and L_z only), so the CBE solver must return
//! a = -GM x / (r² + b²)^(3/2) exactly for every such f and their sums. Units: kpc, km/s, Msun.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::Serialize;

use super::density::{velocities_per_point, LogFGrad, PhaseSpaceDensity};
use crate::seed::{stream, PLUMMER_DRAW};
use snapio::G_KPC_KMS2_MSUN;

/// Rotation of the DF: the factor (1 + α tanh(L_z / L_0)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rotation {
    /// Amplitude α, |α| < 1 (the sample uses 0.6).
    pub alpha: f64,
    /// Angular-momentum scale L_0, kpc km/s (→ 0 approaches the sign(L_z) of the sample).
    pub lz_scale: f64,
}

/// A Plummer sphere of mass M and scale radius b with the DF `A (-E)^p (1 + α tanh(L_z/L_0))`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Plummer {
    /// Total mass M, Msun.
    pub mass_msun: f64,
    /// Scale radius b, kpc.
    pub scale_kpc: f64,
    /// Power p of the ergodic part (-E)^p; 3.5 is the self-consistent Plummer DF.
    pub df_power: f64,
    /// Optional rotation factor.
    pub rotation: Option<Rotation>,
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error ~1e-15).
pub(super) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let mut a = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// ∫₀¹ q² (1 - q²)^p dq = B(3/2, p + 1) / 2.
pub(super) fn speed_integral(p: f64) -> f64 {
    0.5 * (ln_gamma(1.5) + ln_gamma(p + 1.0) - ln_gamma(p + 2.5)).exp()
}

impl Plummer {
    /// The self-consistent isotropic Plummer sphere (p = 7/2, no rotation).
    pub fn new(mass_msun: f64, scale_kpc: f64) -> Self {
        Plummer {
            mass_msun,
            scale_kpc,
            df_power: 3.5,
            rotation: None,
        }
    }

    /// The same sphere with the rotation factor (1 + α tanh(L_z / L_0)), L_0 in kpc km/s.
    pub fn rotating(self, alpha: f64, lz_scale: f64) -> Self {
        Plummer {
            rotation: Some(Rotation { alpha, lz_scale }),
            ..self
        }
    }

    /// The same potential with another power p of the ergodic DF (-E)^p.
    pub fn with_power(self, df_power: f64) -> Self {
        Plummer { df_power, ..self }
    }

    /// The sphere of the sample's truth file (`total_mass_Msun`, `scale_radius_kpc`).
    pub fn from_truth_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the truth file {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?;
        let num = |key: &str| -> Result<f64> {
            v.get(key)
                .and_then(|x| x.as_f64())
                .with_context(|| format!("{}: expected a number under `{key}`", path.display()))
        };
        let s = Plummer::new(num("total_mass_Msun")?, num("scale_radius_kpc")?);
        if !(s.mass_msun > 0.0 && s.scale_kpc > 0.0) {
            bail!(
                "{}: mass and scale radius must be > 0, got {} Msun and {} kpc",
                path.display(),
                s.mass_msun,
                s.scale_kpc
            );
        }
        Ok(s)
    }

    fn gm(&self) -> f64 {
        G_KPC_KMS2_MSUN * self.mass_msun
    }

    /// Potential Φ(x) = -GM / sqrt(r² + b²), (km/s)².
    pub fn potential(&self, x: &[f64; 3]) -> f64 {
        let r2 = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
        -self.gm() / (r2 + self.scale_kpc * self.scale_kpc).sqrt()
    }

    /// Acceleration a = -∇Φ = -GM x / (r² + b²)^(3/2), (km/s)²/kpc.
    pub fn acceleration(&self, x: &[f64; 3]) -> [f64; 3] {
        let r2 = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
        let c = -self.gm() / (r2 + self.scale_kpc * self.scale_kpc).powf(1.5);
        [c * x[0], c * x[1], c * x[2]]
    }

    /// Mass density of the self-consistent sphere, 3M/(4πb³) (1 + r²/b²)^(-5/2), Msun/kpc³.
    pub fn mass_density(&self, x: &[f64; 3]) -> f64 {
        let b = self.scale_kpc;
        let r2 = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
        3.0 * self.mass_msun / (4.0 * std::f64::consts::PI * b.powi(3))
            * (1.0 + r2 / (b * b)).powf(-2.5)
    }

    /// ln n(x) = ln ∫ f d³v = ln ρ(0) + (p + 3/2) ln(-Φ(x) b / GM): the DF is normalised so that
    /// n(0) = 3M/(4πb³) for every p, and n = ρ for p = 7/2. Units Msun/kpc³.
    pub fn log_number_density(&self, x: &[f64; 3]) -> f64 {
        let rho0 = 3.0 * self.mass_msun / (4.0 * std::f64::consts::PI * self.scale_kpc.powi(3));
        rho0.ln() + (self.df_power + 1.5) * (-self.potential(x) * self.scale_kpc / self.gm()).ln()
    }

    /// ln A, so that ∫ A (-E)^p d³v = n(x) of [`Plummer::log_number_density`].
    fn log_norm(&self) -> f64 {
        let p = self.df_power;
        let rho0 = 3.0 * self.mass_msun / (4.0 * std::f64::consts::PI * self.scale_kpc.powi(3));
        rho0.ln()
            - (4.0 * std::f64::consts::PI * 2f64.powf(1.5) * speed_integral(p)).ln()
            - (p + 1.5) * (self.gm() / self.scale_kpc).ln()
    }

    /// log f and its exact gradients at (x kpc, v km/s); [`LogFGrad::EMPTY`] for unbound
    /// velocities (E >= 0, where f = 0).
    pub fn log_f(&self, x: &[f64; 3], v: &[f64; 3]) -> LogFGrad {
        let phi = self.potential(x);
        let v2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        let e = 0.5 * v2 + phi;
        if e >= 0.0 {
            return LogFGrad::EMPTY;
        }
        let p = self.df_power;
        let a = self.acceleration(x);
        // ∂ ln(-E)/∂x = -∇Φ/(-E) = a/(-E);  ∂ ln(-E)/∂v = -v/(-E).
        let mut g = LogFGrad {
            log_f: self.log_norm() + p * (-e).ln(),
            d_dx: [0.0; 3],
            d_dv: [0.0; 3],
        };
        for j in 0..3 {
            g.d_dx[j] = p * a[j] / (-e);
            g.d_dv[j] = -p * v[j] / (-e);
        }
        if let Some(rot) = self.rotation {
            let lz = x[0] * v[1] - x[1] * v[0];
            let t = (lz / rot.lz_scale).tanh();
            g.log_f += (1.0 + rot.alpha * t).ln();
            // d/dLz ln(1 + α tanh(Lz/L0)) = α (1 - tanh²) / (L0 (1 + α tanh)).
            let h = rot.alpha * (1.0 - t * t) / (rot.lz_scale * (1.0 + rot.alpha * t));
            g.d_dx[0] += h * v[1];
            g.d_dx[1] -= h * v[0];
            g.d_dv[0] -= h * x[1];
            g.d_dv[1] += h * x[0];
        }
        g
    }

    /// `k` velocities from f(v | x), drawn with the random stream of `seed`: speed by rejection
    /// from q² (1 - q²)^p (q = v / v_esc), isotropic direction, then the sign of v_φ set positive
    /// with probability (1 + α tanh(|L_z|/L_0)) / 2 (exact: the two signs have equal E).
    pub fn sample_at(&self, x: &[f64; 3], k: usize, seed: u64) -> Vec<[f64; 3]> {
        let mut rng = stream(seed, PLUMMER_DRAW);
        let p = self.df_power;
        let v_esc = (-2.0 * self.potential(x)).sqrt();
        let q2_peak = 1.0 / (1.0 + p);
        let g_max = q2_peak * (1.0 - q2_peak).powf(p);
        let r_cyl = (x[0] * x[0] + x[1] * x[1]).sqrt();
        (0..k)
            .map(|_| {
                let q = loop {
                    let q: f64 = rng.random();
                    let u: f64 = rng.random();
                    if u * g_max <= q * q * (1.0 - q * q).powf(p) {
                        break q;
                    }
                };
                let dir = loop {
                    let d: [f64; 3] = [
                        StandardNormal.sample(&mut rng),
                        StandardNormal.sample(&mut rng),
                        StandardNormal.sample(&mut rng),
                    ];
                    let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                    if n > 1e-12 {
                        break [d[0] / n, d[1] / n, d[2] / n];
                    }
                };
                let mut v = [q * v_esc * dir[0], q * v_esc * dir[1], q * v_esc * dir[2]];
                if let (Some(rot), true) = (self.rotation, r_cyl > 0.0) {
                    let e_phi = [-x[1] / r_cyl, x[0] / r_cyl];
                    let v_phi = v[0] * e_phi[0] + v[1] * e_phi[1];
                    let lz_abs = (r_cyl * v_phi).abs();
                    let p_pos = 0.5 * (1.0 + rot.alpha * (lz_abs / rot.lz_scale).tanh());
                    let want = if rng.random::<f64>() < p_pos {
                        1.0
                    } else {
                        -1.0
                    };
                    if v_phi * want < 0.0 {
                        v[0] -= 2.0 * v_phi * e_phi[0];
                        v[1] -= 2.0 * v_phi * e_phi[1];
                    }
                }
                v
            })
            .collect()
    }
}

impl PhaseSpaceDensity for Plummer {
    fn log_density(&self, x: &[[f64; 3]]) -> Result<Vec<f64>> {
        Ok(x.iter().map(|p| self.log_number_density(p)).collect())
    }

    fn sample_velocities(&self, x: &[[f64; 3]], k: usize, seeds: &[u64]) -> Result<Vec<[f64; 3]>> {
        if seeds.len() != x.len() {
            bail!("{} seeds for {} positions", seeds.len(), x.len());
        }
        Ok(x.par_iter()
            .zip(seeds)
            .flat_map_iter(|(p, &s)| self.sample_at(p, k, s))
            .collect())
    }

    fn grad_log_f(&self, x: &[[f64; 3]], v: &[[f64; 3]]) -> Result<Vec<LogFGrad>> {
        let k = velocities_per_point(x, v)?;
        Ok(v.par_iter()
            .enumerate()
            .map(|(n, vn)| self.log_f(&x[n / k], vn))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamics::truth::{check_against_plummer, shell_points};
    use crate::dynamics::{
        accelerations, accelerations_seeded, poisson_density, EomOptions, Fit, Form, Mixture,
        Status,
    };
    use crate::seed::{point_seed, stream};

    const M: f64 = 1e8;
    const B: f64 = 0.5;

    fn rel(a: &[f64; 3], b: &[f64; 3]) -> f64 {
        let d: f64 = (0..3).map(|j| (a[j] - b[j]).powi(2)).sum::<f64>().sqrt();
        d / b.iter().map(|c| c * c).sum::<f64>().sqrt()
    }

    fn opts(form: Form) -> EomOptions {
        EomOptions {
            k: 64,
            seed: 5,
            form,
            bootstrap: 20,
            ..EomOptions::default()
        }
    }

    #[test]
    fn gamma_and_speed_integrals() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-13);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-13);
        assert!((speed_integral(3.5) - 7.0 * std::f64::consts::PI / 512.0).abs() < 1e-15);
        assert!((speed_integral(1.0) - 2.0 / 15.0).abs() < 1e-15);
    }

    #[test]
    fn density_of_the_df_is_plummers() {
        let s = Plummer::new(M, B);
        for r in [0.0, 0.05, 0.5, 2.0, 10.0] {
            let x = [r * 0.6, r * 0.0, r * 0.8];
            let n = s.log_number_density(&x).exp();
            assert!((n / s.mass_density(&x) - 1.0).abs() < 1e-12, "r = {r}");
        }
        // ∫ f d³v by quadrature over speed at one point equals n(x), for p = 3.5 and 2.
        for p in [3.5, 2.0] {
            let s = Plummer::new(M, B).with_power(p);
            let x = [0.3, -0.2, 0.4];
            let v_esc = (-2.0 * s.potential(&x)).sqrt();
            let m = 20000;
            let h = v_esc / m as f64;
            let integral: f64 = (0..m)
                .map(|i| {
                    let v = (i as f64 + 0.5) * h;
                    4.0 * std::f64::consts::PI * v * v * s.log_f(&x, &[v, 0.0, 0.0]).log_f.exp()
                })
                .sum::<f64>()
                * h;
            let n = s.log_number_density(&x).exp();
            assert!(
                (integral / n - 1.0).abs() < 1e-5,
                "p = {p}: {integral} vs {n}"
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let models = [
            Plummer::new(M, B),
            Plummer::new(M, B).with_power(2.0).rotating(0.6, 5.0),
        ];
        let x = [0.31, -0.22, 0.17];
        let v = [12.0, 21.0, -7.0];
        for s in models {
            let g = s.log_f(&x, &v);
            let h = 1e-6;
            for j in 0..3 {
                let (mut xp, mut xm, mut vp, mut vm) = (x, x, v, v);
                xp[j] += h;
                xm[j] -= h;
                vp[j] += h * 30.0;
                vm[j] -= h * 30.0;
                let dx = (s.log_f(&xp, &v).log_f - s.log_f(&xm, &v).log_f) / (2.0 * h);
                let dv = (s.log_f(&x, &vp).log_f - s.log_f(&x, &vm).log_f) / (60.0 * h);
                assert!(
                    (g.d_dx[j] - dx).abs() < 1e-6 * (1.0 + dx.abs()),
                    "{j}: {g:?} {dx}"
                );
                assert!(
                    (g.d_dv[j] - dv).abs() < 1e-6 * (1.0 + dv.abs()),
                    "{j}: {g:?} {dv}"
                );
            }
        }
    }

    #[test]
    fn sampled_velocities_follow_the_df() {
        // <v²> = v_esc² (3/2)/(p + 5/2); for p = 7/2 that is -Φ/2 (virial, isotropic Plummer).
        let n = 40000;
        for p in [3.5, 1.5] {
            let s = Plummer::new(M, B).with_power(p);
            for r in [0.05, 0.5, 5.0] {
                let x = [r, 0.0, 0.0];
                let v = s.sample_at(&x, n, 11);
                let mean_v2 = v
                    .iter()
                    .map(|v| v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
                    .sum::<f64>()
                    / n as f64;
                let want = -2.0 * s.potential(&x) * 1.5 / (p + 2.5);
                assert!(
                    (mean_v2 / want - 1.0).abs() < 0.02,
                    "p {p} r {r}: {mean_v2} vs {want}"
                );
            }
        }
        // Rotation: with L_0 -> 0 the share of L_z > 0 is (1 + α)/2 = 0.8.
        let s = Plummer::new(M, B).rotating(0.6, 1e-6);
        let x = [0.4, 0.3, 0.1];
        let v = s.sample_at(&x, n, 3);
        let pos = v.iter().filter(|v| x[0] * v[1] - x[1] * v[0] > 0.0).count() as f64 / n as f64;
        assert!((pos - 0.8).abs() < 0.01, "{pos}");
    }

    /// The acceptance test of the solver: exact accelerations from 0.1 b to 10 b, both forms,
    /// both fits, isotropic and rotating DFs.
    #[test]
    fn solver_recovers_plummer_accelerations() {
        let x = shell_points(0.1 * B, 10.0 * B, 60);
        for s in [Plummer::new(M, B), Plummer::new(M, B).rotating(0.6, 10.0)] {
            for (form, fit) in [
                (Form::Log, Fit::Tls),
                (Form::Linear, Fit::Tls),
                (Form::Log, Fit::Ols),
            ] {
                let o = EomOptions { fit, ..opts(form) };
                let acc = accelerations(&s, &x, &o, &mut |_, _| {}).unwrap();
                let mut worst: f64 = 0.0;
                for (p, a) in x.iter().zip(&acc) {
                    assert_eq!(a.status, Status::Ok);
                    assert_eq!(a.samples, 64);
                    let e = rel(&a.a, &s.acceleration(p));
                    worst = worst.max(e);
                    assert!(
                        e < 1e-6,
                        "{form:?} {fit:?} {:?} at {p:?}: {:?} rel {e}",
                        s.rotation,
                        a.a
                    );
                    assert!(a.residual < 1e-6, "residual {}", a.residual);
                    assert!(a.condition < 1e3, "condition {}", a.condition);
                    let err = a.error.iter().map(|e| e * e).sum::<f64>().sqrt();
                    assert!(err < 1e-6 * s.acceleration(p).iter().map(|c| c.abs()).sum::<f64>());
                }
                eprintln!(
                    "{form:?} {fit:?} rotation {:?}: worst relative error {worst:.2e}",
                    s.rotation
                );
            }
        }
    }

    /// The harness of the acceptance test on trained flows passes on the exact DF and fails on
    /// a wrong one (a DF of twice the mass gives accelerations twice too large).
    #[test]
    fn truth_check_tells_right_from_wrong() {
        let truth = Plummer::new(M, B);
        let o = opts(Form::Log);
        let good = check_against_plummer(&truth, &truth, 0.5 * B, 5.0 * B, 50, &o).unwrap();
        assert_eq!(good.solved, 50);
        assert!(good.median_relative_error < 1e-9 && good.radial_sign_right == 1.0);
        let wrong = Plummer::new(2.0 * M, B);
        let bad = check_against_plummer(&wrong, &truth, 0.5 * B, 5.0 * B, 50, &o).unwrap();
        assert!((bad.median_relative_error - 1.0).abs() < 1e-6, "{bad:?}");
        assert_eq!(bad.radial_sign_right, 1.0);
    }

    /// Sums of steady states in one potential (what ensembles and overlapping clusters give) are
    /// steady states: the mixture solves exactly too, and draws from both parts.
    #[test]
    fn mixtures_solve_exactly() {
        let mix = Mixture {
            components: vec![
                (1.0, Plummer::new(M, B)),
                (3.0, Plummer::new(M, B).with_power(1.5).rotating(-0.5, 3.0)),
            ],
        };
        let x = shell_points(0.1 * B, 10.0 * B, 30);
        for form in [Form::Log, Form::Linear] {
            let acc = accelerations(&mix, &x, &opts(form), &mut |_, _| {}).unwrap();
            for (p, a) in x.iter().zip(&acc) {
                let e = rel(&a.a, &mix.components[0].1.acceleration(p));
                assert!(e < 1e-6, "{form:?} at {p:?}: rel {e}");
            }
        }
        // Mixture gradients equal those of the summed density (finite differences).
        let xq = [[0.3, 0.1, -0.2]];
        let v = mix.sample_velocities(&xq, 4, &[9]).unwrap();
        let g = mix.grad_log_f(&xq, &v).unwrap();
        let total = |x: &[f64; 3], v: &[f64; 3]| {
            let a = mix.components[0].1.log_f(x, v).log_f.exp();
            let b = mix.components[1].1.log_f(x, v).log_f.exp();
            (a + 3.0 * b).ln()
        };
        for (vn, gn) in v.iter().zip(&g) {
            assert!((gn.log_f - total(&xq[0], vn)).abs() < 1e-10);
            let h = 1e-5;
            let mut vp = *vn;
            let mut vm = *vn;
            vp[1] += h;
            vm[1] -= h;
            let dv = (total(&xq[0], &vp) - total(&xq[0], &vm)) / (2.0 * h);
            assert!((gn.d_dv[1] - dv).abs() < 1e-6 * (1.0 + dv.abs()));
        }
        // The share of draws from the p = 1.5 part is 3 n_2 / (n_1 + 3 n_2) (bound speeds differ
        // in distribution; the mean v² tells the mixture apart from either part).
        let xp = [[0.4, 0.0, 0.0]];
        let n = 40000;
        let v = mix.sample_velocities(&xp, n, &[1]).unwrap();
        let mean_v2 = v
            .iter()
            .map(|v| v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
            .sum::<f64>()
            / n as f64;
        let n1 = mix.components[0].1.log_number_density(&xp[0]).exp();
        let n2 = 3.0 * mix.components[1].1.log_number_density(&xp[0]).exp();
        let v_esc2 = -2.0 * mix.components[0].1.potential(&xp[0]);
        let want = (n1 * v_esc2 * 1.5 / 6.0 + n2 * v_esc2 * 1.5 / 4.0) / (n1 + n2);
        assert!((mean_v2 / want - 1.0).abs() < 0.02, "{mean_v2} vs {want}");
    }

    /// A density that does not depend on v_z cannot constrain a_z: NaN and the flag, not garbage.
    struct NoVz;
    impl PhaseSpaceDensity for NoVz {
        fn log_density(&self, x: &[[f64; 3]]) -> Result<Vec<f64>> {
            Ok(vec![0.0; x.len()])
        }
        fn sample_velocities(
            &self,
            x: &[[f64; 3]],
            k: usize,
            seeds: &[u64],
        ) -> Result<Vec<[f64; 3]>> {
            Ok(x.iter()
                .zip(seeds)
                .flat_map(|(_, &s)| {
                    let mut r = stream(s, 1);
                    (0..k)
                        .map(|_| {
                            [
                                StandardNormal.sample(&mut r),
                                StandardNormal.sample(&mut r),
                                StandardNormal.sample(&mut r),
                            ]
                        })
                        .collect::<Vec<[f64; 3]>>()
                })
                .collect())
        }
        fn grad_log_f(&self, x: &[[f64; 3]], v: &[[f64; 3]]) -> Result<Vec<LogFGrad>> {
            let k = velocities_per_point(x, v)?;
            Ok(v.iter()
                .enumerate()
                .map(|(n, v)| {
                    let x = x[n / k];
                    LogFGrad {
                        log_f: -0.5 * (x[0] * x[0] + v[0] * v[0] + v[1] * v[1]),
                        d_dx: [-x[0], 0.0, 0.0],
                        d_dv: [-v[0], -v[1], 0.0],
                    }
                })
                .collect())
        }
    }

    #[test]
    fn velocity_independent_direction_is_flagged() {
        let x = vec![[0.5, 0.0, 0.0], [1.0, 2.0, 3.0]];
        let acc = accelerations(&NoVz, &x, &opts(Form::Log), &mut |_, _| {}).unwrap();
        for a in &acc {
            assert_eq!(a.status, Status::IllConditioned);
            assert_eq!(a.status.flag(), 1);
            assert!(a.a.iter().all(|c| c.is_nan()));
            assert!(
                a.condition.is_infinite() || a.condition > 1e12,
                "{}",
                a.condition
            );
        }
    }

    #[test]
    fn points_outside_the_density_are_flagged() {
        // A mixture whose only part has no support: NaN draws, EMPTY gradients, flag 2.
        struct Nowhere;
        impl PhaseSpaceDensity for Nowhere {
            fn log_density(&self, x: &[[f64; 3]]) -> Result<Vec<f64>> {
                Ok(vec![f64::NEG_INFINITY; x.len()])
            }
            fn sample_velocities(
                &self,
                x: &[[f64; 3]],
                k: usize,
                _: &[u64],
            ) -> Result<Vec<[f64; 3]>> {
                Ok(vec![[f64::NAN; 3]; x.len() * k])
            }
            fn grad_log_f(&self, _: &[[f64; 3]], v: &[[f64; 3]]) -> Result<Vec<LogFGrad>> {
                Ok(vec![LogFGrad::EMPTY; v.len()])
            }
        }
        let mix = Mixture {
            components: vec![(1.0, Nowhere)],
        };
        let acc =
            accelerations(&mix, &[[1.0, 0.0, 0.0]], &opts(Form::Log), &mut |_, _| {}).unwrap();
        assert_eq!(acc[0].status, Status::NoDensity);
        assert_eq!(acc[0].samples, 0);
        assert!(acc[0].a[0].is_nan());
    }

    #[test]
    fn results_do_not_depend_on_batching() {
        let s = Plummer::new(M, B).rotating(0.6, 10.0);
        let x = shell_points(0.1, 3.0, 23);
        let mut o = opts(Form::Log);
        o.batch_points = 1000;
        let a = accelerations(&s, &x, &o, &mut |_, _| {}).unwrap();
        o.batch_points = 4;
        let mut calls = 0;
        let b = accelerations(&s, &x, &o, &mut |_, _| calls += 1).unwrap();
        assert_eq!(calls, 6);
        assert_eq!(a, b);
        // Points with the same seed get the same draws (common random numbers).
        let seeds = vec![point_seed(5, 0); 2];
        let c = accelerations_seeded(&s, &[x[0], x[0]], &seeds, &o, &mut |_, _| {}).unwrap();
        assert_eq!(c[0], c[1]);
        assert_eq!(c[0], a[0]);
    }

    #[test]
    fn poisson_density_recovers_plummer_density() {
        let s = Plummer::new(M, B);
        let x = vec![[0.2 * B, 0.0, 0.0], [0.0, B, 0.0], [1.0, 1.0, 1.0]];
        let mut o = opts(Form::Log);
        o.k = 16;
        let rho = poisson_density(&s, &x, 1e-3 * B, &o, &mut |_, _| {}).unwrap();
        for (p, r) in x.iter().zip(&rho) {
            let want = s.mass_density(p);
            assert!((r / want - 1.0).abs() < 1e-4, "{p:?}: {r} vs {want}");
        }
    }
}
