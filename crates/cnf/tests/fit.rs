//! Fitting known 3D densities from 20k samples; held-out NLL against the true cross-entropy.
#![allow(clippy::needless_range_loop)]
mod common;

use cnf::train::{fit_with_hooks, TrainHooks};
use cnf::{Activation, Flow, FlowConfig, LrSchedule, TrainConfig};
use rand::rngs::StdRng;
use std::f64::consts::PI;

const N_TRAIN: usize = 20_000;
const N_TEST: usize = 5_000;
const TOLERANCE_NATS: f64 = 0.05;

fn flow_cfg(context_dim: usize) -> FlowConfig {
    FlowConfig {
        context_dim,
        width: 48,
        depth: 2,
        activation: Activation::Tanh,
        rk4_steps: 6,
        rtol: 1e-4,
        atol: 1e-4,
        ..FlowConfig::default()
    }
}

fn train_cfg(epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 512,
        learning_rate: 5e-3,
        schedule: LrSchedule::Cosine { min_factor: 0.02 },
        val_fraction: 0.1,
        patience: epochs,
        seed,
        ..TrainConfig::default()
    }
}

/// One epoch of one batch at a negligible learning rate: the fit sets the data's whitening and
/// leaves the flow as initialised.
fn frozen_train_cfg(batch_size: usize) -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch_size,
        learning_rate: 1e-12,
        ..TrainConfig::default()
    }
}

/// Draws one sample and its context.
type Sampler<'a> = &'a mut dyn FnMut(&mut StdRng) -> ([f64; 3], Vec<f64>);

/// Fits, then returns (model NLL, true NLL) on held-out samples.
fn fit_and_score(
    sample: Sampler<'_>,
    log_p_true: &dyn Fn(&[f64; 3], &[f64]) -> f64,
    context_dim: usize,
    epochs: usize,
    name: &str,
) -> (f64, f64) {
    let device = common::device();
    let mut rng = common::rng(1234);
    let mut draw = |n: usize| {
        let mut xs = Vec::with_capacity(n);
        let mut cs = Vec::with_capacity(n * context_dim);
        for _ in 0..n {
            let (x, c) = sample(&mut rng);
            xs.push(x);
            cs.extend(c);
        }
        (xs, cs)
    };
    let (x_train, c_train) = draw(N_TRAIN);
    let (x_test, c_test) = draw(N_TEST);
    let ctx_train = (context_dim > 0).then_some(c_train.as_slice());
    let ctx_test = (context_dim > 0).then_some(c_test.as_slice());
    let t0 = std::time::Instant::now();
    let (flow, report) = Flow::fit(
        &x_train,
        ctx_train,
        &flow_cfg(context_dim),
        &train_cfg(epochs, 7),
        &device,
        |r| {
            eprintln!(
                "{name} epoch {:3} train {:.4} val {:.4} lr {:.2e} {:.0} samples/s",
                r.epoch, r.train_nll, r.val_nll, r.learning_rate, r.samples_per_s
            )
        },
    )
    .unwrap();
    let model: f64 = -flow
        .log_prob(&x_test, ctx_test)
        .unwrap()
        .iter()
        .sum::<f64>()
        / N_TEST as f64;
    let truth: f64 = -x_test
        .iter()
        .enumerate()
        .map(|(i, x)| log_p_true(x, &c_test[i * context_dim..(i + 1) * context_dim]))
        .sum::<f64>()
        / N_TEST as f64;
    eprintln!(
        "{name}: held-out NLL {model:.4} vs true {truth:.4} (gap {:.4} nats), best epoch {}, {:.1}s",
        model - truth,
        report.best_epoch,
        t0.elapsed().as_secs_f64()
    );
    (model, truth)
}

fn log_gauss_diag(x: &[f64; 3], mean: &[f64; 3], sd: &[f64; 3]) -> f64 {
    (0..3)
        .map(|k| {
            let u = (x[k] - mean[k]) / sd[k];
            -0.5 * u * u - sd[k].ln() - 0.5 * (2.0 * PI).ln()
        })
        .sum()
}

#[test]
fn fits_anisotropic_gaussian_mixture() {
    // Two anisotropic components, one of them rotated by 45° in the x-y plane.
    let w = [0.4, 0.6];
    let m = [[-1.2, 0.0, 0.3], [1.0, 0.5, -0.2]];
    let sd = [[0.5, 1.0, 0.3], [1.0, 0.35, 0.7]];
    let (cr, sr) = ((PI / 4.0).cos(), (PI / 4.0).sin());
    let rot = move |v: [f64; 3]| [cr * v[0] - sr * v[1], sr * v[0] + cr * v[1], v[2]];
    let unrot = move |v: [f64; 3]| [cr * v[0] + sr * v[1], -sr * v[0] + cr * v[1], v[2]];
    let mut sample = |rng: &mut StdRng| {
        let k = if common::uniform(rng, 0.0, 1.0) < w[0] {
            0
        } else {
            1
        };
        let z = common::normal3(rng);
        let local = [z[0] * sd[k][0], z[1] * sd[k][1], z[2] * sd[k][2]];
        let v = if k == 1 { rot(local) } else { local };
        ([v[0] + m[k][0], v[1] + m[k][1], v[2] + m[k][2]], Vec::new())
    };
    let logp = |x: &[f64; 3], _c: &[f64]| {
        let l0 = w[0].ln() + log_gauss_diag(x, &m[0], &sd[0]);
        let d = unrot([x[0] - m[1][0], x[1] - m[1][1], x[2] - m[1][2]]);
        let l1 = w[1].ln() + log_gauss_diag(&d, &[0.0; 3], &sd[1]);
        let mx = l0.max(l1);
        mx + ((l0 - mx).exp() + (l1 - mx).exp()).ln()
    };
    let (model, truth) = fit_and_score(&mut sample, &logp, 0, 10, "mixture");
    assert!(
        (model - truth).abs() < TOLERANCE_NATS,
        "gap {}",
        model - truth
    );
}

/// Plummer sphere (scale radius 1) truncated at r = 10 (98.5% of the mass), as N-body initial
/// conditions usually are: p(x) = 3 / (4π M(10)) (1 + r²)^(-5/2), M(R) = R³ / (1 + R²)^(3/2).
#[test]
fn fits_truncated_plummer_sphere() {
    let r_max: f64 = 10.0;
    let m_max = r_max.powi(3) / (1.0 + r_max * r_max).powf(1.5);
    let mut sample = move |rng: &mut StdRng| {
        // invert M(r) = u m_max  →  r = 1 / sqrt((u m_max)^(-2/3) - 1)
        let u = common::uniform(rng, 1e-12, 1.0) * m_max;
        let r = 1.0 / (u.powf(-2.0 / 3.0) - 1.0).sqrt();
        let n = common::normal3(rng);
        let norm = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        (
            [r * n[0] / norm, r * n[1] / norm, r * n[2] / norm],
            Vec::new(),
        )
    };
    let logp = move |x: &[f64; 3], _c: &[f64]| {
        let r2 = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
        (3.0 / (4.0 * PI * m_max)).ln() - 2.5 * (1.0 + r2).ln()
    };
    let (model, truth) = fit_and_score(&mut sample, &logp, 0, 16, "plummer");
    assert!(
        (model - truth).abs() < TOLERANCE_NATS,
        "gap {}",
        model - truth
    );
}

/// x | c ~ N(μ(c), Σ(c)) with c ∈ [-1, 1]², μ = (c₁, 0.5 c₂, c₁ c₂) and Σ = L Lᵀ,
/// L = [[e^{0.4 c₁}, 0, 0], [0.3 c₂, 0.6, 0], [0, 0.2, e^{-0.3 c₂}]].
#[test]
fn fits_conditional_gaussian() {
    let chol = |c: &[f64]| {
        [
            [(0.4 * c[0]).exp(), 0.0, 0.0],
            [0.3 * c[1], 0.6, 0.0],
            [0.0, 0.2, (-0.3 * c[1]).exp()],
        ]
    };
    let mean = |c: &[f64]| [c[0], 0.5 * c[1], c[0] * c[1]];
    let mut sample = move |rng: &mut StdRng| {
        let c = vec![
            common::uniform(rng, -1.0, 1.0),
            common::uniform(rng, -1.0, 1.0),
        ];
        let l = chol(&c);
        let mu = mean(&c);
        let z = common::normal3(rng);
        let mut x = [0.0; 3];
        for i in 0..3 {
            x[i] = mu[i] + (0..3).map(|j| l[i][j] * z[j]).sum::<f64>();
        }
        (x, c)
    };
    let logp = move |x: &[f64; 3], c: &[f64]| {
        let l = chol(c);
        let mu = mean(c);
        let mut w = [0.0; 3];
        for i in 0..3 {
            let mut s = x[i] - mu[i];
            for j in 0..i {
                s -= l[i][j] * w[j];
            }
            w[i] = s / l[i][i];
        }
        -0.5 * (w[0] * w[0] + w[1] * w[1] + w[2] * w[2])
            - (0..3).map(|i| l[i][i].ln()).sum::<f64>()
            - 1.5 * (2.0 * PI).ln()
    };
    let (model, truth) = fit_and_score(&mut sample, &logp, 2, 12, "conditional");
    assert!(
        (model - truth).abs() < TOLERANCE_NATS,
        "gap {}",
        model - truth
    );
}

/// A non-finite loss restores the best weights, halves the learning rate and carries on.
#[test]
fn recovers_from_non_finite_loss() {
    let x = common::normal_sample(3, 2000);
    let cfg = common::tiny_flow(16);
    let train = TrainConfig {
        epochs: 3,
        batch_size: 256,
        learning_rate: 1e-3,
        schedule: LrSchedule::Constant,
        max_recoveries: 2,
        ..TrainConfig::default()
    };
    let mut seen = Vec::new();
    let (flow, report) = fit_with_hooks(
        &x,
        None,
        &cfg,
        &train,
        &common::device(),
        |r| seen.push(r.clone()),
        TrainHooks {
            nan_at_step: Some(3),
        },
    )
    .unwrap();
    assert_eq!(report.recoveries, 1);
    assert_eq!(report.epochs_run, 3);
    assert!(
        (seen[0].learning_rate - 5e-4).abs() < 1e-12,
        "lr halved after recovery"
    );
    assert!(report.best_val_nll.is_finite());
    assert!(flow
        .log_prob(&x[..10], None)
        .unwrap()
        .iter()
        .all(|v| v.is_finite()));
    // Out of recoveries: an error, not a panic.
    let train = TrainConfig {
        max_recoveries: 0,
        ..train
    };
    let nan_first = TrainHooks {
        nan_at_step: Some(0),
    };
    let err =
        fit_with_hooks(&x, None, &cfg, &train, &common::device(), |_| {}, nan_first).unwrap_err();
    assert!(matches!(err, cnf::CnfError::Training(_)), "{err}");
}

/// The fault injection is a test hook, not a setting: it is absent from the serialised
/// configuration, and configurations written before it left still read.
#[test]
fn train_config_serialises_without_test_hooks() {
    let json = serde_json::to_value(TrainConfig::default()).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert!(keys.iter().all(|k| !k.contains("nan")), "{keys:?}");
    let mut old = json.clone();
    old["inject_nan_at_step"] = serde_json::Value::Null;
    let back: TrainConfig = serde_json::from_value(old).unwrap();
    assert_eq!(back, TrainConfig::default());
}

/// Patience stops training only once `min_epochs` have run: with no patience at all, a run
/// stops after its first epoch, or after `min_epochs` when they are set.
#[test]
fn patience_waits_for_min_epochs() {
    let x = common::normal_sample(5, 600);
    let cfg = common::tiny_flow(8);
    let run = |min_epochs: usize| {
        let train = TrainConfig {
            epochs: 6,
            batch_size: 128,
            patience: 0,
            min_epochs,
            ..TrainConfig::default()
        };
        cnf::train::fit(&x, None, &cfg, &train, &common::device(), |_| {})
            .unwrap()
            .1
    };
    let eager = run(0);
    assert_eq!((eager.epochs_run, eager.stopped_early), (1, true));
    let waited = run(3);
    assert_eq!((waited.epochs_run, waited.stopped_early), (3, true));
    assert!(!run(6).stopped_early, "ran the whole schedule");
}

/// `whiten_data = false` keeps the data's affine map the identity (the context is still
/// standardised): an untrained flow then is N(0, I) itself, not a Gaussian with the data's mean
/// and covariance, whatever the data's moments.
#[test]
fn unwhitened_flow_starts_from_the_standard_normal() {
    let mut rng = common::rng(11);
    let (mean, sd) = ([0.3, -0.2, 0.1], [1.3, 0.8, 1.0]);
    let x: Vec<[f64; 3]> = (0..800)
        .map(|_| {
            let z = common::normal3(&mut rng);
            std::array::from_fn(|k| mean[k] + sd[k] * z[k])
        })
        .collect();
    let c: Vec<f64> = (0..800)
        .map(|_| common::uniform(&mut rng, 0.0, 10.0))
        .collect();
    let frozen = frozen_train_cfg(800);
    let probe = &x[..50];
    let ctx = &c[..50];
    let fit = |whiten_data: bool| {
        let cfg = FlowConfig {
            context_dim: 1,
            final_init_scale: 0.0,
            whiten_data,
            ..common::tiny_flow(8)
        };
        let (flow, _) =
            cnf::train::fit(&x, Some(&c), &cfg, &frozen, &common::device(), |_| {}).unwrap();
        (
            flow.log_prob(probe, Some(ctx)).unwrap(),
            flow.whitening.clone(),
        )
    };
    let (lp, w) = fit(false);
    assert_eq!(w.mean, vec![0.0; 3]);
    assert_eq!(w.chol, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    assert!(
        (w.context_std[0] - 10.0 / 12f64.sqrt()).abs() < 0.3,
        "{w:?}"
    );
    let worst = |lp: &[f64], m: [f64; 3], s: [f64; 3]| {
        probe
            .iter()
            .zip(lp)
            .map(|(p, l)| (l - log_gauss_diag(p, &m, &s)).abs())
            .fold(0.0, f64::max)
    };
    assert!(
        worst(&lp, [0.0; 3], [1.0; 3]) < 1e-4,
        "{}",
        worst(&lp, [0.0; 3], [1.0; 3])
    );
    // Whitened, the same untrained flow is the training rows' own Gaussian: far from N(0, I).
    let (lp_w, w) = fit(true);
    assert!(worst(&lp_w, [0.0; 3], [1.0; 3]) > 0.1);
    let l = &w.chol;
    let own = probe.iter().zip(&lp_w).map(|(p, lp)| {
        // u = L⁻¹ (x − μ) by forward substitution.
        let mut u = [0.0; 3];
        for i in 0..3 {
            let dot: f64 = (0..i).map(|j| l[i * 3 + j] * u[j]).sum();
            u[i] = (p[i] - w.mean[i] - dot) / l[i * 3 + i];
        }
        let norm: f64 = (0..3).map(|i| 0.5 * u[i] * u[i] + l[i * 3 + i].ln()).sum();
        (lp + norm + 1.5 * (2.0 * PI).ln()).abs()
    });
    let own = own.fold(0.0, f64::max);
    assert!(own < 1e-4, "{own}");
}

/// `scale_only_axes` keeps the data's mean but scales only the named axes, by their standard
/// deviation, without rotation: an untrained flow is then the Gaussian with the data's mean,
/// that axis's spread and unit spread elsewhere. An axis beyond the data's is refused.
#[test]
fn scale_only_axes_centre_the_data_and_scale_one_axis() {
    let mut rng = common::rng(12);
    let (mean, sd) = ([0.3, -0.2, 0.1], [1.3, 0.4, 2.0]);
    let x: Vec<[f64; 3]> = (0..2000)
        .map(|_| {
            let z = common::normal3(&mut rng);
            // Correlated x and y: a full whitening would rotate, this one must not.
            let y = [z[0], 0.6 * z[0] + 0.8 * z[1], z[2]];
            std::array::from_fn(|k| mean[k] + sd[k] * y[k])
        })
        .collect();
    let frozen = frozen_train_cfg(2000);
    let cfg = FlowConfig {
        final_init_scale: 0.0,
        scale_only_axes: vec![1],
        ..common::tiny_flow(8)
    };
    let (flow, _) = cnf::train::fit(&x, None, &cfg, &frozen, &common::device(), |_| {}).unwrap();
    let w = &flow.whitening;
    for k in 0..3 {
        assert!((w.mean[k] - mean[k]).abs() < 0.1, "mean {:?}", w.mean);
    }
    let s = w.chol[4];
    assert!((s - sd[1]).abs() < 0.03, "scale of axis 1: {s}");
    assert_eq!(
        w.chol,
        vec![1.0, 0.0, 0.0, 0.0, s, 0.0, 0.0, 0.0, 1.0],
        "a diagonal with unit scales but on axis 1"
    );
    let probe = &x[..50];
    let lp = flow.log_prob(probe, None).unwrap();
    let m = [w.mean[0], w.mean[1], w.mean[2]];
    let worst = probe
        .iter()
        .zip(&lp)
        .map(|(p, l)| (l - log_gauss_diag(p, &m, &[1.0, s, 1.0])).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "{worst}");
    let bad = FlowConfig {
        scale_only_axes: vec![3],
        ..common::tiny_flow(8)
    };
    assert!(bad.validate().is_err());
}

/// The paired gain statistic: zero without a gain, the mean over its standard error with one,
/// rows of zero weight ignored.
#[test]
fn paired_gain_z_is_the_mean_difference_over_its_standard_error() {
    use cnf::train::paired_gain_z;
    let start = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(paired_gain_z(&start, &start, None), 0.0);
    // Differences 0.1, 0.3 (mean 0.2, spread ±0.1): SE = √(2 · 0.01) / 2.
    let now = [0.9, 1.7, 2.9, 3.7];
    let z = paired_gain_z(&start, &now, None);
    let expected = 0.2 / ((4.0 * 0.01f64).sqrt() / 4.0);
    assert!((z - expected).abs() < 1e-9, "{z} vs {expected}");
    // A loss is no gain.
    assert_eq!(paired_gain_z(&now, &start, None), 0.0);
    // Zero weights drop rows: only the 0.1-gain rows are left, with no spread but rounding's.
    let w = [1.0, 0.0, 1.0, 0.0];
    assert!(paired_gain_z(&start, &now, Some(&w)) > 1e12);
}

/// Data drawn from the start itself (standardised: N(0, I), the unwhitened near-identity flow):
/// every held-out gain training finds is noise, and a 2-standard-error threshold keeps the
/// start where no threshold keeps whatever the noise favoured. Data far from the start pass
/// the threshold at once.
#[test]
fn gain_threshold_keeps_the_start_unless_the_data_beat_it() {
    let cfg = FlowConfig {
        whiten_data: false,
        final_init_scale: 0.0,
        ..common::tiny_flow(16)
    };
    let train = |min_gain_z: f64| TrainConfig {
        epochs: 12,
        batch_size: 256,
        learning_rate: 1e-2,
        seed: 3,
        min_gain_z,
        ..TrainConfig::default()
    };
    let unit = common::normal_sample(21, 4000);
    let run = |x: &[[f64; 3]], z: f64| {
        cnf::train::fit(x, None, &cfg, &train(z), &common::device(), |_| {}).unwrap()
    };
    let (free, free_report) = run(&unit, 0.0);
    assert!(!free_report.kept_start, "noise beat the start somewhere");
    assert_eq!(free_report.gain_z, None);
    let (gated, gated_report) = run(&unit, 2.0);
    assert!(gated_report.kept_start, "{gated_report:?}");
    assert_eq!(gated_report.gain_z, None);
    // The kept start is the identity flow (zero initial output layer): N(0, I) itself.
    let probe = &unit[..200];
    let worst = |f: &Flow| {
        f.log_prob(probe, None)
            .unwrap()
            .iter()
            .zip(probe)
            .map(|(l, p)| (l - log_gauss_diag(p, &[0.0; 3], &[1.0; 3])).abs())
            .fold(0.0, f64::max)
    };
    assert!(worst(&gated) < 1e-4, "{}", worst(&gated));
    assert!(
        worst(&free) > worst(&gated),
        "{} {}",
        worst(&free),
        worst(&gated)
    );
    // Anisotropic data: the start is 0.2 nats worse per row, far beyond the noise.
    let stretched: Vec<[f64; 3]> = unit
        .iter()
        .map(|p| [1.5 * p[0], p[1], 0.7 * p[2]])
        .collect();
    let (_, report) = run(&stretched, 2.0);
    assert!(!report.kept_start);
    assert!(report.gain_z.is_some_and(|z| z > 2.0), "{report:?}");
}
