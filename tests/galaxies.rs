//! End-to-end accuracy of the flow method on a test galaxy harder than the sample (issue 12):
//! a cuspy, radially anisotropic Hernquist + Osipkov–Merritt spheroid whose particle masses grow
//! with radius (so the flows must learn the initial-mass density, not the particle counts),
//! trained with `pipelines/quick.toml`, scored against an independent equal-mass truth draw of
//! the same model, and by the run's own fidelity report.
//!
//! The backend follows CNF_TEST_DEVICE (flex by default), so CI runs this on both CPU backends.

mod common;

use common::{read_report, text, upsample};
use galaxies::{generate, write_galaxy, MassWeights, Model, Options, Spheroid};
use snapio::{read_catalog, Layout};
use upsample::fidelity::{evaluate, FidelityConfig, PhaseSpace, ShellConfig};

fn device() -> String {
    std::env::var("CNF_TEST_DEVICE").unwrap_or_else(|_| "flex".into())
}

#[test]
fn quick_flows_keep_the_cusp_anisotropy_and_mass_density_of_a_spheroid() {
    let dir = tempfile::tempdir().unwrap();
    let model = Spheroid::default();
    let a = model.df.profile.scale;
    let mut options = Options::new(20_000, 5);
    options.n_truth = 40_000;
    // Particle mass ∝ (1 + r/a): ten times lighter particles in the centre than at 10 a.
    options.mass_weights = Some(MassWeights {
        gamma: 1.0,
        scale: a,
    });
    let galaxy = generate(Model::Spheroid(model), options);
    let written = write_galaxy(&galaxy, dir.path(), Layout::ArepoTng).unwrap();
    let cfg = dir.path().join("run.toml");
    let quick = std::fs::read_to_string(common::root().join("pipelines/quick.toml")).unwrap();
    // The snapshot's own frame (the truth is drawn in it); stars enough for 1% shells.
    let quick = quick
        .replace("fraction = 0.001", "fraction = 0.000005")
        .replace("[clusters]", "[frame]\nenabled = false\n\n[clusters]");
    std::fs::write(&cfg, quick).unwrap();
    let out = dir.path().join("run");
    let dev = device();
    let run = upsample(&[
        "--snapshot",
        written.snapshot.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        &dev,
        "--no-figures",
    ]);
    assert!(
        run.status.success(),
        "{}\n{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    let stars = read_catalog(out.join("catalog.hdf5")).unwrap();
    let truth = &galaxy.truth.particles;
    let training = &galaxy.sample.particles;
    let config = FidelityConfig {
        shells: ShellConfig {
            r_min: 0.25 * a,
            r_max: 10.0 * a,
            n_shells: 8,
            ..ShellConfig::default()
        },
        ..FidelityConfig::default()
    };
    let f = evaluate(
        PhaseSpace::new(&stars.position, &stars.velocity),
        PhaseSpace::new(&truth.position, &truth.velocity),
        PhaseSpace::new(&training.position, &training.velocity),
        &config,
    )
    .unwrap();
    eprintln!(
        "{} stars on {dev}: two-sample z {:.2}, smoothness {:.3} (KS {:.3})",
        stars.len(),
        f.two_sample.z,
        f.smoothness.ratio,
        f.smoothness.ks
    );
    for s in &f.shells {
        eprintln!(
            "  r {:6.2} kpc: share {:.3} ± {:.3}, σ_r {:.3} ± {:.3}, σ_t {:.3} ± {:.3}, β diff {:+.3} ± {:.3}",
            s.r_mid,
            s.share_ratio,
            s.share_ratio_err,
            s.sigma_r_ratio,
            s.sigma_r_ratio_err,
            s.sigma_t_ratio,
            s.sigma_t_ratio_err,
            s.beta_diff,
            s.beta_diff_err
        );
    }
    let report = read_report(&out);
    let own = &report["fidelity"];
    eprintln!(
        "run's own report: z {:.2}, smoothness {:.3}",
        own["two_sample"]["z"].as_f64().unwrap(),
        own["smoothness"]["ratio"].as_f64().unwrap()
    );
    // Smooth: stars do not huddle around the particles.
    assert!(f.smoothness.ratio >= 0.95, "{:?}", f.smoothness);
    // Faithful, shell by shell from 0.25 to 10 scale radii: the density of *mass* (the truth
    // has equal masses; the snapshot's particles do not), σ_r and the anisotropy.
    for s in &f.shells {
        assert!(
            (s.share_ratio - 1.0).abs() < 0.12 + 3.0 * s.share_ratio_err,
            "density share at {:.2} kpc: {s:?}",
            s.r_mid
        );
        assert!(
            (s.sigma_r_ratio - 1.0).abs() < 0.05 + 3.0 * s.sigma_r_ratio_err,
            "σ_r at {:.2} kpc: {s:?}",
            s.r_mid
        );
        assert!(
            s.beta_diff.abs() < 0.05 + 3.0 * s.beta_diff_err,
            "β at {:.2} kpc: {s:?}",
            s.r_mid
        );
    }
    // The 6D statistic sees what the shells average out (20 000 particles whose masses differ
    // twentyfold leave an effective training set of a few thousand): z 10.05 measured on flex
    // and libtorch, 7.7 on libtorch with Gaussianised radii (docs/ACCURACY.md); the kernel
    // method scores z 9 on the equal-mass spheroid. Guarded so that it cannot get much worse.
    assert!(f.two_sample.z < 15.0, "{:?}", f.two_sample);
}
