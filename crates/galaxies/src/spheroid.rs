//! Model (a): a cuspy, radially anisotropic spheroid — a Hernquist sphere with an
//! Osipkov–Merritt distribution function, drawn from that distribution function.

use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::hernquist::{Hernquist, OsipkovMerritt};
use crate::population::{assemble, draw_component, Component, Draw, MassWeights, Part};

/// Osipkov–Merritt Hernquist spheroid truncated at `truncation` scale radii (positions only:
/// velocities come from the untruncated distribution function, so every profile inside the
/// truncation is the analytic one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spheroid {
    /// The profile and anisotropy radius.
    pub df: OsipkovMerritt,
    /// Truncation radius in units of the scale radius (dimensionless).
    pub truncation: f64,
}

impl Default for Spheroid {
    /// M = 1e10 Msun, a = 2 kpc, r_a = 1.5 a = 3 kpc, truncated at 40 a.
    fn default() -> Self {
        Spheroid {
            df: OsipkovMerritt {
                profile: Hernquist {
                    mass: 1e10,
                    scale: 2.0,
                },
                anisotropy_radius: 3.0,
            },
            truncation: 40.0,
        }
    }
}

impl Component for Spheroid {
    fn draw_one(&self, rng: &mut StdRng) -> ([f64; 3], [f64; 3]) {
        let x = self.df.sample_position(self.max_radius(), rng);
        (x, self.df.sample_velocity(x, rng))
    }
    fn max_radius(&self) -> f64 {
        self.truncation * self.df.profile.scale
    }
}

impl Spheroid {
    /// Component labels: every particle is 0.
    pub const LABELS: [&'static str; 1] = ["spheroid"];

    /// Mass (Msun) inside the truncation radius: the total mass of a draw.
    pub fn drawn_mass(&self) -> f64 {
        self.df.profile.enclosed_mass(self.max_radius())
    }

    /// Draws `n` particles with `seed` (see [`crate::Model::draw`]).
    pub fn draw(&self, n: usize, seed: u64, weights: Option<&MassWeights>) -> Draw {
        let points = draw_component(self, n, seed, weights);
        let part = Part {
            label: 0,
            mass: self.drawn_mass(),
            points,
        };
        assemble(vec![part], seed, weights)
    }
}
