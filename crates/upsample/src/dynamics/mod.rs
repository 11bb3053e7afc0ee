//! Gravitational accelerations from a phase-space density, by least squares on the steady-state
//! collisionless Boltzmann equation (`docs/EOM.md`). Units: kpc, km/s, (km/s)²/kpc.
//!
//! - `density.rs` — the [`PhaseSpaceDensity`] trait the solver works on, mixtures of densities;
//! - `eom.rs` — the equation's terms, the OLS/TLS fit per point, batched accelerations, the
//!   Poisson density; `linalg.rs` — its small dense linear algebra;
//! - `flow_density.rs` — the density of a run's trained flows (the only file here that knows
//!   models exist);
//! - `plummer.rs` — the analytic Plummer sphere (exact reference density);
//! - `truth.rs`, `harmonic.rs` — checks and exact-Gaussian models for tests (`test-support`).

mod density;
mod eom;
mod flow_density;
mod linalg;
mod plummer;

#[cfg(any(test, feature = "test-support"))]
pub mod harmonic;
#[cfg(any(test, feature = "test-support"))]
pub mod truth;

pub use density::{LogFGrad, Mixture, PhaseSpaceDensity};
pub use eom::{
    accelerations, accelerations_seeded, noise_power, normal_equations, poisson_density,
    relative_residual, solve_fit, solve_point, terms, Acceleration, EomOptions, Fit, Form,
    NormalEquations, Status, Term,
};
pub use plummer::{Plummer, Rotation};
