//! Weighted maximum likelihood: a flow trained on samples of q with importance weights p/q
//! learns p; equal weights change nothing; bad weights are refused with a named error.
#![allow(clippy::needless_range_loop)]
mod common;

use cnf::flow::download;
use cnf::parallel::{ParallelStep, Penalties};
use cnf::{
    effective_sample_size, CnfError, Flow, FlowConfig, LrSchedule, TrainConfig, TrainReport,
    VectorField,
};
use std::f64::consts::PI;

fn flow_cfg(context_dim: usize) -> FlowConfig {
    FlowConfig {
        context_dim,
        width: 32,
        depth: 2,
        rk4_steps: 6,
        rtol: 1e-4,
        atol: 1e-4,
        ..FlowConfig::default()
    }
}

fn train_cfg(epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 256,
        learning_rate: 5e-3,
        schedule: LrSchedule::Cosine { min_factor: 0.05 },
        patience: epochs,
        seed,
        ..TrainConfig::default()
    }
}

/// log N(x; μ, s² I) in 3D.
fn log_gauss(x: &[f64; 3], mu: &[f64; 3], s: f64) -> f64 {
    let r2: f64 = (0..3).map(|k| (x[k] - mu[k]).powi(2)).sum();
    -0.5 * r2 / (s * s) - 3.0 * s.ln() - 1.5 * (2.0 * PI).ln()
}

/// Sample mean and covariance of 3D rows.
fn moments(x: &[[f64; 3]]) -> ([f64; 3], [[f64; 3]; 3]) {
    let n = x.len() as f64;
    let mut m = [0.0; 3];
    for r in x {
        for k in 0..3 {
            m[k] += r[k] / n;
        }
    }
    let mut c = [[0.0; 3]; 3];
    for r in x {
        for i in 0..3 {
            for j in 0..3 {
                c[i][j] += (r[i] - m[i]) * (r[j] - m[j]) / (n - 1.0);
            }
        }
    }
    (m, c)
}

fn fit(
    x: &[[f64; 3]],
    c: Option<&[f64]>,
    w: Option<&[f64]>,
    cfg: &FlowConfig,
    train: &TrainConfig,
    name: &str,
) -> (Flow, TrainReport) {
    let t0 = std::time::Instant::now();
    let out = Flow::fit_weighted(x, c, w, cfg, train, &common::device(), |r| {
        eprintln!(
            "{name} epoch {:2} train {:.4} val {:.4}",
            r.epoch, r.train_nll, r.val_nll
        )
    })
    .unwrap();
    eprintln!("{name}: {:.1}s", t0.elapsed().as_secs_f64());
    out
}

/// q = N(0, I) samples with weights w = p/q for p = N((0.5, 0.5, 0.5), 0.8² I): the weighted
/// flow draws p's mean and covariance within the importance sampling's noise (set by the
/// effective sample size), the unweighted one q's; on a grid the weighted flow's log-density
/// is p's, far closer than q's.
#[test]
fn importance_weights_move_the_flow_from_q_to_p() {
    const N: usize = 6000;
    const M: usize = 6000;
    let (mu_p, s_p) = ([0.5; 3], 0.8);
    let mut rng = common::rng(11);
    let x: Vec<[f64; 3]> = (0..N).map(|_| common::normal3(&mut rng)).collect();
    let w: Vec<f64> = x
        .iter()
        .map(|r| (log_gauss(r, &mu_p, s_p) - log_gauss(r, &[0.0; 3], 1.0)).exp())
        .collect();
    let cfg = flow_cfg(0);
    let train = train_cfg(8, 3);
    let (fw, rw) = fit(&x, None, Some(&w), &cfg, &train, "weighted");
    let (fu, ru) = fit(&x, None, None, &cfg, &train, "unweighted");
    // E_q[w²] = 1.288³ = 2.14 for this pair: about 47% of the rows are effective.
    let ess = rw
        .effective_n_train
        .expect("weighted fit reports its effective size");
    let n_train = rw.n_train as f64;
    eprintln!(
        "effective size {ess:.0} of {n_train} training rows (all rows: {:.0})",
        effective_sample_size(&w)
    );
    assert!(ess > 0.35 * n_train && ess < 0.6 * n_train, "{ess}");
    assert_eq!(ru.effective_n_train, None);

    let check = |flow: &Flow, mu: [f64; 3], s: f64, n_eff: f64, name: &str| {
        let (m, c) = moments(&flow.sample(M, None, 5).unwrap());
        // 4 sigma of the training sample's (importance) noise plus the drawn sample's.
        let var = s * s;
        let tol_m = 4.0 * (var / n_eff + var / M as f64).sqrt();
        let tol_diag = 4.0 * var * (2.0 / n_eff + 2.0 / M as f64).sqrt();
        let tol_off = 4.0 * var * (1.0 / n_eff + 1.0 / M as f64).sqrt();
        eprintln!(
            "{name}: mean {m:.3?} cov {c:.3?} (tol {tol_m:.3} / {tol_diag:.3} / {tol_off:.3})"
        );
        for i in 0..3 {
            assert!(
                (m[i] - mu[i]).abs() < tol_m,
                "{name} mean[{i}] {} vs {}",
                m[i],
                mu[i]
            );
            for j in 0..3 {
                let (target, tol) = if i == j {
                    (var, tol_diag)
                } else {
                    (0.0, tol_off)
                };
                assert!(
                    (c[i][j] - target).abs() < tol,
                    "{name} cov[{i}][{j}] {} vs {target}",
                    c[i][j]
                );
            }
        }
    };
    check(&fw, mu_p, s_p, ess, "weighted flow vs p");
    check(&fu, [0.0; 3], 1.0, n_train, "unweighted flow vs q");

    // log-densities on a 5³ grid around p's centre (±1.25 σ_p per axis).
    let grid: Vec<[f64; 3]> = (0..125)
        .map(|g| {
            let at = |k: usize| 0.5 + 0.5 * (k as f64 - 2.0);
            [at(g / 25), at((g / 5) % 5), at(g % 5)]
        })
        .collect();
    let rms = |a: &[f64], b: &dyn Fn(&[f64; 3]) -> f64| {
        (a.iter()
            .zip(&grid)
            .map(|(v, x)| (v - b(x)).powi(2))
            .sum::<f64>()
            / grid.len() as f64)
            .sqrt()
    };
    let log_p = |x: &[f64; 3]| log_gauss(x, &mu_p, s_p);
    let log_q = |x: &[f64; 3]| log_gauss(x, &[0.0; 3], 1.0);
    let lq: Vec<f64> = grid.iter().map(log_q).collect();
    let lw = fw.log_prob(&grid, None).unwrap();
    let lu = fu.log_prob(&grid, None).unwrap();
    let (w_p, q_p, u_q) = (rms(&lw, &log_p), rms(&lq, &log_p), rms(&lu, &log_q));
    eprintln!("grid rms: weighted flow - log p {w_p:.4}, log q - log p {q_p:.4}, unweighted flow - log q {u_q:.4}");
    assert!(q_p > 0.5, "the grid tells p from q ({q_p})");
    assert!(w_p < 0.2 * q_p, "weighted flow {w_p} vs log q {q_p}");
    assert!(u_q < 0.2 * q_p, "unweighted flow learns q ({u_q})");
}

/// Weights that only a trained flow can follow (whitening alone gives a Gaussian): q = N(0, I)
/// reweighted to a two-humped p, ½ N((±0.9, 0, 0), diag(0.45², 0.8², 0.8²)). Between the humps
/// p is e^-1.33 times lower than on them, where q (and a Gaussian) is higher.
#[test]
fn importance_weights_teach_a_bimodal_density() {
    const N: usize = 6000;
    let sd = [0.45, 0.8, 0.8];
    let log_p = move |x: &[f64; 3]| {
        let comp = |m: f64| {
            (0..3)
                .map(|k| {
                    let u = (x[k] - if k == 0 { m } else { 0.0 }) / sd[k];
                    -0.5 * u * u - sd[k].ln() - 0.5 * (2.0 * PI).ln()
                })
                .sum::<f64>()
        };
        let (a, b) = (comp(-0.9), comp(0.9));
        let mx = a.max(b);
        mx + (0.5 * ((a - mx).exp() + (b - mx).exp())).ln()
    };
    let mut rng = common::rng(21);
    let x: Vec<[f64; 3]> = (0..N).map(|_| common::normal3(&mut rng)).collect();
    let w: Vec<f64> = x
        .iter()
        .map(|r| (log_p(r) - log_gauss(r, &[0.0; 3], 1.0)).exp())
        .collect();
    let (flow, report) = fit(
        &x,
        None,
        Some(&w),
        &flow_cfg(0),
        &train_cfg(25, 4),
        "bimodal",
    );
    let ess = report.effective_n_train.unwrap_or(0.0);
    let points = [[0.0, 0.0, 0.0], [-0.9, 0.0, 0.0], [0.9, 0.0, 0.0]];
    let lp = flow.log_prob(&points, None).unwrap();
    let dip = |l: &[f64]| l[0] - 0.5 * (l[1] + l[2]);
    let truth: Vec<f64> = points.iter().map(log_p).collect();
    eprintln!(
        "effective size {ess:.0}; log-density dip between the humps: flow {:.3}, p {:.3}; \
         best val NLL {:.4}",
        dip(&lp),
        dip(&truth),
        report.best_val_nll
    );
    assert!(
        (dip(&lp) - dip(&truth)).abs() < 0.3,
        "{} vs {}",
        dip(&lp),
        dip(&truth)
    );
    // The held-out NLL is p's: the weighted mean of -log p over the held-out rows estimates
    // p's entropy, 3.6435 nats (Monte Carlo, 2e6 draws; -log p has a spread of 1.154 nats under
    // p), within 4 sigma of the importance noise of the held-out rows plus 0.05 nats of fit.
    let (entropy, spread) = (3.6435, 1.154);
    let ess_val = ess * report.n_val as f64 / report.n_train as f64;
    let tol = 4.0 * spread / ess_val.sqrt() + 0.05;
    assert!(
        (report.best_val_nll - entropy).abs() < tol,
        "held-out NLL {} vs entropy of p {entropy} (tolerance {tol:.3})",
        report.best_val_nll
    );
}

/// All weights equal (to any constant) is plain maximum likelihood, bit for bit.
#[test]
fn equal_weights_train_exactly_like_no_weights() {
    let mut rng = common::rng(8);
    let x: Vec<[f64; 3]> = (0..800)
        .map(|_| {
            let z = common::normal3(&mut rng);
            [z[0], 0.5 * z[0] + z[1], (0.7 * z[2]).exp()]
        })
        .collect();
    let cfg = FlowConfig {
        width: 16,
        compress_data: true,
        ..flow_cfg(0)
    };
    let train = TrainConfig {
        batch_parts: 2,
        ..train_cfg(3, 9)
    };
    let (f0, r0) = fit(&x, None, None, &cfg, &train, "none");
    let c = vec![0.37; x.len()];
    let (f1, r1) = fit(&x, None, Some(&c), &cfg, &train, "constant");
    let bits = |r: &TrainReport| -> Vec<(u64, u64)> {
        r.history
            .iter()
            .map(|e| (e.train_nll.to_bits(), e.val_nll.to_bits()))
            .collect()
    };
    assert_eq!(bits(&r0), bits(&r1));
    assert_eq!(r0.best_val_nll.to_bits(), r1.best_val_nll.to_bits());
    assert_eq!(f0.whitening, f1.whitening);
    assert_eq!(
        f0.sample(50, None, 1).unwrap(),
        f1.sample(50, None, 1).unwrap()
    );
    assert_eq!(r1.effective_n_train, None);

    // Weights equal up to 1e-7 take the weighted path and land where the unweighted fit does,
    // up to float rounding (without the compression, whose weighted median of an even count
    // is one of the middle values rather than their mean).
    let cfg = FlowConfig {
        compress_data: false,
        ..cfg
    };
    let (f0, r0) = fit(&x, None, None, &cfg, &train, "none, uncompressed");
    let near: Vec<f64> = (0..x.len()).map(|i| 1.0 + 1e-7 * (i % 3) as f64).collect();
    let (f2, r2) = fit(&x, None, Some(&near), &cfg, &train, "nearly equal");
    let ess = r2.effective_n_train.expect("weighted path");
    assert!((ess - r2.n_train as f64).abs() < 1e-6, "{ess}");
    for (a, b) in r0.history.iter().zip(&r2.history) {
        assert!((a.train_nll - b.train_nll).abs() < 1e-4, "{a:?} vs {b:?}");
        assert!((a.val_nll - b.val_nll).abs() < 1e-4, "{a:?} vs {b:?}");
    }
    let (lp0, lp2) = (
        f0.log_prob(&x[..20], None).unwrap(),
        f2.log_prob(&x[..20], None).unwrap(),
    );
    for (a, b) in lp0.iter().zip(&lp2) {
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
}

/// NaN, infinite, negative, all-zero and wrongly counted weights, and weights that leave one
/// side of the held-out split empty, are refused with an error that says which.
#[test]
fn bad_weights_are_refused_with_a_named_error() {
    let x = common::normal_sample(2, 200);
    let cfg = common::tiny_flow(8);
    let train = train_cfg(1, 0);
    let err = |w: Vec<f64>| -> String {
        match Flow::fit_weighted(&x, None, Some(&w), &cfg, &train, &common::device(), |_| {}) {
            Err(CnfError::InvalidInput(m)) => m,
            Err(e) => panic!("wrong error kind: {e}"),
            Ok(_) => panic!("weights accepted"),
        }
    };
    let with = |i: usize, v: f64| {
        let mut w = vec![1.0; x.len()];
        w[i] = v;
        w
    };
    let m = err(with(17, f64::NAN));
    assert!(m.contains("row 17") && m.contains("non-finite"), "{m}");
    let m = err(with(3, f64::INFINITY));
    assert!(m.contains("row 3") && m.contains("non-finite"), "{m}");
    let m = err(with(42, -0.5));
    assert!(
        m.contains("row 42") && m.contains("negative weight -0.5"),
        "{m}"
    );
    let m = err(vec![0.0; x.len()]);
    assert!(m.contains("all 200 weights are zero"), "{m}");
    let m = err(vec![1.0; x.len() - 1]);
    assert!(m.contains("199 values for 200 rows"), "{m}");
    // One row of weight: either the training or the held-out rows weigh nothing.
    let mut w = vec![0.0; x.len()];
    w[0] = 1.0;
    let m = err(w);
    assert!(m.contains("total weight 0"), "{m}");
    // Two rows of non-zero weight on the training side cannot be whitened.
    assert!(effective_sample_size(&[0.0, 0.0]) == 0.0);
    assert!((effective_sample_size(&[2.0, 2.0, 2.0]) - 3.0).abs() < 1e-12);
}

/// Every gradient entry of the field, weights then biases, in layer order.
fn flatten(field: &VectorField, grads: &burn::optim::GradientsParams) -> Vec<f64> {
    let mut v = Vec::new();
    for w in &field.weights {
        v.extend(download(grads.get::<2>(w.id).expect("weight gradient")).unwrap());
    }
    for b in &field.biases {
        v.extend(download(grads.get::<1>(b.id).expect("bias gradient")).unwrap());
    }
    v
}

/// The weighted batch loss with integer weights is the unweighted loss of the batch with each
/// row repeated that many times (zero: left out), penalties included, in parts or whole.
#[test]
fn weighted_batch_loss_equals_repeated_rows() {
    let device = common::device().autodiff();
    let cfg = FlowConfig {
        context_dim: 2,
        width: 24,
        depth: 2,
        rk4_steps: 4,
        final_init_scale: 0.5,
        ..FlowConfig::default()
    };
    let field = VectorField::new(&cfg.layer_sizes(), cfg.final_init_scale, 3, &device);
    let mut rng = common::rng(6);
    let n = 120;
    let x: Vec<[f32; 3]> = (0..n)
        .map(|_| common::normal3(&mut rng).map(|v| v as f32))
        .collect();
    let c: Vec<[f32; 2]> = (0..n)
        .map(|_| [0, 1].map(|_| common::uniform(&mut rng, -1.0, 1.0) as f32))
        .collect();
    let w: Vec<f64> = (0..n).map(|i| ((i * 7) % 4) as f64).collect();
    let (mut xr, mut cr) = (Vec::new(), Vec::new());
    for i in 0..n {
        for _ in 0..w[i] as usize {
            xr.extend(x[i]);
            cr.extend(c[i]);
        }
    }
    let xf: Vec<f32> = x.iter().flatten().copied().collect();
    let cf: Vec<f32> = c.iter().flatten().copied().collect();
    let pen = Penalties {
        kinetic: 0.1,
        jacobian: 0.05,
    };
    let whole = ParallelStep::new(1, 1, &device).unwrap();
    let reference = whole
        .loss_and_grads(&field, &cfg, &xr, Some(&cr), pen, &device)
        .unwrap();
    let g_ref = flatten(&field, &reference.grads);
    let scale = g_ref.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(scale > 1e-3, "a gradient to compare ({scale})");
    for parts in [1, 3] {
        let step = ParallelStep::new(parts, parts, &device).unwrap();
        // Any scale of the weights: the loss is normalised by their sum.
        let w3: Vec<f64> = w.iter().map(|v| 3.5 * v).collect();
        let got = step
            .loss_and_grads_weighted(&field, &cfg, &xf, Some(&cf), Some(&w3), pen, &device)
            .unwrap();
        assert!(
            (got.nll - reference.nll).abs() < 1e-5 * (1.0 + reference.nll.abs()),
            "{parts} parts: {} vs {}",
            got.nll,
            reference.nll
        );
        for (a, b) in g_ref.iter().zip(flatten(&field, &got.grads)) {
            assert!(
                (a - b).abs() <= 1e-4 * scale,
                "{parts} parts: gradient {b} vs {a}"
            );
        }
    }
    // A batch whose weights sum to zero has no loss.
    let zero = vec![0.0; n];
    assert!(whole
        .loss_and_grads_weighted(&field, &cfg, &xf, Some(&cf), Some(&zero), pen, &device)
        .is_err());
}

/// The conditional velocity flow p(v | x): velocities drawn from q(v|x) = N(0, I) whatever x,
/// weighted to p(v|x) = N((0.5 x₀, 0, 0), 0.8² I). The weighted flow's velocities follow x:
/// their mean at x₀ = ±1 is ±0.5, where the unweighted flow's would be 0.
#[test]
fn weighted_conditional_velocity_flow_follows_its_context() {
    const N: usize = 6000;
    const M: usize = 3000;
    let mut rng = common::rng(31);
    let ctx: Vec<f64> = (0..N).flat_map(|_| common::normal3(&mut rng)).collect();
    let v: Vec<[f64; 3]> = (0..N).map(|_| common::normal3(&mut rng)).collect();
    let w: Vec<f64> = v
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mu = [0.5 * ctx[3 * i], 0.0, 0.0];
            (log_gauss(r, &mu, 0.8) - log_gauss(r, &[0.0; 3], 1.0)).exp()
        })
        .collect();
    let (flow, report) = fit(
        &v,
        Some(&ctx),
        Some(&w),
        &flow_cfg(3),
        &train_cfg(20, 5),
        "velocity",
    );
    let ess = report.effective_n_train.unwrap_or(0.0);
    // The weighted data's own regression of v0 on x0 (what the flow can at best reproduce).
    let (mut sxy, mut sxx, mut sw) = (0.0, 0.0, 0.0);
    for i in 0..N {
        sxy += w[i] * v[i][0] * ctx[3 * i];
        sxx += w[i] * ctx[3 * i] * ctx[3 * i];
        sw += w[i];
    }
    eprintln!("weighted data: slope {:.3}, sum w {sw:.0}", sxy / sxx);
    for sign in [-1.0, 1.0] {
        let at: Vec<f64> = (0..M).flat_map(|_| [sign, 0.0, 0.0]).collect();
        let (m, c) = moments(&flow.sample(M, Some(&at), 8).unwrap());
        eprintln!(
            "x0 = {sign}: mean v {m:.3?}, var {:.3} {:.3} {:.3}; ess {ess:.0}",
            c[0][0], c[1][1], c[2][2]
        );
        assert!(
            (m[0] - 0.5 * sign).abs() < 0.12,
            "mean v0 {} at x0 = {sign}",
            m[0]
        );
        assert!(m[1].abs() < 0.1 && m[2].abs() < 0.1, "{m:?}");
        for k in 0..3 {
            assert!((c[k][k] - 0.64).abs() < 0.12, "var v{k} {}", c[k][k]);
        }
    }
}

/// Particles of unequal mass, as in a simulation whose particle masses vary with position: a
/// Plummer sphere (scale 1, truncated at r = 10) sampled with number density ∝ ρ/w(r) and
/// masses ∝ w(r) = 1 + r, so the *mass* density is ρ. Trained with the masses as weights (and
/// radial compression, whose centre and scale are then weighted medians) the flow's samples
/// have Plummer's enclosed-mass profile; trained without, they follow the particle counts,
/// which are too concentrated.
#[test]
fn mass_weighted_particles_recover_the_mass_density() {
    const N: usize = 8000;
    const M: usize = 8000;
    let r_max: f64 = 10.0;
    let enclosed = |r: f64| r.powi(3) / (1.0 + r * r).powf(1.5);
    let m_max = enclosed(r_max);
    let mut rng = common::rng(41);
    let (mut x, mut mass) = (Vec::with_capacity(N), Vec::with_capacity(N));
    while x.len() < N {
        let u = common::uniform(&mut rng, 1e-12, 1.0) * m_max;
        let r = 1.0 / (u.powf(-2.0 / 3.0) - 1.0).sqrt();
        // Keep with probability 1/w(r) (max 1 at r = 0): number density ∝ ρ/w.
        if common::uniform(&mut rng, 0.0, 1.0) * (1.0 + r) > 1.0 {
            continue;
        }
        let d = common::normal3(&mut rng);
        let norm = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        x.push([r * d[0] / norm, r * d[1] / norm, r * d[2] / norm]);
        mass.push(1.0 + r);
    }
    let cfg = FlowConfig {
        compress_data: true,
        ..flow_cfg(0)
    };
    let train = train_cfg(14, 6);
    let (fw, rw) = fit(&x, None, Some(&mass), &cfg, &train, "mass-weighted");
    let (fu, _) = fit(&x, None, None, &cfg, &train, "unweighted");
    let ess = rw.effective_n_train.unwrap_or(0.0);
    let radius = |p: &[f64; 3]| (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
    let fraction_within =
        |s: &[[f64; 3]], r: f64| s.iter().filter(|p| radius(p) < r).count() as f64 / s.len() as f64;
    let count_fraction = |r: f64| fraction_within(&x, r);
    let (sw, su) = (
        fw.sample(M, None, 2).unwrap(),
        fu.sample(M, None, 3).unwrap(),
    );
    let mut unweighted_miss = 0.0f64; // largest miss of the unweighted flow, in tolerances
    for r in [0.5, 1.0, 2.0, 4.0] {
        let truth = enclosed(r) / m_max;
        let (fw_r, fu_r, counts) = (
            fraction_within(&sw, r),
            fraction_within(&su, r),
            count_fraction(r),
        );
        // 4 sigma of the binomial noise of the weighted training rows and of the drawn sample,
        // plus 0.02 for the fit.
        let sd = (truth * (1.0 - truth)).sqrt();
        let tol = 4.0 * sd * (1.0 / ess + 1.0 / M as f64).sqrt() + 0.02;
        eprintln!(
            "M(<{r})/M: truth {truth:.3}, weighted flow {fw_r:.3} (tol {tol:.3}), unweighted \
             flow {fu_r:.3}, particle counts {counts:.3}"
        );
        assert!(
            (fw_r - truth).abs() < tol,
            "weighted flow M(<{r}) {fw_r} vs {truth}"
        );
        // The unweighted flow follows the counts, which are far from the mass profile.
        assert!(
            (fu_r - counts).abs() < tol,
            "unweighted flow {fu_r} vs counts {counts}"
        );
        // ... so that ignoring the weights fails this test at every radius.
        assert!(
            (fu_r - truth).abs() > tol,
            "counts vs mass at r = {r}: {fu_r} vs {truth}"
        );
        unweighted_miss = unweighted_miss.max((fu_r - truth).abs() / tol);
    }
    assert!(
        unweighted_miss > 2.0,
        "the test tells mass from counts ({unweighted_miss})"
    );
}
