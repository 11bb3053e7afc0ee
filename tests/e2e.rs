//! End-to-end tests of the `upsample` binary on the shipped sample `data/snap_099.hdf5`,
//! checked against the analytic truth stored beside it (`data/snap_099.truth.json`).

mod common;

use common::{ks_distance, read_report, text, truth, upsample, vec3};

#[test]
fn inspect_describes_the_sample() {
    let out = upsample(&["inspect", "data/snap_099.hdf5"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "inspect failed: {}",
        text(&out.stderr)
    );
    for needle in [
        "PartType4",
        "Coordinates",
        "GFM_StellarFormationTime",
        "HubbleParam",
        "70256",
    ] {
        assert!(
            stdout.contains(needle),
            "inspect output lacks {needle:?}:\n{stdout}"
        );
    }
    assert!(
        stdout.to_lowercase().contains("wind"),
        "inspect says nothing of winds:\n{stdout}"
    );
    assert!(
        stdout.contains("256"),
        "inspect does not count the 256 wind particles:\n{stdout}"
    );
}

#[test]
fn main_job_finds_the_galaxy_frame_of_the_sample() {
    let t = truth();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out = upsample(&[
        "--snapshot",
        "data/snap_099.hdf5",
        "--out",
        out_dir.to_str().unwrap(),
        "--method",
        "kernel",
        "--star-fraction",
        "0.00001",
    ]);
    assert!(out.status.success(), "run failed: {}", text(&out.stderr));
    let report: serde_json::Value = read_report(&out_dir);

    assert_eq!(report["star_particles_read"], t["n_stars"]);
    assert_eq!(report["wind_particles_dropped"], t["n_wind"]);
    let m = report["stellar_mass_msun"].as_f64().unwrap();
    let m_true = t["total_mass_Msun"].as_f64().unwrap();
    assert!(
        (m / m_true - 1.0).abs() < 1e-5,
        "stellar mass {m} vs {m_true}"
    );

    // Centre within 1% of the scale radius, bulk velocity within 1 km/s (the sample's own
    // mean velocity scatters by sigma/sqrt(N) ~ 0.04 km/s), spin axis within 1 degree.
    let b = t["scale_radius_kpc"].as_f64().unwrap();
    let c = vec3(&report["frame_center_kpc"]);
    let c_true = vec3(&t["center_kpc"]);
    let dc = (0..3)
        .map(|i| (c[i] - c_true[i]).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(dc < 0.01 * b, "centre off by {dc} kpc");
    let v = vec3(&report["frame_bulk_velocity_kms"]);
    let v_true = vec3(&t["bulk_velocity_kms"]);
    let dv = (0..3)
        .map(|i| (v[i] - v_true[i]).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(dv < 1.0, "bulk velocity off by {dv} km/s");
    let z = vec3(&report["frame_rotation"][2]);
    let z_true = vec3(&t["rotation_galaxy_to_box_rows"][2]);
    let cos = (0..3).map(|i| z[i] * z_true[i]).sum::<f64>();
    let angle = cos.clamp(-1.0, 1.0).acos().to_degrees();
    assert!(angle < 1.0, "spin axis off by {angle} degrees");

    // A region cut in the galaxy frame keeps the Plummer mass fraction inside r = b:
    // M(<b)/M = 2^{-3/2} = 0.354, of the truncated profile's total.
    let out = upsample(&[
        "--snapshot",
        "data/snap_099.hdf5",
        "--out",
        out_dir.to_str().unwrap(),
        "--method",
        "kernel",
        "--region-center",
        "0,0,0",
        "--region-radius",
        &b.to_string(),
        "--star-fraction",
        "0.00001",
    ]);
    assert!(
        out.status.success(),
        "region run failed: {}",
        text(&out.stderr)
    );
    let report: serde_json::Value = read_report(&out_dir);
    let rt = t["truncation_radius_kpc"].as_f64().unwrap();
    let frac_true = 2f64.powf(-1.5) / (rt.powi(3) / (rt * rt + b * b).powf(1.5));
    let n = t["n_stars"].as_f64().unwrap();
    let frac = report["star_particles_selected"].as_f64().unwrap() / n;
    let sigma = (frac_true * (1.0 - frac_true) / n).sqrt();
    assert!(
        (frac - frac_true).abs() < 4.0 * sigma,
        "fraction inside b: {frac} vs {frac_true}"
    );
}

#[test]
fn bad_input_fails_cleanly_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let missing = dir.path().join("snap_404.hdf5");
    let out = upsample(&[
        "--snapshot",
        missing.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("snap_404"),
        "stderr: {}",
        text(&out.stderr)
    );
    assert!(!out_dir.join("report.json").exists());

    let not_hdf5 = dir.path().join("notes.hdf5");
    std::fs::write(&not_hdf5, "this is not an HDF5 file\n").unwrap();
    let out = upsample(&["inspect", not_hdf5.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("notes.hdf5"),
        "stderr: {}",
        text(&out.stderr)
    );

    let out = upsample(&["--snapshot", "data/snap_099.hdf5", "--star-fraction", "2"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("star fraction"),
        "stderr: {}",
        text(&out.stderr)
    );

    let out = upsample(&[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--snapshot"));
}

#[test]
fn help_states_units() {
    let out = upsample(&["--help"]);
    let s = text(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "--snapshot",
        "--region-radius",
        "kpc",
        "--device",
        "--seed",
        "--star-fraction",
    ] {
        assert!(s.contains(needle), "help lacks {needle}:\n{s}");
    }
}

#[test]
fn kernel_catalogue_follows_the_analytic_profile_and_is_reproducible() {
    let t = truth();
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let out_dir = dir.path().join(name);
        let out = upsample(&[
            "--snapshot",
            "data/snap_099.hdf5",
            "--out",
            out_dir.to_str().unwrap(),
            "--method",
            "kernel",
            "--star-fraction",
            "0.0005",
            "--seed",
            "11",
        ]);
        assert!(out.status.success(), "run failed: {}", text(&out.stderr));
        out_dir
    };
    let a = run("a");
    let cat = snapio::read_catalog(a.join("catalog.hdf5")).unwrap();
    let report: serde_json::Value = read_report(&a);
    let n = cat.len();
    assert_eq!(n as u64, report["stars"]["stars_written"].as_u64().unwrap());
    assert!(n > 100_000, "only {n} stars");

    // Initial mass drawn = fraction x particles' initial mass, within compound-Poisson noise
    // sigma = sqrt(lambda <m^2>) estimated from the catalogue's own masses.
    let f = 0.0005;
    let drawn = report["stars"]["initial_mass_drawn_msun"].as_f64().unwrap();
    let target = f * report["initial_stellar_mass_msun"].as_f64().unwrap();
    let m2 = cat.initial_mass.iter().map(|m| m * m).sum::<f64>() / n as f64;
    let m1 = cat.initial_mass.iter().sum::<f64>() / n as f64;
    let sigma = (target / m1 * m2).sqrt();
    assert!(
        (drawn - target).abs() < 4.0 * sigma,
        "initial mass drawn {drawn} vs {target} +- {sigma}"
    );

    // Every star is alive: main-sequence lifetime 10 Gyr m^-2.5 longer than its age.
    for i in 0..n {
        assert!(10.0 * cat.initial_mass[i].powf(-2.5) >= cat.age[i]);
        assert!((0.08..=100.0).contains(&cat.mass[i]));
    }

    // Radial distribution against the truncated Plummer profile: the particles alone are at
    // KS 0.0032, the kernel's smoothing over the 64th-neighbour distance adds a little (the
    // pipeline issue's bar for the flows is 0.006 with >= 150k stars).
    let b = t["scale_radius_kpc"].as_f64().unwrap();
    let rt = t["truncation_radius_kpc"].as_f64().unwrap();
    let m = |r: f64| r.powi(3) / (r * r + b * b).powf(1.5);
    let radii: Vec<f64> = cat
        .position
        .iter()
        .map(|x| (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt())
        .collect();
    let ks = ks_distance(radii, |r| (m(r) / m(rt)).min(1.0));
    eprintln!("kernel method: {n} stars, KS distance of radii to the analytic profile = {ks:.4}");
    assert!(ks < 0.006, "KS distance {ks}");

    // Same seed, same catalogue.
    let b_dir = run("b");
    let cat_b = snapio::read_catalog(b_dir.join("catalog.hdf5")).unwrap();
    assert_eq!(cat, cat_b, "same seed gave a different catalogue");
    assert!(
        std::fs::read(a.join("catalog.hdf5")).unwrap()
            == std::fs::read(b_dir.join("catalog.hdf5")).unwrap(),
        "same seed gave the same stars but not the same file, byte for byte"
    );
}

#[test]
fn a_run_folder_in_use_by_another_process_is_refused_and_left_alone() {
    // This test process holds the folder's lock, as a running job would.
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    std::fs::create_dir_all(&out_dir).unwrap();
    let paths = upsample::pipeline::RunPaths {
        snapshot: "data/snap_099.hdf5".into(),
        out: out_dir.clone(),
    };
    let lock = upsample::pipeline::RunLock::acquire(&paths, None).unwrap();
    let o = out_dir.to_str().unwrap();
    let args = [
        "--snapshot",
        "data/snap_099.hdf5",
        "--out",
        o,
        "--method",
        "kernel",
        "--star-fraction",
        "0.001",
    ];
    let out = upsample(&args);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "a second writer was let in");
    assert!(
        err.contains("in use by another process")
            && err.contains(&format!("pid {}", std::process::id())),
        "the message does not name the holder:\n{err}"
    );
    assert!(!out_dir.join("catalog.hdf5").exists() && !out_dir.join("report.json").exists());
    let merge = upsample(&["merge", o]);
    assert!(!merge.status.success());
    // The holder gone (a killed job's lock goes with it), the same command runs.
    drop(lock);
    let out = upsample(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out_dir.join("catalog.hdf5").exists());
}

/// The sample's star particles (physical units, snapshot frame) and header, to write variants.
fn sample_particles() -> (snapio::StarParticles, snapio::Header) {
    let snap = snapio::Snapshot::open(common::root().join("data/snap_099.hdf5")).unwrap();
    let (stars, _) = snap.read_stars(&snapio::ReadOptions::default()).unwrap();
    (stars, snap.header().clone())
}

/// One bad value in an otherwise valid snapshot: what to poke, the dataset the error must
/// name and the kind `drop` must count.
type Variant = (
    &'static str,
    fn(&mut snapio::StarParticles),
    &'static str,
    &'static str,
);

#[test]
fn invalid_particles_stop_the_run_or_are_dropped_and_counted() {
    let variants: [Variant; 5] = [
        (
            "negative_mass",
            |s| s.mass[5] = -s.mass[5],
            "Masses",
            "nonpositive_mass",
        ),
        (
            "nan_metallicity",
            |s| s.metallicity[5] = f64::NAN,
            "GFM_Metallicity",
            "nonfinite_metallicity",
        ),
        (
            "born_after_the_snapshot",
            |s| s.age[5] = -1.0,
            "GFM_StellarFormationTime",
            "age_out_of_range",
        ),
        (
            "far_away",
            |s| s.position[5] = [1e30, 0.0, 0.0],
            "Coordinates",
            "position_out_of_box",
        ),
        (
            "duplicate_id",
            |s| s.id[5] = s.id[4],
            "ParticleIDs",
            "duplicate_id",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (stars, header) = sample_particles();
    let n = stars.len();
    let cfg = dir.path().join("drop.toml");
    std::fs::write(&cfg, "[input]\non_invalid = \"drop\"\n").unwrap();
    for (name, poke, dataset, kind) in variants {
        let mut bad = stars.clone();
        poke(&mut bad);
        let snap = dir.path().join(format!("snap_{name}.hdf5"));
        snapio::write_snapshot(&snap, snapio::Layout::ArepoTng, &header, &bad, None, 1).unwrap();
        let out_dir = dir.path().join(format!("run_{name}"));
        let (s, o) = (snap.to_str().unwrap(), out_dir.to_str().unwrap());
        let args = [
            "--snapshot",
            s,
            "--out",
            o,
            "--method",
            "kernel",
            "--star-fraction",
            "0.001",
        ];

        let out = upsample(&args);
        let err = text(&out.stderr);
        assert!(
            !out.status.success(),
            "{name}: the bad particle was accepted"
        );
        for needle in [snap.file_name().unwrap().to_str().unwrap(), dataset, "5"] {
            assert!(
                err.contains(needle),
                "{name}: the error lacks {needle:?}:\n{err}"
            );
        }
        assert!(
            !out_dir.join("catalog.hdf5").exists() && !out_dir.join("report.json").exists(),
            "{name}: output left behind"
        );

        let mut with_cfg = args.to_vec();
        with_cfg.extend(["--config", cfg.to_str().unwrap()]);
        let out = upsample(&with_cfg);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(&format!("1 invalid star particles dropped: 1 {kind}")),
            "{name}: {}",
            text(&out.stdout)
        );
        let report = read_report(&out_dir);
        assert_eq!(report["invalid_particles_dropped"][kind], 1, "{name}");
        assert_eq!(report["star_particles_read"], (n - 1) as u64, "{name}");
    }
}

#[test]
fn fire_child_ids_make_distinct_parents_with_the_same_particle_id() {
    // FIRE gives a star spawned from an already-used gas ID the same ParticleIDs and another
    // ParticleChildIDsNumber: two parents, two independent random streams.
    let dir = tempfile::tempdir().unwrap();
    let (all, header) = sample_particles();
    let keep: Vec<usize> = (0..4000).collect();
    let mut stars = all.select(&keep);
    stars.child_id = vec![0; stars.len()];
    stars.generation = vec![0; stars.len()];
    stars.id[1] = stars.id[0];
    stars.initial_mass[1] = stars.initial_mass[0];
    stars.age[1] = stars.age[0];
    stars.child_id[1] = 1;
    stars.generation[1] = 1;
    let snap = dir.path().join("snap_fire.hdf5");
    snapio::write_snapshot(&snap, snapio::Layout::GizmoFire, &header, &stars, None, 1).unwrap();
    let catalogue = |threads: &str| {
        let out_dir = dir.path().join(format!("run{threads}"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_upsample"))
            .env(common::NO_HDF5_LOCKS.0, common::NO_HDF5_LOCKS.1)
            .args(["--snapshot", snap.to_str().unwrap(), "--out"])
            .arg(&out_dir)
            .args([
                "--method",
                "kernel",
                "--star-fraction",
                "0.05",
                "--seed",
                "4",
            ])
            .env("RAYON_NUM_THREADS", threads)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        snapio::read_catalog(out_dir.join("catalog.hdf5")).unwrap()
    };
    let one = catalogue("1");
    let two = catalogue("2");
    assert_eq!(
        one.mass, two.mass,
        "the catalogue depends on the thread count"
    );
    assert_eq!(one.position, two.position);
    assert_eq!(one.parent_child_id, two.parent_child_id);
    assert_eq!(
        one.parent_child_id.len(),
        one.len(),
        "no parent_child_id column"
    );
    let masses_of = |child: u32| -> Vec<f64> {
        (0..one.len())
            .filter(|&j| one.parent_id[j] == stars.id[0] && one.parent_child_id[j] == child)
            .map(|j| one.mass[j])
            .collect()
    };
    let (a, b) = (masses_of(0), masses_of(1));
    assert!(
        !a.is_empty() && !b.is_empty(),
        "{} and {} stars",
        a.len(),
        b.len()
    );
    assert_ne!(a, b, "two parents sharing a ParticleID drew the same stars");
}
