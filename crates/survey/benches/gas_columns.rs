//! Throughput of extinction from gas (`gas_column.rs`): deposit time and columns per second,
//! on one thread and on all (rayon, batches of 4096 stars, as the pipeline does), against the
//! number of gas particles and the grid size. Prints figures (asserts only that threads give the
//! same columns as one).
//!
//! `cargo bench -p survey --bench gas_columns`; environment: `BENCH_NP` (comma-separated gas
//! particle counts, default 100000,1000000,4000000), `BENCH_NS` (stars, default 1000000),
//! `BENCH_GRIDS` (default 128,256,512).

use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use std::time::Instant;
use survey::gas_column::{ColumnGrid, GasParticles};

/// Comma-separated list from the environment, or the default.
fn list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// Points of an exponential disc: scale length 3 kpc, scale height `hz` kpc.
fn disc(n: usize, hz: f64, seed: u64) -> Vec<[f64; 3]> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let r = -3.0 * (rng.random::<f64>() * rng.random::<f64>()).ln();
            let phi = std::f64::consts::TAU * rng.random::<f64>();
            let z = hz * (rng.random::<f64>() / rng.random::<f64>()).ln();
            [r * phi.cos(), r * phi.sin(), z]
        })
        .collect()
}

fn main() {
    let nps = list("BENCH_NP", &[100_000, 1_000_000, 4_000_000]);
    let ns = list("BENCH_NS", &[1_000_000])[0];
    let grids = list("BENCH_GRIDS", &[128, 256, 512]);
    let threads = rayon::current_num_threads();
    let stars = disc(ns, 0.3, 2);
    let sun = [-8.122, 0.0, -0.0208];
    println!("gas columns: {ns} disc stars, Sun at 8.1 kpc, 60 kpc box, {threads} rayon threads");
    println!("gas particles | grid | cell pc | deposit s | 1 thread stars/s | {threads} threads stars/s | median N_H cm^-2");
    for &np in &nps {
        let pos = disc(np, 0.1, 3);
        let m = vec![1e4; np];
        let xh = vec![0.76; np];
        let f = vec![1.0; np];
        let h = vec![0.05; np];
        let gas = GasParticles {
            pos_kpc: &pos,
            mass_msun: &m,
            hydrogen_fraction: &xh,
            neutral_fraction: &f,
            smoothing_kpc: &h,
            weight: &[],
        };
        for &n in &grids {
            let t = Instant::now();
            let grid = ColumnGrid::deposit(&gas, [0.0; 3], 60.0, n).expect("valid grid");
            let dep = t.elapsed().as_secs_f64();
            // One thread on a tenth of the stars (enough for a stable rate).
            let sub = &stars[..(ns / 10).max(1)];
            let t = Instant::now();
            let serial = grid.columns(sun, sub);
            let one = sub.len() as f64 / t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut all: Vec<f64> = stars
                .par_chunks(4096)
                .flat_map_iter(|c| grid.columns(sun, c))
                .collect();
            let many = ns as f64 / t.elapsed().as_secs_f64();
            assert_eq!(serial[..], all[..serial.len()]);
            all.sort_by(f64::total_cmp);
            println!(
                "{np:>13} | {n:>4} | {:>7.0} | {dep:>9.2} | {one:>16.3e} | {many:>16.3e} | {:.2e}",
                60e3 / n as f64,
                all[ns / 2]
            );
        }
    }
}
