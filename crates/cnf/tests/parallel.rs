//! Mini-batch gradients in parts: equal to the whole batch's, and independent of the threads.
mod common;

use cnf::flow::download;
use cnf::parallel::{ParallelStep, Penalties};
use cnf::{FlowConfig, VectorField};

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

#[test]
fn gradient_in_parts_equals_the_whole_batch_and_ignores_the_thread_count() {
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
    let mut rng = common::rng(5);
    let n = 301; // not a multiple of the part count: unequal parts, weighted by their rows
    let x: Vec<f32> = (0..n)
        .flat_map(|_| common::normal3(&mut rng))
        .map(|v| v as f32)
        .collect();
    let c: Vec<f32> = (0..2 * n)
        .map(|_| common::uniform(&mut rng, -1.0, 1.0) as f32)
        .collect();
    let pen = Penalties {
        kinetic: 0.1,
        jacobian: 0.05,
    };
    let run = |parts: usize, threads: usize| {
        let step = ParallelStep::new(parts, threads, &device).unwrap();
        let g = step
            .loss_and_grads(&field, &cfg, &x, Some(&c), pen, &device)
            .unwrap();
        (g.nll, flatten(&field, &g.grads))
    };
    let (nll1, g1) = run(1, 1);
    let (nll3a, g3a) = run(3, 1);
    let (nll3b, g3b) = run(3, 3);
    // One core or three: the same numbers, bit for bit.
    assert_eq!(nll3a.to_bits(), nll3b.to_bits());
    assert_eq!(g3a, g3b);
    // Three weighted parts: the whole batch's mean loss and gradient, up to f32 rounding.
    assert!(
        (nll1 - nll3a).abs() < 1e-5 * (1.0 + nll1.abs()),
        "{nll1} vs {nll3a}"
    );
    let scale = g1.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(scale > 1e-3, "a gradient to compare ({scale})");
    for (a, b) in g1.iter().zip(&g3a) {
        assert!(
            (a - b).abs() <= 1e-4 * scale,
            "gradient {a} vs in parts {b}"
        );
    }
}
