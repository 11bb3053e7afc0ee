//! From particles to stars: the initial mass function and lifetimes (`imf.rs`), the kernel
//! method's 6D kernel sizes (`kernel.rs`), the nearest parent in phase space (`parents.rs`) and
//! the assembly of stars, streamed in batches into the catalogue (`assembly.rs`).
//!
//! Knows no flows: the flow method hands in [`PhaseSampler`]s. Every star's randomness comes from
//! `crate::seed` streams keyed on its parent particle or its cluster and chunk.

mod assembly;
mod imf;
mod kernel;
mod parents;

pub use assembly::{draw_flow_stars, draw_stars, PhaseSampler, StarDraw, StarTotals};
pub use imf::{main_sequence_lifetime_gyr, Imf, ImfConfig};
pub use kernel::{epanechnikov_6d, KernelConfig, KernelSizes, KernelSizing};
pub use parents::ParentFinder;
