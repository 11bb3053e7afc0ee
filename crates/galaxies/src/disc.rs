//! Model (b): an exponential disc with a radius-dependent velocity ellipsoid and rotation on
//! a stated rotation curve, plus an isotropic Hernquist bulge. Not an equilibrium: the disc's
//! kinematics follow the stated formulas, the bulge its own isotropic distribution function.

use rand::rngs::StdRng;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::hernquist::{Hernquist, OsipkovMerritt};
use crate::population::{
    assemble, draw_component, gauss, split_counts, Component, Draw, MassWeights, Part,
};
use crate::spheroid::Spheroid;
use crate::G;

/// Exponential disc + Hernquist bulge (see the module doc for the formulas).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiscBulge {
    /// Disc mass inside the truncation radius, Msun.
    pub disc_mass: f64,
    /// Disc scale length R_d, kpc: Σ(R) ∝ exp(−R/R_d).
    pub scale_length: f64,
    /// Disc scale height z_d, kpc: ρ(z) ∝ sech²(z/z_d).
    pub scale_height: f64,
    /// Disc truncation radius in units of R_d.
    pub truncation: f64,
    /// Central radial dispersion σ_0, km/s: σ_R(R) = σ_0 exp(−R/2R_d).
    pub sigma_0: f64,
    /// σ_z / σ_R (dimensionless, fixed).
    pub sigma_z_ratio: f64,
    /// Bulge (isotropic Hernquist), truncated at `bulge_truncation` scale radii.
    pub bulge: Hernquist,
    /// Bulge truncation radius in units of its scale radius.
    pub bulge_truncation: f64,
    /// Asymptotic speed v_h of the stated halo term, km/s.
    pub halo_speed: f64,
    /// Core radius r_h of the stated halo term, kpc.
    pub halo_core: f64,
}

impl Default for DiscBulge {
    /// M_d = 5e10 Msun, R_d = 3 kpc, z_d = 0.3 kpc, truncated at 6 R_d, σ_0 = 100 km/s,
    /// σ_z = 0.6 σ_R; bulge 1e10 Msun, a = 0.7 kpc, truncated at 15 a; halo 200 km/s, core 5 kpc.
    fn default() -> Self {
        DiscBulge {
            disc_mass: 5e10,
            scale_length: 3.0,
            scale_height: 0.3,
            truncation: 6.0,
            sigma_0: 100.0,
            sigma_z_ratio: 0.6,
            bulge: Hernquist {
                mass: 1e10,
                scale: 0.7,
            },
            bulge_truncation: 15.0,
            halo_speed: 200.0,
            halo_core: 5.0,
        }
    }
}

/// The disc alone, as a drawable component.
struct Disc<'a>(&'a DiscBulge);

impl Component for Disc<'_> {
    fn draw_one(&self, rng: &mut StdRng) -> ([f64; 3], [f64; 3]) {
        let m = self.0;
        let r_max = m.truncation * m.scale_length;
        // R ~ Gamma(2, R_d) (Σ ∝ e^(−R/R_d) times R), redrawn beyond the truncation.
        let big_r = loop {
            let u1 = 1.0 - rng.random::<f64>();
            let u2 = 1.0 - rng.random::<f64>();
            let r = -m.scale_length * (u1 * u2).ln();
            if r < r_max {
                break r;
            }
        };
        // z from sech²: CDF (1 + tanh(z/z_d))/2, limited to |z| < 10 z_d.
        let z = loop {
            let u: f64 = rng.random();
            let z = m.scale_height * (2.0 * u - 1.0).atanh();
            if z.is_finite() && z.abs() < 10.0 * m.scale_height {
                break z;
            }
        };
        let phi = 2.0 * std::f64::consts::PI * rng.random::<f64>();
        let (s, c) = phi.sin_cos();
        let sr = m.sigma_r(big_r);
        let vr = sr * gauss(rng);
        let vphi = m.mean_vphi(big_r) + m.sigma_phi(big_r) * gauss(rng);
        let vz = m.sigma_z(big_r) * gauss(rng);
        (
            [big_r * c, big_r * s, z],
            [vr * c - vphi * s, vr * s + vphi * c, vz],
        )
    }
    fn max_radius(&self) -> f64 {
        let m = self.0;
        (m.truncation * m.scale_length).hypot(10.0 * m.scale_height)
    }
}

impl DiscBulge {
    /// Component labels: 0 disc, 1 bulge.
    pub const LABELS: [&'static str; 2] = ["disc", "bulge"];

    /// The bulge as an isotropic spheroid.
    pub fn bulge_spheroid(&self) -> Spheroid {
        Spheroid {
            df: OsipkovMerritt {
                profile: self.bulge,
                anisotropy_radius: f64::INFINITY,
            },
            truncation: self.bulge_truncation,
        }
    }

    /// Disc mass density at cylindrical (R, z) in kpc, Msun/kpc³ (untruncated formula).
    pub fn disc_density(&self, big_r: f64, z: f64) -> f64 {
        let (rd, zd) = (self.scale_length, self.scale_height);
        let x = self.truncation;
        let norm_r = 1.0 - (1.0 + x) * (-x).exp(); // mass fraction inside the truncation
        self.disc_mass / norm_r / (2.0 * std::f64::consts::PI * rd * rd) * (-big_r / rd).exp()
            / (2.0 * zd)
            / (z / zd).cosh().powi(2)
    }

    /// Stated circular speed in the plane, km/s: v_c² = G M_b(<R) / R + v_h² R² / (R² + r_h²).
    pub fn circular_speed(&self, big_r: f64) -> f64 {
        let r = big_r.max(1e-9);
        let h = self.halo_speed * self.halo_speed * r * r / (r * r + self.halo_core.powi(2));
        (G * self.bulge.enclosed_mass(r) / r + h).sqrt()
    }

    /// Radial dispersion σ_R(R) = σ_0 exp(−R / 2R_d) in km/s.
    pub fn sigma_r(&self, big_r: f64) -> f64 {
        self.sigma_0 * (-big_r / (2.0 * self.scale_length)).exp()
    }

    /// Vertical dispersion σ_z = ratio × σ_R in km/s.
    pub fn sigma_z(&self, big_r: f64) -> f64 {
        self.sigma_z_ratio * self.sigma_r(big_r)
    }

    /// Azimuthal dispersion from the epicyclic ratio, σ_φ² / σ_R² = κ² / 4Ω² =
    /// (1 + d ln v_c / d ln R) / 2, in km/s.
    pub fn sigma_phi(&self, big_r: f64) -> f64 {
        let r = big_r.max(1e-3);
        let h = 1e-4;
        let dlnv = (self.circular_speed(r * (1.0 + h)).ln()
            - self.circular_speed(r * (1.0 - h)).ln())
            / (2.0 * h);
        self.sigma_r(big_r) * (0.5 * (1.0 + dlnv)).max(0.0).sqrt()
    }

    /// Mean rotation v̄_φ(R) in km/s from the asymmetric drift relation (thin disc, no
    /// vertical term): v̄_φ² = v_c² − σ_R² (σ_φ²/σ_R² − 1 + 2R/R_d), floored at 0.
    pub fn mean_vphi(&self, big_r: f64) -> f64 {
        let sr2 = self.sigma_r(big_r).powi(2);
        let sp2 = self.sigma_phi(big_r).powi(2);
        let v2 = self.circular_speed(big_r).powi(2)
            - (sp2 - sr2 + sr2 * 2.0 * big_r / self.scale_length);
        v2.max(0.0).sqrt()
    }

    /// Draws `n` particles with `seed`, shared between disc and bulge in proportion to mass.
    pub fn draw(&self, n: usize, seed: u64, weights: Option<&MassWeights>) -> Draw {
        let bulge = self.bulge_spheroid();
        let counts = split_counts(n, &[self.disc_mass, bulge.drawn_mass()]);
        let disc = draw_component(&Disc(self), counts[0], seed, weights);
        let bul = draw_component(&bulge, counts[1], crate::population::mix(seed, 1), weights);
        let parts = vec![
            Part {
                label: 0,
                mass: self.disc_mass,
                points: disc,
            },
            Part {
                label: 1,
                mass: bulge.drawn_mass(),
                points: bul,
            },
        ];
        assemble(parts, seed, weights)
    }
}
