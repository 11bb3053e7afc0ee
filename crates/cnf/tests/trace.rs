//! Exact trace and Jacobian against finite differences.
#![allow(clippy::needless_range_loop)]
mod common;

use burn::tensor::{DType, Tensor, TensorData};
use cnf::flow::download;
use cnf::trace::{field_and_jacobian, field_and_trace};
use cnf::{Activation, FlowConfig, VectorField};

/// Fourth-order central differences of F along each y_j, in f64 (flex and libtorch CPU both
/// compute in f64): truncation h⁴ |F⁽⁵⁾| / 30 ≈ 1e-9 and rounding ≈ ε₆₄ |F| / h ≈ 1e-14 with
/// h = 1e-2, so the 1e-4 relative bound has a wide margin and still catches any real error.
/// Checked per point: |tr_exact − tr_fd| ≤ 1e-4 · max(|tr_fd|, ‖J‖_F).
fn check(act: Activation, context_dim: usize, depth: usize) {
    let device = common::device();
    let dtype = DType::F64;
    let cfg = FlowConfig {
        context_dim,
        width: 32,
        depth,
        activation: act,
        final_init_scale: 1.0,
        ..FlowConfig::default()
    };
    let field = VectorField::new_with_dtype(&cfg.layer_sizes(), 1.0, 7, &device, dtype);
    let mut rng = common::rng(11);
    let b = 64;
    let ys: Vec<[f64; 3]> = (0..b).map(|_| common::normal3(&mut rng)).collect();
    let cs: Vec<f64> = (0..b * context_dim)
        .map(|_| common::uniform(&mut rng, -1.0, 1.0))
        .collect();
    let t = 0.37;
    let to_t = |v: &[f64], rows: usize, cols: usize| {
        Tensor::<2>::from_data(TensorData::new(v.to_vec(), [rows, cols]), (&device, dtype))
    };
    let flat: Vec<f64> = ys.iter().flatten().copied().collect();
    let ctx = (context_dim > 0).then(|| to_t(&cs, b, context_dim));
    let (f, tr) = field_and_trace(&field, to_t(&flat, b, 3), t, ctx.as_ref(), act);
    let (f2, jac) = field_and_jacobian(&field, to_t(&flat, b, 3), t, ctx.as_ref(), act);
    let f = download(f).unwrap();
    let f2 = download(f2).unwrap();
    let tr = download(tr).unwrap();
    let jac = download(jac).unwrap();
    let f_plain = download(field.forward(to_t(&flat, b, 3), t, ctx.as_ref(), act)).unwrap();
    for i in 0..b * 3 {
        assert!(
            (f[i] - f_plain[i]).abs() < 1e-10,
            "F differs from plain forward"
        );
        assert!((f[i] - f2[i]).abs() < 1e-12);
    }
    // Finite differences: stencil offsets -2h, -h, +h, +2h along each axis.
    let h = 1e-2;
    let offs = [-2.0, -1.0, 1.0, 2.0];
    let mut pts = Vec::new();
    let mut cpts = Vec::new();
    for bi in 0..b {
        for j in 0..3 {
            for o in offs {
                let mut p = ys[bi];
                p[j] += o * h;
                pts.extend_from_slice(&p);
                cpts.extend_from_slice(&cs[bi * context_dim..(bi + 1) * context_dim]);
            }
        }
    }
    let m = pts.len() / 3;
    let cptst = (context_dim > 0).then(|| to_t(&cpts, m, context_dim));
    let fd = download(field.forward(to_t(&pts, m, 3), t, cptst.as_ref(), act)).unwrap();
    let mut worst: f64 = 0.0;
    for bi in 0..b {
        let mut tr_fd = 0.0;
        let mut jnorm = 0.0;
        for j in 0..3 {
            let base = (bi * 3 + j) * 4;
            for i in 0..3 {
                let v = |s: usize| fd[(base + s) * 3 + i];
                let d = (v(0) - 8.0 * v(1) + 8.0 * v(2) - v(3)) / (12.0 * h);
                let je = jac[bi * 9 + i * 3 + j];
                assert!(
                    (d - je).abs() <= 1e-6 * (1.0 + je.abs()),
                    "J[{i}{j}] exact {je} vs fd {d}"
                );
                jnorm += d * d;
                if i == j {
                    tr_fd += d;
                }
            }
        }
        let scale = tr_fd.abs().max(jnorm.sqrt());
        let rel = (tr[bi] - tr_fd).abs() / scale;
        worst = worst.max(rel);
        assert!(
            rel <= 1e-4,
            "trace exact {} vs fd {tr_fd}: rel {rel}",
            tr[bi]
        );
    }
    eprintln!(
        "{act:?} context {context_dim} depth {depth}: worst relative trace error {worst:.2e}"
    );
}

#[test]
fn exact_trace_matches_finite_differences_tanh() {
    check(Activation::Tanh, 0, 3);
}

/// Depths 0, 1 and 2 take their own paths through the tangent propagation (no hidden layer;
/// the first tangent formed directly; folded into the second layer's weights), 4 the loop.
#[test]
fn exact_trace_matches_finite_differences_at_every_depth() {
    for depth in [0, 1, 2, 4] {
        check(Activation::Tanh, 2, depth);
    }
}

#[test]
fn exact_trace_matches_finite_differences_softplus_with_context() {
    check(Activation::Softplus, 3, 3);
}

#[test]
fn exact_trace_matches_finite_differences_silu_with_context() {
    check(Activation::Silu, 2, 3);
}

/// The field's kernels change speed, not the model: tanh as `2σ(2z) − 1` with a backward that
/// reuses its output (the CPU choice) against the backend's tanh and burn's backward, in f32 on
/// an autodiff device: F, the trace and the weights' gradient agree to f32 rounding.
#[test]
fn kernel_choices_agree_to_rounding() {
    use cnf::{DeviceKind, Kernels};
    let device = common::device().autodiff();
    let cfg = FlowConfig {
        width: 32,
        depth: 3,
        final_init_scale: 1.0,
        ..FlowConfig::default()
    };
    let mut rng = common::rng(4);
    let b = 128;
    let flat: Vec<f32> = (0..b)
        .flat_map(|_| common::normal3(&mut rng))
        .map(|v| v as f32)
        .collect();
    let run = |kernels: Kernels| {
        let field = VectorField::new(&cfg.layer_sizes(), 1.0, 9, &device).with_kernels(kernels);
        let y = Tensor::<2>::from_data(TensorData::new(flat.clone(), [b, 3]), &device);
        let (f, tr) = field_and_trace(&field, y, 0.4, None, Activation::Tanh);
        let grads = (f.clone().sum() + tr.clone().sum()).backward();
        let grads = burn::optim::GradientsParams::from_grads(grads, &field);
        let g = grads
            .get::<2>(field.weights[0].id)
            .expect("weight gradient");
        (
            download(f.inner()).unwrap(),
            download(tr.inner()).unwrap(),
            download(g).unwrap(),
        )
    };
    let fast = Kernels::for_device(DeviceKind::of(&device));
    let plain = Kernels::backend_default();
    let (fa, ta, ga) = run(fast);
    let (fb, tb, gb) = run(plain);
    let close = |a: &[f64], b: &[f64], what: &str| {
        let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 2e-5 * scale, "{what}: {x} vs {y}");
        }
    };
    close(&fa, &fb, "F");
    close(&ta, &tb, "trace");
    close(&ga, &gb, "gradient");
    if fast != plain {
        // The choices are real: different kernels do not round identically everywhere.
        assert!(
            fa != fb || ta != tb || ga != gb,
            "kernels made no difference"
        );
    }
}
