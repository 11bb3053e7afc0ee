//! The Hernquist (1990) sphere and its Osipkov–Merritt distribution function: profile,
//! potential, acceleration, f(Q), the Jeans σ_r(r), and sampling positions and velocities.
//!
//! The OM distribution function is f(Q) with Q = Ψ − v²/2 − L²/(2 r_a²) (Ψ = −Φ > 0). It is
//! the Eddington inversion of ρ_Q(Ψ) = (1 + r²/r_a²) ρ(r(Ψ)). For the Hernquist sphere
//! ρ_Q = ρ + (M / 2π a r_a²)(ψ² − ψ³) with ψ = Ψ a / GM, and each power ψⁿ inverts in closed
//! form (ρ = C Ψⁿ ⇔ f = C Γ(n+1) / (2√2 π^{3/2} Γ(n − ½)) Q^{n − 3/2}), so
//! f = f_iso(Q) + the inversion of that polynomial. Tests check ∫ f d³v = ρ and the Jeans σ_r
//! against the second velocity moment of f.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::G;

/// A Hernquist sphere ρ(r) = M a / (2π r (r + a)³).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hernquist {
    /// Total mass in Msun.
    pub mass: f64,
    /// Scale radius a in kpc.
    pub scale: f64,
}

impl Hernquist {
    /// Mass density at radius `r` (kpc), in Msun/kpc³.
    pub fn density(&self, r: f64) -> f64 {
        let a = self.scale;
        self.mass * a / (2.0 * std::f64::consts::PI * r * (r + a).powi(3))
    }

    /// Mass inside radius `r` (kpc), in Msun.
    pub fn enclosed_mass(&self, r: f64) -> f64 {
        self.mass * r * r / ((r + self.scale) * (r + self.scale))
    }

    /// Radius (kpc) inside which a fraction `u` ∈ [0, 1) of the mass lies.
    pub fn radius_of_mass_fraction(&self, u: f64) -> f64 {
        let s = u.sqrt();
        self.scale * s / (1.0 - s)
    }

    /// Gravitational potential Φ(r) = −GM/(r + a) in (km/s)².
    pub fn potential(&self, r: f64) -> f64 {
        -G * self.mass / (r + self.scale)
    }

    /// Gravitational acceleration at `x` (kpc) in (km/s)²/kpc: −GM x / (r (r + a)²).
    pub fn acceleration(&self, x: [f64; 3]) -> [f64; 3] {
        let r = norm(x).max(1e-12);
        let k = -G * self.mass / (r * (r + self.scale) * (r + self.scale));
        [k * x[0], k * x[1], k * x[2]]
    }

    /// Circular speed at radius `r` (kpc), in km/s.
    pub fn circular_speed(&self, r: f64) -> f64 {
        (G * self.enclosed_mass(r) / r.max(1e-12)).sqrt()
    }

    /// Isotropic distribution function f(E) of the mass, in Msun kpc⁻³ (km/s)⁻³, at binding
    /// energy `e` = Ψ − v²/2 in (km/s)² (Hernquist 1990, eq. 17); 0 for e ≤ 0.
    pub fn isotropic_df(&self, e: f64) -> f64 {
        let vg2 = G * self.mass / self.scale;
        let q2 = e / vg2;
        if q2 <= 0.0 {
            return 0.0;
        }
        let q2 = q2.min(1.0 - 1e-15);
        let q = q2.sqrt();
        let s = (1.0 - q2).sqrt();
        let pi = std::f64::consts::PI;
        let norm =
            self.mass / (8.0 * 2f64.sqrt() * pi.powi(3) * self.scale.powi(3) * vg2.powf(1.5));
        norm / (1.0 - q2).powf(2.5)
            * (3.0 * q.asin() + q * s * (1.0 - 2.0 * q2) * (8.0 * q2 * q2 - 8.0 * q2 - 3.0))
    }
}

/// Hernquist sphere with an Osipkov–Merritt anisotropy: β(r) = r² / (r² + r_a²), isotropic in
/// the centre and radial outside r_a. `anisotropy_radius = ∞` gives the isotropic model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OsipkovMerritt {
    /// The density profile.
    pub profile: Hernquist,
    /// Anisotropy radius r_a in kpc (`f64::INFINITY`: isotropic).
    pub anisotropy_radius: f64,
}

impl OsipkovMerritt {
    /// Distribution function f(Q) of the mass, Msun kpc⁻³ (km/s)⁻³, at Q in (km/s)²; 0 for Q ≤ 0.
    pub fn df(&self, q: f64) -> f64 {
        if q <= 0.0 {
            return 0.0;
        }
        let iso = self.profile.isotropic_df(q);
        if !self.anisotropy_radius.is_finite() {
            return iso;
        }
        // ρ_extra(Ψ) = K (Ψ/Φ0)² − K (Ψ/Φ0)³, each power inverted in closed form.
        let phi0 = G * self.profile.mass / self.profile.scale;
        let k = self.profile.mass
            / (2.0 * std::f64::consts::PI * self.profile.scale * self.anisotropy_radius.powi(2));
        let pi32 = std::f64::consts::PI.powf(1.5);
        let sqrt_pi = std::f64::consts::PI.sqrt();
        // Γ(3)/Γ(3/2) = 4/√π, Γ(4)/Γ(5/2) = 8/√π.
        let a2 = (4.0 / sqrt_pi) / (2.0 * 2f64.sqrt() * pi32);
        let a3 = (8.0 / sqrt_pi) / (2.0 * 2f64.sqrt() * pi32);
        iso + k * (a2 * q.sqrt() / (phi0 * phi0) - a3 * q.powf(1.5) / phi0.powi(3))
    }

    /// Relative potential Ψ(r) = −Φ(r) in (km/s)².
    pub fn psi(&self, r: f64) -> f64 {
        -self.profile.potential(r)
    }

    /// Velocity anisotropy β(r) = 1 − σ_t²/σ_r² (σ_t² per tangential component) at `r` (kpc).
    pub fn beta(&self, r: f64) -> f64 {
        if self.anisotropy_radius.is_finite() {
            r * r / (r * r + self.anisotropy_radius * self.anisotropy_radius)
        } else {
            0.0
        }
    }

    /// (1 + r²/r_a²): the OM stretch of tangential velocities at `r` (kpc).
    fn stretch(&self, r: f64) -> f64 {
        if self.anisotropy_radius.is_finite() {
            1.0 + (r / self.anisotropy_radius).powi(2)
        } else {
            1.0
        }
    }

    /// Radial velocity dispersion σ_r(r) in km/s from the anisotropic Jeans equation:
    /// σ_r² = ∫_r^∞ (r'² + r_a²) ρ G M(<r') / r'² dr' / ((r² + r_a²) ρ(r)).
    pub fn sigma_r(&self, r: f64) -> f64 {
        let p = &self.profile;
        // Integrate in s = ln r' from ln r to ln r + 18 (r' up to 6.6e7 r) with Simpson's rule.
        let n = 4000;
        let (s0, s1) = (r.ln(), r.ln() + 18.0);
        let h = (s1 - s0) / n as f64;
        let w_r = self.stretch(r);
        let integrand = |s: f64| {
            let x = s.exp();
            self.stretch(x) / w_r * p.density(x) * G * p.enclosed_mass(x) / (x * x) * x
        };
        let mut sum = integrand(s0) + integrand(s1);
        for i in 1..n {
            sum += integrand(s0 + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        (sum * h / 3.0 / p.density(r)).sqrt()
    }

    /// Tangential velocity dispersion per component, σ_t = σ_r √(1 − β), in km/s at `r` (kpc).
    pub fn sigma_t(&self, r: f64) -> f64 {
        self.sigma_r(r) * (1.0 - self.beta(r)).sqrt()
    }

    /// Density from the distribution function, ∫ f d³v, in Msun/kpc³ at `r` (kpc), by
    /// quadrature (a check of [`OsipkovMerritt::df`]; use [`Hernquist::density`] otherwise).
    pub fn df_density(&self, r: f64) -> f64 {
        let (m0, _) = self.u_moments(r);
        4.0 * std::f64::consts::PI * m0 / self.stretch(r)
    }

    /// σ_r at `r` (kpc) in km/s from the second moment of f by quadrature (a check of
    /// [`OsipkovMerritt::sigma_r`]).
    pub fn df_sigma_r(&self, r: f64) -> f64 {
        let (m0, m2) = self.u_moments(r);
        (m2 / (3.0 * m0)).sqrt()
    }

    /// ∫ u² f(Ψ − u²/2) du and ∫ u⁴ f du over [0, √(2Ψ)] (u = |(v_r, v_t √(1 + r²/r_a²))|).
    fn u_moments(&self, r: f64) -> (f64, f64) {
        let psi = self.psi(r);
        let umax = (2.0 * psi).sqrt();
        // u = umax sin θ concentrates points where Q → 0 and is smooth at both ends.
        let n = 20000;
        let h = std::f64::consts::FRAC_PI_2 / n as f64;
        let (mut m0, mut m2) = (0.0, 0.0);
        for i in 0..n {
            let t = (i as f64 + 0.5) * h;
            let u = umax * t.sin();
            let w = self.df(psi - 0.5 * u * u) * u * u * umax * t.cos() * h;
            m0 += w;
            m2 += w * u * u;
        }
        (m0, m2)
    }

    /// Draws a velocity (km/s) at position `x` (kpc) from f: u = (v_r, v_t √(1 + r²/r_a²))
    /// is isotropic with |u| distributed as u² f(Ψ − u²/2), drawn by rejection.
    pub fn sample_velocity<R: Rng + ?Sized>(&self, x: [f64; 3], rng: &mut R) -> [f64; 3] {
        let r = norm(x).max(1e-9);
        let psi = self.psi(r);
        // p(t) ∝ t² f(Ψ (1 − t²)), t = u / √(2Ψ) ∈ [0, 1].
        let p = |t: f64| t * t * self.df(psi * (1.0 - t * t));
        let bound = 1.1 * maximum(p);
        let t = loop {
            let t: f64 = rng.random();
            if rng.random::<f64>() * bound < p(t) {
                break t;
            }
        };
        let u = t * (2.0 * psi).sqrt();
        let d = unit_vector(rng);
        let rhat = [x[0] / r, x[1] / r, x[2] / r];
        let ur = u * dot(d, rhat);
        let s = 1.0 / self.stretch(r).sqrt();
        std::array::from_fn(|k| ur * rhat[k] + (u * d[k] - ur * rhat[k]) * s)
    }

    /// Draws a position (kpc) from ρ truncated at `r_max` (kpc): radius from the cumulative
    /// mass, direction isotropic.
    pub fn sample_position<R: Rng + ?Sized>(&self, r_max: f64, rng: &mut R) -> [f64; 3] {
        let p = &self.profile;
        let umax = p.enclosed_mass(r_max) / p.mass;
        let r = p.radius_of_mass_fraction(rng.random::<f64>() * umax);
        let d = unit_vector(rng);
        [r * d[0], r * d[1], r * d[2]]
    }
}

/// Maximum of a unimodal-ish function on [0, 1]: a 64-point grid, then golden-section search
/// in the bracket around the best grid point.
fn maximum(f: impl Fn(f64) -> f64) -> f64 {
    let n = 64;
    let (mut best, mut ib) = (0.0, 0);
    for i in 0..=n {
        let v = f(i as f64 / n as f64);
        if v > best {
            best = v;
            ib = i;
        }
    }
    let (mut lo, mut hi) = (
        (ib.max(1) - 1) as f64 / n as f64,
        ((ib + 1).min(n)) as f64 / n as f64,
    );
    let g = 0.5 * (5f64.sqrt() - 1.0);
    for _ in 0..40 {
        let (a, b) = (hi - g * (hi - lo), lo + g * (hi - lo));
        let (fa, fb) = (f(a), f(b));
        best = best.max(fa).max(fb);
        if fa > fb {
            hi = b;
        } else {
            lo = a;
        }
    }
    best
}

/// Euclidean norm of a 3-vector.
pub(crate) fn norm(x: [f64; 3]) -> f64 {
    dot(x, x).sqrt()
}

/// Dot product of two 3-vectors.
pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// A direction drawn uniformly on the unit sphere.
pub(crate) fn unit_vector<R: Rng + ?Sized>(rng: &mut R) -> [f64; 3] {
    let z: f64 = 2.0 * rng.random::<f64>() - 1.0;
    let phi = 2.0 * std::f64::consts::PI * rng.random::<f64>();
    let s = (1.0 - z * z).max(0.0).sqrt();
    [s * phi.cos(), s * phi.sin(), z]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(ra: f64) -> OsipkovMerritt {
        OsipkovMerritt {
            profile: Hernquist {
                mass: 1e10,
                scale: 1.0,
            },
            anisotropy_radius: ra,
        }
    }

    #[test]
    fn df_integrates_to_the_density() {
        for ra in [f64::INFINITY, 1.0, 1.5] {
            let m = model(ra);
            for r in [0.05, 0.3, 1.0, 3.0, 10.0] {
                let rel = m.df_density(r) / m.profile.density(r) - 1.0;
                assert!(rel.abs() < 2e-3, "r_a {ra} r {r}: ∫f d³v / ρ − 1 = {rel}");
            }
        }
    }

    #[test]
    fn jeans_sigma_r_matches_the_df_moment() {
        for ra in [f64::INFINITY, 1.0] {
            let m = model(ra);
            for r in [0.05, 0.3, 1.0, 3.0, 10.0] {
                let rel = m.sigma_r(r) / m.df_sigma_r(r) - 1.0;
                assert!(rel.abs() < 2e-3, "r_a {ra} r {r}: Jeans/DF σ_r − 1 = {rel}");
            }
        }
    }

    #[test]
    fn acceleration_is_minus_the_potential_gradient() {
        let p = model(1.0).profile;
        let x = [0.7, -1.2, 0.4];
        let r = norm(x);
        let h = 1e-5;
        let dphi = (p.potential(r + h) - p.potential(r - h)) / (2.0 * h);
        let a = p.acceleration(x);
        for k in 0..3 {
            assert!((a[k] + dphi * x[k] / r).abs() < 1e-6 * dphi.abs());
        }
    }
}
