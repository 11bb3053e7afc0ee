//! Continuous normalizing flows (neural ODEs) in 3D with the exact trace of the Jacobian.
//!
//! A [`Flow`] transports data `x` (after affine whitening) to a standard normal base variable
//! `z` by integrating `dy/dt = F(y, t; c)` from `t = 0` to `t = t_end`. The log-density follows
//! from the instantaneous change of variables,
//! `log p(x) = log N(z) + ∫ tr(∂F/∂y) dt + log |det A|`, where the trace is computed exactly by
//! forward-mode tangent propagation through the MLP ([`trace`]).
//!
//! The crate offers two layers:
//! - a plain-data API on [`Flow`] (`&[[f64; 3]]` in, `Vec<f64>` out) for callers that do not
//!   want to touch burn;
//! - tensor-level functions ([`trace`], [`ode`], [`Flow::log_prob_tensor`], …) for batch work on
//!   the device.
//!
//! Backends are chosen at run time with [`parse_device`]: `flex` (default), and with the `tch`
//! feature `libtorch` (CPU) and `cuda:N`.

#![warn(missing_docs)]
// Small dense linear algebra reads best with index loops.
#![allow(clippy::needless_range_loop)]

pub mod backend;
pub mod checkpoint;
pub mod compress;
pub mod error;
pub mod field;
pub mod flow;
pub mod ode;
pub mod parallel;
pub mod trace;
pub mod train;

pub use backend::{parse_device, DeviceSpec};
pub use burn::tensor::Device;
pub use compress::RadialCompression;
pub use error::CnfError;
pub use field::{Activation, VectorField};
pub use flow::{Flow, FlowConfig, Solver, Whitening};
pub use ode::{Dopri5Stats, OdeTolerance};
pub use train::{EpochReport, LrSchedule, TrainConfig, TrainReport};
