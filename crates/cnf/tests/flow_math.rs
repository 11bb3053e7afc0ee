//! log-density against the numerically differentiated flow map, round trips, gradients,
#![allow(clippy::needless_range_loop)]
//! checkpoints, device parsing and determinism.
mod common;

use cnf::{Flow, FlowConfig, RadialCompression};

fn test_flow(context_dim: usize, seed: u64) -> Flow {
    let cfg = FlowConfig {
        context_dim,
        width: 32,
        depth: 2,
        final_init_scale: 0.7,
        rtol: 1e-6,
        atol: 1e-6,
        ..FlowConfig::default()
    };
    let mut flow = Flow::new(&cfg, &common::device(), seed).unwrap();
    // A non-trivial whitening so that its log-det is exercised too.
    flow.whitening.mean = vec![0.5, -1.0, 2.0];
    flow.whitening.chol = vec![2.0, 0.0, 0.0, 0.3, 0.5, 0.0, -0.2, 0.1, 1.5];
    if context_dim > 0 {
        flow.whitening.context_mean = vec![0.1; context_dim];
        flow.whitening.context_std = vec![2.0; context_dim];
    }
    flow
}

/// The test flow with radial compression of data and context switched on.
fn compressed_flow(context_dim: usize, seed: u64) -> Flow {
    let mut flow = test_flow(context_dim, seed);
    flow.whitening.compress = Some(RadialCompression {
        center: vec![0.3, -0.8, 1.7],
        scale: 0.8,
    });
    if context_dim > 0 {
        flow.whitening.context_compress = Some(RadialCompression {
            center: vec![0.2; context_dim],
            scale: 0.5,
        });
    }
    flow
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// log p(x) = log N(z(x)) + log |det ∂z/∂x| with ∂z/∂x from finite differences of the adaptive
/// map. All stencil points of a point are solved in one batch, which shares one step-size
/// sequence, so the differentiated map is one smooth function.
fn check_change_of_variables(flow: &Flow) {
    let context_dim = flow.config.context_dim;
    let mut rng = common::rng(5);
    let n = 12;
    let mut xs: Vec<[f64; 3]> = (0..n)
        .map(|_| {
            let z = common::normal3(&mut rng);
            [0.5 + 2.0 * z[0], -1.0 + z[1], 2.0 + 1.5 * z[2]]
        })
        .collect();
    // One point near the compression centre (its series branch), one far out.
    xs[0] = [0.3 + 4e-3, -0.8, 1.7 - 2e-3];
    xs[1] = [6.0, -7.0, 9.0];
    let cs: Vec<f64> = (0..n * context_dim)
        .map(|_| common::uniform(&mut rng, -1.0, 1.0))
        .collect();
    let ctx = (context_dim > 0).then_some(cs.as_slice());
    let lp = flow.log_prob(&xs, ctx).unwrap();
    let h = 1e-2;
    let offs = [-2.0, -1.0, 1.0, 2.0];
    for i in 0..n {
        let mut pts = vec![xs[i]];
        for j in 0..3 {
            for o in offs {
                let mut p = xs[i];
                p[j] += o * h;
                pts.push(p);
            }
        }
        let c: Vec<f64> = (0..pts.len())
            .flat_map(|_| cs[i * context_dim..(i + 1) * context_dim].to_vec())
            .collect();
        let z = flow
            .inverse(&pts, (context_dim > 0).then_some(c.as_slice()))
            .unwrap();
        let mut jac = [[0.0; 3]; 3];
        for j in 0..3 {
            let s = |k: usize| z[1 + j * 4 + k];
            for r in 0..3 {
                jac[r][j] = (s(0)[r] - 8.0 * s(1)[r] + 8.0 * s(2)[r] - s(3)[r]) / (12.0 * h);
            }
        }
        let z0 = z[0];
        let base = -0.5 * (z0[0] * z0[0] + z0[1] * z0[1] + z0[2] * z0[2])
            - 1.5 * (2.0 * std::f64::consts::PI).ln();
        let expected = base + det3(&jac).abs().ln();
        assert!(
            (lp[i] - expected).abs() < 1e-3,
            "point {i}: log_prob {} vs change of variables {expected}",
            lp[i]
        );
    }
}

#[test]
fn log_prob_matches_numerical_change_of_variables() {
    check_change_of_variables(&test_flow(0, 3));
}

#[test]
fn log_prob_matches_numerical_change_of_variables_conditional() {
    check_change_of_variables(&test_flow(3, 3));
}

#[test]
fn log_prob_matches_change_of_variables_with_radial_compression() {
    check_change_of_variables(&compressed_flow(0, 3));
    check_change_of_variables(&compressed_flow(3, 3));
}

#[test]
fn inverse_of_forward_is_identity() {
    round_trip(&test_flow(3, 9));
    round_trip(&compressed_flow(3, 9));
}

fn round_trip(flow: &Flow) {
    let mut rng = common::rng(1);
    let n = 200;
    let zs: Vec<[f64; 3]> = (0..n).map(|_| common::normal3(&mut rng)).collect();
    let cs: Vec<f64> = (0..n * 3)
        .map(|_| common::uniform(&mut rng, -2.0, 2.0))
        .collect();
    let x = flow.forward(&zs, Some(&cs)).unwrap();
    let back = flow.inverse(&x, Some(&cs)).unwrap();
    let mut moved: f64 = 0.0;
    for (a, b) in zs.iter().zip(&back) {
        for k in 0..3 {
            assert!((a[k] - b[k]).abs() < 1e-4, "round trip {a:?} -> {b:?}");
        }
    }
    // and the other way round, in data space
    let z2 = flow.inverse(&x, Some(&cs)).unwrap();
    let x2 = flow.forward(&z2, Some(&cs)).unwrap();
    for (a, b) in x.iter().zip(&x2) {
        for k in 0..3 {
            assert!(
                (a[k] - b[k]).abs() < 1e-4 * (1.0 + a[k].abs()),
                "{a:?} vs {b:?}"
            );
        }
    }
    for (a, b) in zs.iter().zip(&x) {
        moved = moved.max((a[0] - b[0]).abs());
    }
    assert!(moved > 0.1, "the test flow should not be trivial");
}

#[test]
fn grad_log_prob_matches_finite_differences() {
    let flow = test_flow(2, 4);
    let mut rng = common::rng(8);
    let n = 6;
    let xs: Vec<[f64; 3]> = (0..n)
        .map(|_| {
            let z = common::normal3(&mut rng);
            [0.5 + z[0], -1.0 + z[1], 2.0 + z[2]]
        })
        .collect();
    let cs: Vec<f64> = (0..n * 2)
        .map(|_| common::uniform(&mut rng, -1.0, 1.0))
        .collect();
    let (lp, gx, gc) = flow.grad_log_prob(&xs, Some(&cs)).unwrap();
    let lp2 = flow.log_prob(&xs, Some(&cs)).unwrap();
    let h = 1e-2;
    for i in 0..n {
        assert!((lp[i] - lp2[i]).abs() < 1e-4);
        // all perturbations of point i in one batch (shared step sizes)
        let mut pts = Vec::new();
        let mut ctx = Vec::new();
        for j in 0..5 {
            for s in [-1.0, 1.0] {
                let mut p = xs[i];
                let mut c = cs[i * 2..i * 2 + 2].to_vec();
                if j < 3 {
                    p[j] += s * h;
                } else {
                    c[j - 3] += s * h;
                }
                pts.push(p);
                ctx.extend(c);
            }
        }
        let l = flow.log_prob(&pts, Some(&ctx)).unwrap();
        for j in 0..5 {
            let fd = (l[2 * j + 1] - l[2 * j]) / (2.0 * h);
            let g = if j < 3 { gx[i][j] } else { gc[i][j - 3] };
            assert!(
                (fd - g).abs() < 2e-3 * (1.0 + g.abs()),
                "point {i} component {j}: autodiff {g} vs fd {fd}"
            );
        }
    }
}

#[test]
fn checkpoint_round_trip_reproduces_log_prob_exactly() {
    let flow = test_flow(3, 21);
    let dir = tempfile::tempdir().unwrap();
    flow.save(dir.path()).unwrap();
    let loaded = Flow::load(dir.path(), &common::device()).unwrap();
    assert_eq!(loaded.config, flow.config);
    assert_eq!(loaded.whitening, flow.whitening);
    let mut rng = common::rng(2);
    let xs: Vec<[f64; 3]> = (0..50).map(|_| common::normal3(&mut rng)).collect();
    let cs: Vec<f64> = (0..150)
        .map(|_| common::uniform(&mut rng, -1.0, 1.0))
        .collect();
    let a = flow.log_prob(&xs, Some(&cs)).unwrap();
    let b = loaded.log_prob(&xs, Some(&cs)).unwrap();
    assert_eq!(a, b, "log_prob after reload must be bit-identical");
    let m = Flow::read_manifest(dir.path()).unwrap();
    assert_eq!(m.burn_version, "0.22.1");
}

#[test]
fn loading_a_missing_checkpoint_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Flow::load(&dir.path().join("nope"), &common::device()).unwrap_err();
    assert!(err.to_string().contains("manifest.json"), "{err}");
}

#[test]
fn same_seed_gives_same_weights_and_fresh_flow_is_near_identity() {
    let cfg = FlowConfig::default();
    let a = Flow::new(&cfg, &common::device(), 5).unwrap();
    let b = Flow::new(&cfg, &common::device(), 5).unwrap();
    let mut rng = common::rng(3);
    let xs: Vec<[f64; 3]> = (0..20).map(|_| common::normal3(&mut rng)).collect();
    let la = a.log_prob(&xs, None).unwrap();
    let lb = b.log_prob(&xs, None).unwrap();
    assert_eq!(la, lb);
    let z = a.inverse(&xs, None).unwrap();
    for (x, z) in xs.iter().zip(&z) {
        for k in 0..3 {
            assert!(
                (x[k] - z[k]).abs() < 0.1,
                "initial flow should be close to identity"
            );
        }
    }
}

#[test]
fn device_strings_parse() {
    use cnf::DeviceSpec;
    assert_eq!(DeviceSpec::parse("flex").unwrap(), DeviceSpec::Flex);
    assert_eq!(DeviceSpec::parse("LibTorch").unwrap(), DeviceSpec::LibTorch);
    assert_eq!(DeviceSpec::parse("cuda:1").unwrap(), DeviceSpec::Cuda(1));
    assert!(DeviceSpec::parse("cuda:x").is_err());
    assert!(DeviceSpec::parse("tpu").is_err());
    assert!(cnf::parse_device("flex").is_ok());
    if !cfg!(feature = "tch") {
        assert!(cnf::parse_device("libtorch").is_err());
    }
    // The kind of a device (it picks the field's kernels and the training threads), read once
    // from burn's Debug form: CPUs are not GPUs, with or without autodiff.
    use cnf::{DeviceKind, Kernels};
    let flex = cnf::parse_device("flex").unwrap();
    assert_eq!(DeviceKind::of(&flex), DeviceKind::Flex);
    assert_eq!(DeviceKind::of(&flex.clone().autodiff()), DeviceKind::Flex);
    assert!(!DeviceKind::Flex.is_gpu() && !DeviceKind::Flex.is_libtorch_cpu());
    let cpu_kernels = Kernels::for_device(DeviceKind::Flex);
    assert!(cpu_kernels.tanh_reuse && cpu_kernels.tanh_via_sigmoid);
    assert_eq!(
        cnf::VectorField::new(&[4, 8, 3], 1.0, 1, &flex).kernels,
        cpu_kernels
    );
    let gpu_kernels = Kernels::for_device(DeviceKind::Cuda(0));
    assert!(!gpu_kernels.tanh_reuse && !gpu_kernels.tanh_via_sigmoid);
    #[cfg(feature = "tch")]
    {
        let cpu = cnf::parse_device("libtorch").unwrap();
        assert_eq!(DeviceKind::of(&cpu), DeviceKind::LibTorchCpu);
        assert_eq!(DeviceKind::of(&cpu.autodiff()), DeviceKind::LibTorchCpu);
        // Naming a CUDA device needs no GPU; using it does.
        #[allow(deprecated)]
        let gpu = burn::tensor::Device::libtorch_cuda(1);
        assert_eq!(DeviceKind::of(&gpu), DeviceKind::Cuda(1), "{gpu:?}");
        assert_eq!(DeviceKind::of(&gpu.autodiff()), DeviceKind::Cuda(1));
        assert!(DeviceKind::Cuda(1).is_gpu() && !DeviceKind::Cuda(1).is_libtorch_cpu());
    }
}

#[test]
fn wrong_context_is_an_error() {
    let flow = test_flow(3, 1);
    let xs = [[0.0; 3]; 2];
    assert!(flow.log_prob(&xs, None).is_err());
    assert!(flow.log_prob(&xs, Some(&[0.0; 5])).is_err());
}

#[test]
fn cuda_when_present() {
    match cnf::backend::cuda_available(0) {
        Err(reason) => eprintln!("SKIPPED cuda test: {reason}"),
        Ok(dev) => {
            // Same seed, same weights: the GPU's log-density must match the CPU's.
            let cfg = FlowConfig::default();
            let gpu = Flow::new(&cfg, &dev, 1).unwrap();
            let cpu = Flow::new(&cfg, &cnf::parse_device("libtorch").unwrap(), 1).unwrap();
            let x = cpu.sample(256, None, 1).unwrap();
            let a = gpu.log_prob(&x, None).unwrap();
            let b = cpu.log_prob(&x, None).unwrap();
            for (g, c) in a.iter().zip(&b) {
                assert!(
                    (g - c).abs() < 1e-3 * (1.0 + c.abs()),
                    "cuda {g} vs cpu {c}"
                );
            }
        }
    }
}
