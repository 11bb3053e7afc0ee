//! Throughput of training, log-density and sampling: width 64, depth 3, RK4 with 10 steps,
//! batch 4096, on every backend this build has. One line per backend.
//!
//! `CNF_BENCH_ITERS` sets the timed iterations (default 5), `CNF_BENCH_BACKENDS` a comma list
//! of device strings (default: flex, plus libtorch with the `tch` feature, plus cuda:0 when
//! usable), `CNF_BENCH_BATCH` the batch (default 4096, the workload; a GPU wants more).
//! `CNF_BENCH_MALLOC=0` leaves glibc's allocator settings alone ([`cnf::backend::tune_allocator`]
//! otherwise), `CNF_BENCH_TANH_REUSE=0` selects burn's own tanh backward, `CNF_BENCH_TANH_SIGMOID=0`
//! the backend's own tanh instead of `2σ(2z) − 1`; `CNF_BENCH_TRAIN_ONLY=1` skips the evaluation
//! and sampling figures (for profiling the training step). `CNF_BENCH_PARTS` (default 2 on a
//! CPU, 1 on a GPU) and `CNF_BENCH_THREADS` set the training step's gradient parts and threads
//! (`cnf::parallel`).

use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::{Tensor, TensorData};
use cnf::flow::{download, log_prob_whitened, transport_whitened, Solver};
use cnf::parallel::{ParallelStep, Penalties};
use cnf::{parse_device, DeviceKind, FlowConfig, Kernels, VectorField};
use std::time::Instant;

/// The batch; `CNF_BENCH_BATCH` overrides it.
const DEFAULT_BATCH: usize = 4096;

fn batch_size() -> usize {
    std::env::var("CNF_BENCH_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&b| b > 0)
        .unwrap_or(DEFAULT_BATCH)
}

/// A batch of `batch_size()` pseudo-random points in [-1.5, 1.5)³, row-major.
fn batch_rows(seed: u64) -> Vec<f32> {
    let n = batch_size();
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n * 3)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.0
        })
        .collect()
}

fn batch(device: &cnf::Device, seed: u64) -> Tensor<2> {
    Tensor::from_data(TensorData::new(batch_rows(seed), [batch_size(), 3]), device)
}

/// The benchmark's kernel switches (`CNF_BENCH_TANH_*`): `false` turns off a CPU kernel trick
/// that [`Kernels::for_device`] would choose.
#[derive(Clone, Copy)]
struct KernelSwitches {
    tanh_reuse: bool,
    tanh_via_sigmoid: bool,
}

fn bench(spec: &str, iters: usize, switches: KernelSwitches) -> Result<String, cnf::CnfError> {
    let device = parse_device(spec)?;
    let cfg = FlowConfig {
        width: 64,
        depth: 3,
        rk4_steps: 10,
        final_init_scale: 0.3,
        ..FlowConfig::default()
    };
    let ad = device.clone().autodiff();
    let mut field = VectorField::new(&cfg.layer_sizes(), cfg.final_init_scale, 1, &ad);
    let chosen = field.kernels;
    field = field.with_kernels(Kernels {
        tanh_reuse: chosen.tanh_reuse && switches.tanh_reuse,
        tanh_via_sigmoid: chosen.tanh_via_sigmoid && switches.tanh_via_sigmoid,
    });
    let mut optim = AdamConfig::new().init();
    // The library's training step with `CNF_BENCH_PARTS` gradient parts (default 2 on a CPU,
    // one per core of a 2-core machine; 1 on a GPU, and 1 = the whole batch through the
    // backend's own threads) on up to `CNF_BENCH_THREADS` threads (0: the backend's count).
    let env = |k: &str, default: usize| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let parallel = ParallelStep::new(
        env(
            "CNF_BENCH_PARTS",
            if DeviceKind::of(&ad).is_gpu() { 1 } else { 2 },
        ),
        env("CNF_BENCH_THREADS", 0),
        &ad,
    )?;
    let mut train_step = |i: u64| -> Result<(), cnf::CnfError> {
        let x = batch_rows(i);
        let step = parallel.loss_and_grads(&field, &cfg, &x, None, Penalties::default(), &ad)?;
        field = optim.step(1e-3, field.clone(), step.grads);
        let _ = download(field.weights[0].val().sum())?;
        Ok(())
    };
    train_step(0)?; // warm-up
    let t = Instant::now();
    for i in 0..iters {
        train_step(i as u64 + 1)?;
    }
    let train = (iters * batch_size()) as f64 / t.elapsed().as_secs_f64();
    if std::env::var("CNF_BENCH_TRAIN_ONLY").is_ok_and(|v| v == "1") {
        return Ok(format!(
            "cnf bench backend={spec}: {train:.0} train samples/s (width 64, depth 3, RK4 10 \
             steps, batch {}, {iters} iters, {} parts on {} threads)",
            batch_size(),
            parallel.parts(),
            parallel.threads()
        ));
    }

    let plain = field.valid();
    let pdev = device.clone().without_autodiff();
    let eval = |i: u64| -> Result<(), cnf::CnfError> {
        let lp = log_prob_whitened(&plain, &cfg, batch(&pdev, i), None, Solver::Rk4(10))?;
        download(lp.sum()).map(|_| ())
    };
    eval(0)?;
    let t = Instant::now();
    for i in 0..iters {
        eval(i as u64)?;
    }
    let logp = (iters * batch_size()) as f64 / t.elapsed().as_secs_f64();

    let samp = |i: u64| -> Result<(), cnf::CnfError> {
        let x = transport_whitened(
            &plain,
            &cfg,
            batch(&pdev, i),
            None,
            1.0,
            0.0,
            Solver::Rk4(10),
        )?;
        download(x.sum()).map(|_| ())
    };
    samp(0)?;
    let t = Instant::now();
    for i in 0..iters {
        samp(i as u64)?;
    }
    let sample = (iters * batch_size()) as f64 / t.elapsed().as_secs_f64();
    Ok(format!(
        "cnf bench backend={spec}: {train:.0} train samples/s, {logp:.0} log_prob evals/s, \
         {sample:.0} samples/s (width 64, depth 3, RK4 10 steps, batch {}, {iters} iters, \
         training in {} parts on {} threads)",
        batch_size(),
        parallel.parts(),
        parallel.threads()
    ))
}

fn main() {
    let iters: usize = std::env::var("CNF_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let backends: Vec<String> = match std::env::var("CNF_BENCH_BACKENDS") {
        Ok(s) => s.split(',').map(|s| s.trim().to_string()).collect(),
        Err(_) => {
            let mut v = vec!["flex".to_string()];
            if cfg!(feature = "tch") {
                v.push("libtorch".into());
                match cnf::backend::cuda_available(0) {
                    Ok(_) => v.push("cuda:0".into()),
                    Err(reason) => println!("cnf bench backend=cuda:0 skipped: {reason}"),
                }
            }
            v
        }
    };
    if std::env::var("CNF_BENCH_MALLOC").is_ok_and(|v| v == "0") {
        println!("cnf bench: default allocator settings");
    } else {
        println!(
            "cnf bench: allocator tuned: {}",
            cnf::backend::tune_allocator()
        );
    }
    let switches = KernelSwitches {
        tanh_reuse: !std::env::var("CNF_BENCH_TANH_REUSE").is_ok_and(|v| v == "0"),
        tanh_via_sigmoid: !std::env::var("CNF_BENCH_TANH_SIGMOID").is_ok_and(|v| v == "0"),
    };
    if !switches.tanh_reuse {
        println!("cnf bench: burn's tanh backward (recomputes tanh)");
    }
    if !switches.tanh_via_sigmoid {
        println!("cnf bench: the backend's own tanh");
    }
    for b in backends {
        match bench(&b, iters, switches) {
            Ok(line) => println!("{line}"),
            Err(e) => println!("cnf bench backend={b}: failed: {e}"),
        }
    }
}
