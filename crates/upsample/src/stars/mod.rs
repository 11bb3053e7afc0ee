//! From particles to stars: the initial mass function and lifetimes (`imf.rs`), the kernel
//! method's 6D kernel sizes (`kernel.rs`), the nearest parent in phase space (`parents.rs`) and
//! the assembly of stars, streamed in batches into the catalogue (`assembly.rs`).
//!
//! Knows no flows: the flow method hands in [`PhaseSampler`]s. Every star's randomness comes from
//! `crate::seed` streams keyed on its parent particle's unique identity (`StarParticles::uid`:
//! the ParticleIDs, or with FIRE's child and generation numbers a well-mixed combination) or on
//! its cluster and chunk.

mod assembly;
mod imf;
mod kernel;
mod parents;

pub use assembly::StarTotals;
pub(crate) use assembly::{
    draw_flow_stars, draw_phase_sample, draw_stars, has_parent_identity, PhaseSampler, StarDraw,
    StarSink,
};
pub use imf::{Imf, ImfConfig, Lifetime, MainSequenceScaling};
pub(crate) use kernel::KernelSizes;
pub use kernel::{KernelConfig, KernelSizing};
