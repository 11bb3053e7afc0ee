//! Shared helpers of the integration tests: device choice and samplers.
#![allow(dead_code)]

use cnf::{parse_device, Device};
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
