//! Training fingerprint: the bits of a few short, seeded fits (losses per epoch, held-out NLLs,
//! log-densities, gradients, samples) on the device named by the first argument (`flex` by
//! default). Run it before and after a change that must not move any number and compare the
//! printed lines: `cargo run --release -p cnf --example train_fingerprint -- flex`.

use cnf::{parse_device, Flow, FlowConfig, TrainConfig, TrainReport};

/// A deterministic, twisted, correlated 3D cloud of `n` rows and a 3D context per row.
fn cloud(n: usize) -> (Vec<[f64; 3]>, Vec<f64>) {
    let mut x = Vec::with_capacity(n);
    let mut c = Vec::with_capacity(3 * n);
    for i in 0..n {
        let t = i as f64;
        let (a, b) = ((0.37 * t).sin(), (0.71 * t).cos());
        let r = 1.0 + 3.0 * (0.13 * t).sin().powi(2);
        x.push([r * a, 0.5 * a + b, 0.3 * (1.3 * t).sin() + 0.2 * b]);
        c.extend([(0.05 * t).cos(), (0.011 * t).sin(), 2.0 * (0.17 * t).cos()]);
    }
    (x, c)
}

/// FNV-1a over 64-bit words.
fn fnv(words: impl IntoIterator<Item = u64>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        for b in w.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn bits(v: impl IntoIterator<Item = f64>) -> u64 {
    fnv(v.into_iter().map(f64::to_bits))
}

/// Prints the fingerprint lines of one trained flow.
fn report(name: &str, flow: &Flow, rep: &TrainReport, x: &[[f64; 3]], c: Option<&[f64]>) {
    for e in &rep.history {
        println!(
            "{name} epoch {} train {:016x} val {:016x} ({:.6} / {:.6})",
            e.epoch,
            e.train_nll.to_bits(),
            e.val_nll.to_bits(),
            e.train_nll,
            e.val_nll
        );
    }
    println!(
        "{name} best {} {:016x} adaptive {:016x}",
        rep.best_epoch,
        rep.best_val_nll.to_bits(),
        rep.best_val_nll_adaptive.to_bits()
    );
    let k = flow.config.context_dim;
    let ctx = c.map(|c| &c[..10 * k]);
    let lp = flow.log_prob(&x[..10], ctx).expect("log_prob");
    println!(
        "{name} log_prob {:016x} (first {:.6})",
        bits(lp.clone()),
        lp[0]
    );
    let (_, gx, gc) = flow
        .grad_log_prob(&x[..5], c.map(|c| &c[..5 * k]))
        .expect("grad");
    println!(
        "{name} grad {:016x} {:016x}",
        bits(gx.iter().flatten().copied()),
        bits(gc.iter().flatten().copied())
    );
    let s = flow.sample(10, ctx, 99).expect("sample");
    println!("{name} samples {:016x}", bits(s.iter().flatten().copied()));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = std::env::args().nth(1).unwrap_or_else(|| "flex".into());
    let device = parse_device(&spec)?;
    let (x, c) = cloud(600);
    let train = TrainConfig {
        epochs: 3,
        batch_size: 128,
        seed: 5,
        ..TrainConfig::default()
    };
    let cfg = FlowConfig {
        width: 16,
        depth: 2,
        rk4_steps: 4,
        compress_data: true,
        ..FlowConfig::default()
    };
    let (flow, rep) = Flow::fit(&x, None, &cfg, &train, &device, |_| {})?;
    report("uncond", &flow, &rep, &x, None);
    let cfg_c = FlowConfig {
        context_dim: 3,
        compress_data: false,
        compress_context: true,
        ..cfg
    };
    let train_c = TrainConfig {
        batch_parts: 2,
        kinetic_reg: 0.01,
        jacobian_reg: 0.01,
        ..train
    };
    let (flow, rep) = Flow::fit(&x, Some(&c), &cfg_c, &train_c, &device, |_| {})?;
    report("cond", &flow, &rep, &x, Some(&c));
    Ok(())
}
