//! End-to-end accuracy of the flow method on the three test galaxies of issue 12, each trained
//! with `pipelines/quick.toml` in the snapshot's own frame and scored against an independent
//! truth draw of the same model:
//!
//! - (a) a cuspy, radially anisotropic Hernquist + Osipkov–Merritt spheroid whose particle masses
//!   grow with radius (so the flows must learn the initial-mass density, not the particle
//!   counts): density, σ_r and β in shells, smoothness, the 6D two-sample statistic, and the
//!   run's own fidelity report;
//! - (b) an exponential disc + Hernquist bulge: density in shells from the bulge's cusp to the
//!   disc's edge, smoothness, two-sample statistic;
//! - (c) a halo with a cold stream and a compact satellite: star counts, core densities and the
//!   distance and velocity-offset distributions in windows around both (`galaxies::windows`).
//!
//! The backend follows CNF_TEST_DEVICE (flex by default), so CI runs these on both CPU backends.

mod common;

use std::path::Path;

use common::{read_report, text, upsample};
use galaxies::{
    generate, write_galaxy, DiscBulge, Galaxy, HaloStream, MassWeights, Model, Options, Spheroid,
    Window,
};
use snapio::{read_catalog, Layout, StarBatch};
use upsample::fidelity::{
    evaluate, ks_two_sample, Fidelity, FidelityConfig, PhaseSpace, ShellConfig,
};

fn device() -> String {
    std::env::var("CNF_TEST_DEVICE").unwrap_or_else(|_| "flex".into())
}

/// Writes `galaxy` into `dir`, runs the quick preset on it in the snapshot's own frame (the
/// truth is drawn in it) with `fraction` stars per solar mass, and reads back the catalogue and
/// `report.json`.
fn run_quick(galaxy: &Galaxy, dir: &Path, fraction: &str) -> (StarBatch, serde_json::Value) {
    let written = write_galaxy(galaxy, dir, Layout::ArepoTng).unwrap();
    let cfg = dir.join("run.toml");
    let quick = std::fs::read_to_string(common::root().join("pipelines/quick.toml")).unwrap();
    let quick = quick
        .replace("fraction = 0.001", &format!("fraction = {fraction}"))
        .replace("[clusters]", "[frame]\nenabled = false\n\n[clusters]");
    std::fs::write(&cfg, quick).unwrap();
    let out = dir.join("run");
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
    (
        read_catalog(out.join("catalog.hdf5")).unwrap(),
        read_report(&out),
    )
}

/// Scores `stars` against `galaxy`'s truth draw (the snapshot's particles as the training set)
/// in `shells`, and prints the figures.
fn score(stars: &StarBatch, galaxy: &Galaxy, shells: ShellConfig, what: &str) -> Fidelity {
    let truth = &galaxy.truth.particles;
    let training = &galaxy.sample.particles;
    let config = FidelityConfig {
        shells,
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
        "{what}: {} stars on {}: two-sample z {:.2}, smoothness {:.3} (KS {:.3})",
        stars.len(),
        device(),
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
    f
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
    // Stars enough for 1% shells.
    let (stars, report) = run_quick(&galaxy, dir.path(), "0.000005");
    let shells = ShellConfig {
        r_min: 0.25 * a,
        r_max: 10.0 * a,
        n_shells: 8,
        ..ShellConfig::default()
    };
    let f = score(&stars, &galaxy, shells, "(a) spheroid");
    let own = &report["fidelity"];
    let n_reference = |statistic: &str| own[statistic]["n_reference"].as_u64().unwrap();
    eprintln!(
        "run's own report: z {:.2} ({} held-out), smoothness {:.3} ({} held-out)",
        own["two_sample"]["z"].as_f64().unwrap(),
        n_reference("two_sample"),
        own["smoothness"]["ratio"].as_f64().unwrap(),
        n_reference("smoothness")
    );
    // The report weighs every held-out particle by its mass in its shells and smoothness, and
    // the two-sample statistic takes them too, through their local masses (measured: 1 984 in
    // both, z 0.82; before, it compared with those drawn ∝ mass: 142, z 0.22).
    assert_eq!(own["reference"]["mass_weighted"], true);
    assert_eq!(own["two_sample"]["mass_weighted"], true);
    assert!(n_reference("two_sample") > 1_500, "{}", own["two_sample"]);
    assert!(
        own["two_sample"]["z"].as_f64().unwrap() < 4.0,
        "{}",
        own["two_sample"]
    );
    // Every cluster enters, with every held-out particle (10% of 20 000): measured 1 984. (Before,
    // a cluster with under 50 drawn ∝ mass had no figures: 3 of 4 here, 492 in all.)
    assert!(n_reference("smoothness") > 1_600, "{}", own["smoothness"]);
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

#[test]
fn quick_flows_keep_the_bulge_cusp_and_the_disc_edge() {
    let dir = tempfile::tempdir().unwrap();
    let model = DiscBulge::default();
    let mut options = Options::new(20_000, 7);
    options.n_truth = 40_000;
    let galaxy = generate(Model::DiscBulge(model), options);
    let (stars, report) = run_quick(&galaxy, dir.path(), "0.000001");
    // The rotating disc and the non-rotating bulge get cells of their own (3 + 1 of the quick
    // preset's 4).
    let labels: Vec<&str> = report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    let count = |prefix: &str| labels.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!((count("disc "), count("spheroid ")), (3, 1), "{labels:?}");
    // Spherical shells from the bulge's cusp (1% of the truth's radii) to the disc's edge (99%).
    let shells = ShellConfig::spanning(&galaxy.truth.particles.position, 10, 0.01, 0.99);
    let f = score(&stars, &galaxy, shells, "(b) disc + bulge");
    assert!(f.smoothness.ratio >= 0.95, "{:?}", f.smoothness);
    // The generator cuts the bulge at 15 scale radii (10.5 kpc): its hot tail ends abruptly
    // inside the disc. Cells shared by disc and bulge smoothed that edge away (σ_t 0.7x the
    // truth's at 8 kpc); the bulge's own cell ends where it ends (1.05x, docs/ACCURACY.md).
    for s in &f.shells {
        assert!(
            (s.share_ratio - 1.0).abs() < 0.10 + 3.0 * s.share_ratio_err,
            "density share at {:.2} kpc: {s:?}",
            s.r_mid
        );
        assert!(
            (s.sigma_r_ratio - 1.0).abs() < 0.10 + 3.0 * s.sigma_r_ratio_err,
            "σ_r at {:.2} kpc: {s:?}",
            s.r_mid
        );
        assert!(
            (s.sigma_t_ratio - 1.0).abs() < 0.10 + 3.0 * s.sigma_t_ratio_err,
            "σ_t at {:.2} kpc: {s:?}",
            s.r_mid
        );
    }
    assert!(f.two_sample.z < 15.0, "{:?}", f.two_sample);
}

#[test]
fn quick_flows_keep_a_cold_stream_and_a_compact_satellite() {
    let dir = tempfile::tempdir().unwrap();
    let model = HaloStream::default();
    let mut options = Options::new(20_000, 11);
    options.n_truth = 100_000;
    let galaxy = generate(Model::HaloStream(model), options);
    let (stars, report) = run_quick(&galaxy, dir.path(), "0.000005");
    let track = model.track();
    let windows = |x: &[[f64; 3]], v: &[[f64; 3]]| model.windows(&track, x, v);
    let truth = &galaxy.truth.particles;
    let particles = &galaxy.sample.particles;
    let t = windows(&truth.position, &truth.velocity);
    let p = windows(&particles.position, &particles.velocity);
    let s = windows(&stars.position, &stars.velocity);
    eprintln!(
        "(c) stream + satellite: {} stars on {}, run's own z {:.2}",
        stars.len(),
        device(),
        report["fidelity"]["two_sample"]["z"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );
    for (k, (what, t)) in t.named().into_iter().enumerate() {
        let (p, s) = (p.named()[k].1, s.named()[k].1);
        let figures = |w: &Window| {
            let (count, count_err) = w.count_ratio(t);
            let (core, core_err) = w.core_ratio(t);
            let ks_d = ks_two_sample(&w.distance, &t.distance);
            let ks_v = ks_two_sample(&w.dv, &t.dv);
            eprintln!(
                "  {what}: {} in window, count {count:.3} ± {count_err:.3}, core {core:.3} ± {core_err:.3}, KS distance {ks_d:.3}, KS |Δv| {ks_v:.3}",
                w.distance.len()
            );
            (count, count_err, core, core_err, ks_d, ks_v)
        };
        let _ = figures(p);
        let (count, count_err, core, core_err, ks_d, ks_v) = figures(s);
        // Issue 12's bars: counts within 10%, cores within 15% (plus twice the Poisson noise of
        // this small a run), distance and velocity-offset distributions as close as the kernel
        // method's (KS 0.04 on the 50 000-particle galaxy; this one has 20 000).
        assert!(
            (count - 1.0).abs() < 0.10 + 2.0 * count_err,
            "{what} count {count} ± {count_err}"
        );
        assert!(
            (core - 1.0).abs() < 0.15 + 2.0 * core_err,
            "{what} core {core} ± {core_err}"
        );
        assert!(ks_d < 0.10, "{what} distance KS {ks_d}");
        assert!(ks_v < 0.10, "{what} velocity-offset KS {ks_v}");
        if what == "satellite" {
            // Its dispersion falls from its centre outwards: the median |Δv| inside its core
            // radius over that outside. Flows standardised about the galaxy's centre gave the
            // satellite one dispersion everywhere (1.04 where the truth has 1.35, galaxy (c) at
            // 50 000 particles, docs/ACCURACY.md); at least half the truth's rise is asserted.
            let (rise_t, rise_s) = (core_over_outside(t), core_over_outside(s));
            eprintln!(
                "  satellite: median |Δv| core / outside {rise_s:.3} (truth {rise_t:.3}, particles {:.3})",
                core_over_outside(p)
            );
            assert!(
                rise_s - 1.0 > 0.5 * (rise_t - 1.0),
                "satellite's |Δv| core / outside {rise_s} (truth {rise_t})"
            );
        }
    }
}

/// The median velocity offset inside a window's core radius over that outside it.
fn core_over_outside(w: &Window) -> f64 {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (inside, outside) = w.dv_by_core();
    median(inside) / median(outside)
}
