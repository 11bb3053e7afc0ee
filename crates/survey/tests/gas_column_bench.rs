//! Benchmark of gas columns (ignored by default):
//! `cargo test -p survey --release --test gas_column_bench -- --ignored --nocapture`

use rand::{RngExt, SeedableRng};
use survey::gas_column::{ColumnGrid, GasParticles};

#[test]
#[ignore = "benchmark"]
fn bench_gas_columns() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    // An exponential gas disc (R_d = 3 kpc, z_d = 0.1 kpc), 1e6 particles.
    let np: usize = std::env::var("BENCH_NP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let pos: Vec<[f64; 3]> = (0..np)
        .map(|_| {
            let r = -3.0 * (rng.random::<f64>() * rng.random::<f64>()).ln();
            let phi = std::f64::consts::TAU * rng.random::<f64>();
            let z = 0.1 * (rng.random::<f64>() / rng.random::<f64>()).ln();
            [r * phi.cos(), r * phi.sin(), z]
        })
        .collect();
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
    let sun = [-8.122, 0.0, -0.0208];
    // Stars: a disc population within 40 kpc.
    let ns: usize = std::env::var("BENCH_NS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let stars: Vec<[f64; 3]> = (0..ns)
        .map(|_| {
            let r = -3.0 * (rng.random::<f64>() * rng.random::<f64>()).ln();
            let phi = std::f64::consts::TAU * rng.random::<f64>();
            let z = 0.3 * (rng.random::<f64>() / rng.random::<f64>()).ln();
            [r * phi.cos(), r * phi.sin(), z]
        })
        .collect();
    for n in [128, 256, 512] {
        let t = std::time::Instant::now();
        let g = ColumnGrid::deposit(&gas, [0.0; 3], 40.0, n).unwrap();
        let dep = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let c = g.columns(sun, &stars);
        let dt = t.elapsed().as_secs_f64();
        let mut s = c.clone();
        s.sort_by(f64::total_cmp);
        println!(
            "grid {n}^3 ({:.0} pc cells): deposit {np} particles {dep:.2} s; {ns} columns in {dt:.2} s = {:.2e} stars/s on one core; median N_H {:.2e} cm^-2",
            40e3 / n as f64,
            ns as f64 / dt,
            s[ns / 2]
        );
    }
}
