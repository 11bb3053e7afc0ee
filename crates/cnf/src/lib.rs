#![doc = include_str!("../README.md")]
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

pub use backend::{parse_device, DeviceKind, DeviceSpec};
pub use burn::tensor::Device;
pub use compress::{weighted_median, RadialCompression};
pub use error::CnfError;
pub use field::{Activation, Kernels, VectorField};
pub use flow::{Flow, FlowConfig, Solver, Whitening};
pub use ode::{Dopri5Stats, OdeTolerance};
pub use train::{effective_sample_size, EpochReport, LrSchedule, TrainConfig, TrainReport};
