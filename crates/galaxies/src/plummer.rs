//! The Plummer sphere: profile and isotropic sampling (Aarseth, Hénon & Wielen 1974).

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::hernquist::unit_vector;
use crate::G;

/// A Plummer sphere ρ(r) = 3M / (4π b³) (1 + r²/b²)^(−5/2), isotropic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Plummer {
    /// Dynamical mass in Msun (sets the velocities).
    pub mass: f64,
    /// Scale radius b in kpc.
    pub scale: f64,
}

impl Plummer {
    /// Mass density at radius `r` (kpc) in Msun/kpc³.
    pub fn density(&self, r: f64) -> f64 {
        let b = self.scale;
        3.0 * self.mass / (4.0 * std::f64::consts::PI * b.powi(3))
            * (1.0 + r * r / (b * b)).powf(-2.5)
    }

    /// Fraction of the mass inside radius `r` (kpc).
    pub fn mass_fraction(&self, r: f64) -> f64 {
        let x = r / self.scale;
        x.powi(3) / (1.0 + x * x).powf(1.5)
    }

    /// One-dimensional velocity dispersion at radius `r` (kpc), km/s:
    /// σ² = GM / (6 √(r² + b²)).
    pub fn sigma(&self, r: f64) -> f64 {
        (G * self.mass / (6.0 * (r * r + self.scale * self.scale).sqrt())).sqrt()
    }

    /// Draws a position (kpc, truncated at `r_max`) and velocity (km/s) relative to the centre.
    pub fn sample<R: Rng + ?Sized>(&self, r_max: f64, rng: &mut R) -> ([f64; 3], [f64; 3]) {
        let umax = self.mass_fraction(r_max);
        let u = (rng.random::<f64>() * umax).max(1e-300);
        let r = self.scale / (u.powf(-2.0 / 3.0) - 1.0).sqrt();
        let d = unit_vector(rng);
        // Speed v = q v_esc with q drawn from g(q) ∝ q² (1 − q²)^(7/2) (max < 0.1).
        let q = loop {
            let q: f64 = rng.random();
            if 0.1 * rng.random::<f64>() < q * q * (1.0 - q * q).powf(3.5) {
                break q;
            }
        };
        let v = q * (2.0 * G * self.mass).sqrt() * (r * r + self.scale * self.scale).powf(-0.25);
        let e = unit_vector(rng);
        (
            [r * d[0], r * d[1], r * d[2]],
            [v * e[0], v * e[1], v * e[2]],
        )
    }
}
