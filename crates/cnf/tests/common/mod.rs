//! Shared helpers of the integration tests: device choice and samplers.
#![allow(dead_code)]

use cnf::{parse_device, Device, FlowConfig};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// Device under test: `CNF_TEST_DEVICE`, else libtorch with the `tch` feature, else flex.
pub fn device() -> Device {
    let spec = std::env::var("CNF_TEST_DEVICE").unwrap_or_else(|_| {
        if cfg!(feature = "tch") {
            "libtorch".into()
        } else {
            "flex".into()
        }
    });
    eprintln!("cnf tests on device '{spec}'");
    parse_device(&spec).expect("CNF_TEST_DEVICE names a usable device")
}

/// Seeded RNG.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Standard normal 3-vector.
pub fn normal3(rng: &mut StdRng) -> [f64; 3] {
    [
        StandardNormal.sample(rng),
        StandardNormal.sample(rng),
        StandardNormal.sample(rng),
    ]
}

/// Uniform in [lo, hi).
pub fn uniform(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    rng.random_range(lo..hi)
}

/// `n` standard normal 3-vectors from seed `seed`.
pub fn normal_sample(seed: u64, n: usize) -> Vec<[f64; 3]> {
    let mut rng = rng(seed);
    (0..n).map(|_| normal3(&mut rng)).collect()
}

/// A small, fast flow (one hidden layer of `width` units, 2 RK4 steps) for tests of the
/// training loop rather than of accuracy.
pub fn tiny_flow(width: usize) -> FlowConfig {
    FlowConfig {
        width,
        depth: 1,
        rk4_steps: 2,
        ..FlowConfig::default()
    }
}
