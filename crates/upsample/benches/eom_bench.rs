//! Throughput of the EOM acceleration solver: accelerations per second per backend.
//!
//! - `solver`: the analytic Plummer sphere (no flows): cost of sampling, M/B assembly, the 3×3
//!   solves and the bootstrap alone.
//! - `flows backend=…`: a run's flows (`UPSAMPLE_EOM_MODELS=DIR`, a models/ folder), or else one
//!   cluster of fresh flows of the default architecture (width 64, depth 3; untrained fields are
//!   smoother than trained ones, so the adaptive solver takes fewer steps: a lower bound on cost).
//!
//! `EOM_BENCH_POINTS` positions (default 256), `EOM_BENCH_K` velocities each (default 128),
//! `EOM_BENCH_BOOTSTRAP` (default 100), `EOM_BENCH_BACKENDS` a comma list of devices (default:
//! flex, plus libtorch with the `tch` feature, plus cuda:0 when usable).

use std::time::Instant;

use cnf::{Flow, FlowConfig};
use upsample::dynamics::harmonic;
use upsample::dynamics::truth::shell_points;
use upsample::dynamics::Plummer;
use upsample::dynamics::{accelerations, EomOptions, PhaseSpaceDensity};
use upsample::models::{Member, ModelSet, VelocityContext};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn time<D: PhaseSpaceDensity + ?Sized>(
    d: &D,
    x: &[[f64; 3]],
    opts: &EomOptions,
) -> anyhow::Result<(f64, usize)> {
    // Warm-up on a few points (first-call costs of the backend), then the timed run.
    accelerations(d, &x[..x.len().min(4)], opts, &mut |_, _| {})?;
    let t = Instant::now();
    let acc = accelerations(d, x, opts, &mut |_, _| {})?;
    let ok = acc.iter().filter(|a| a.status.flag() == 0).count();
    Ok((t.elapsed().as_secs_f64(), ok))
}

fn fresh_models(device: &cnf::Device) -> anyhow::Result<ModelSet> {
    let cfg = |context_dim| FlowConfig {
        context_dim,
        ..FlowConfig::default()
    };
    let mut position = Flow::new(&cfg(0), device, 1)?;
    position.whitening = harmonic::gaussian_flow(0, 0.5, device)?.whitening;
    let mut velocity = Flow::new(&cfg(3), device, 2)?;
    velocity.whitening = harmonic::gaussian_flow(3, 20.0, device)?.whitening;
    Ok(harmonic::model_set(vec![harmonic::cluster(
        0,
        1e8,
        None,
        vec![Member {
            position,
            velocity,
            dispersion: None,
            radial: None,
            context: VelocityContext::Position,
            origin: None,
        }],
    )]))
}

fn main() {
    let n = env("EOM_BENCH_POINTS", 256);
    let k = env("EOM_BENCH_K", 128);
    let opts = EomOptions {
        k,
        bootstrap: env("EOM_BENCH_BOOTSTRAP", 100),
        ..EomOptions::default()
    };
    let s = Plummer::new(1e8, 0.5).rotating(0.6, 10.0);
    let xs = shell_points(0.05, 5.0, 20 * n);
    match time(&s, &xs, &opts) {
        Ok((t, _)) => println!(
            "eom bench solver (analytic Plummer, K={k}, bootstrap {}): {:.0} accelerations/s",
            opts.bootstrap,
            xs.len() as f64 / t
        ),
        Err(e) => println!("eom bench solver: failed: {e:#}"),
    }
    let backends: Vec<String> = match std::env::var("EOM_BENCH_BACKENDS") {
        Ok(s) => s.split(',').map(|s| s.trim().to_string()).collect(),
        Err(_) => {
            let mut v = vec!["flex".to_string()];
            if cnf::parse_device("libtorch").is_ok() {
                v.push("libtorch".into());
                match cnf::backend::cuda_available(0) {
                    Ok(_) => v.push("cuda:0".into()),
                    Err(reason) => println!("eom bench flows backend=cuda:0 skipped: {reason}"),
                }
            }
            v
        }
    };
    let x = shell_points(0.05, 2.5, n);
    for b in backends {
        let run = || -> anyhow::Result<String> {
            let device = cnf::parse_device(&b)?;
            let (models, what) = match std::env::var("UPSAMPLE_EOM_MODELS") {
                Ok(dir) => (
                    ModelSet::load(std::path::Path::new(&dir), &device)?,
                    format!("models {dir}"),
                ),
                Err(_) => (
                    fresh_models(&device)?,
                    "fresh flows width 64 depth 3".to_string(),
                ),
            };
            let (t, ok) = time(&models, &x, &opts)?;
            Ok(format!(
                "eom bench flows backend={b}: {:.2} accelerations/s, {:.0} velocity samples/s \
                 ({n} positions, K={k}, {ok} solved, {t:.1} s; {what})",
                n as f64 / t,
                (n * k) as f64 / t
            ))
        };
        match run() {
            Ok(line) => println!("{line}"),
            Err(e) => println!("eom bench flows backend={b}: failed: {e:#}"),
        }
    }
}
