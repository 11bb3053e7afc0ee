//! End-to-end tests of the mock survey (`[survey]`, docs/SURVEY.md) on the shipped sample with
//! the kernel method: the survey catalogues' columns, units and attributes, the cut, the
//! astrometry, the counts in report.json, reproducibility, several observers, bad values.

mod common;

use common::{read_report, root, text};
use std::path::Path;
use std::process::{Command, Output};

/// A run of the sample with the kernel method and the configuration `toml` (written beside the
/// run folder), with extra environment variables.
fn run(dir: &Path, name: &str, toml: &str, env: &[(&str, &str)]) -> (Output, std::path::PathBuf) {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, toml).unwrap();
    let out_dir = dir.join(name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upsample"));
    cmd.env(common::NO_HDF5_LOCKS.0, common::NO_HDF5_LOCKS.1);
    cmd.args([
        "--snapshot",
        "data/snap_099.hdf5",
        "--out",
        out_dir.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--method",
        "kernel",
    ])
    .current_dir(root())
    .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd.output().expect("the upsample binary runs"), out_dir)
}

const TWO_SUNS: &str = "seed = 11\n[stars]\nfraction = 0.0005\n\
    [survey]\nenabled = true\nring = 2\ndust = \"per_kpc\"\na0 = 0.3\n";

fn f64s(f: &hdf5::File, name: &str) -> Vec<f64> {
    f.dataset(name)
        .unwrap_or_else(|e| panic!("dataset {name}: {e}"))
        .read_raw::<f64>()
        .unwrap()
}

fn units(f: &hdf5::File, name: &str) -> String {
    let a = f.dataset(name).unwrap().attr("units").unwrap();
    let v: hdf5::types::VarLenUnicode = a.read_scalar().unwrap();
    v.as_str().to_string()
}

fn attr_f64s(f: &hdf5::File, name: &str) -> Vec<f64> {
    f.attr(name)
        .unwrap_or_else(|e| panic!("root attribute {name}: {e}"))
        .read_raw::<f64>()
        .unwrap()
}

#[test]
fn survey_catalogues_hold_the_columns_the_cut_and_counts_that_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let (out, run_dir) = run(dir.path(), "two", TWO_SUNS, &[]);
    assert!(out.status.success(), "run failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("survey observer 1"), "summary: {stdout}");
    let report = read_report(&run_dir);
    let written = report["stars"]["stars_written"].as_u64().unwrap();
    let survey = report["survey"].as_array().expect("report.json has survey");
    assert_eq!(survey.len(), 2);
    let catalog = hdf5::File::open(run_dir.join("catalog.hdf5")).unwrap();
    // With a survey the isochrones replace the t_MS = 10 Gyr m^-2.5 rule: every written star is
    // below the most massive living star of its parent's age and metallicity, and the stars
    // removed as remnants are counted (drawn - written).
    let grid = survey::IsochroneGrid::new(survey::builtin_gaia_edr3().unwrap()).unwrap();
    let (m, age, z) = (
        f64s(&catalog, "initial_mass"),
        f64s(&catalog, "age"),
        f64s(&catalog, "metallicity"),
    );
    assert!((0..m.len()).all(|i| m[i] <= grid.max_alive_mass(age[i], z[i])));
    assert!(report["stars"]["stars_drawn"].as_u64().unwrap() > written);
    let relation = catalog.attr("lifetime_relation").unwrap();
    let relation: hdf5::types::VarLenUnicode = relation.read_scalar().unwrap();
    assert!(
        relation.as_str().contains("isochrones"),
        "{}",
        relation.as_str()
    );
    let catalog_names = catalog.member_names().unwrap();
    let mut positions = Vec::new();
    for (j, s) in survey.iter().enumerate() {
        let (drawn, alive, selected) = (
            s["drawn"].as_u64().unwrap(),
            s["alive"].as_u64().unwrap(),
            s["selected"].as_u64().unwrap(),
        );
        assert_eq!(drawn, written, "every catalogue star is observed");
        // The isochrones decided which stars are alive before the catalogue was written, so the
        // survey sees no remnant (drawn = alive up to the interpolation's own remnant flag).
        assert!(
            drawn >= alive && alive > selected && selected > 100,
            "observer {j}: drawn {drawn} alive {alive} selected {selected}"
        );
        let path = run_dir.join(format!("survey_obs{j}.hdf5"));
        assert_eq!(s["file"], format!("survey_obs{j}.hdf5"));
        let f = hdf5::File::open(&path).unwrap();
        // Every catalogue dataset with its units, plus the survey columns.
        for name in &catalog_names {
            assert_eq!(units(&f, name), units(&catalog, name), "{name}");
        }
        for (name, unit) in [
            ("distance", "kpc"),
            ("ra", "deg"),
            ("b", "deg"),
            ("parallax", "mas"),
            ("pmra", "mas/yr"),
            ("pml", "mas/yr"),
            ("radial_velocity", "km/s"),
            ("distance_modulus", "mag"),
            ("log_teff", "log10(Teff / K)"),
            ("current_mass", "Msun"),
            ("abs_g", "mag"),
            ("g_intrinsic", "mag"),
            ("a0", "mag"),
            ("a_bp", "mag"),
            ("obs_g", "mag"),
            ("parallax_error", "mas"),
            ("obs_radial_velocity", "km/s"),
            ("phase_label", "dimensionless"),
            ("survey_flags", "dimensionless"),
        ] {
            assert!(
                units(&f, name).starts_with(unit),
                "{name}: units {:?}, expected {unit}",
                units(&f, name)
            );
        }
        let rows = f.dataset("mass").unwrap().shape()[0] as u64;
        assert_eq!(rows, selected, "selected = rows of survey_obs{j}");
        // The cut on observed G.
        let g = f64s(&f, "obs_g");
        assert!(g.iter().all(|&g| g <= 21.0), "a star fainter than G = 21");
        // True parallax = 1 / distance (mas, kpc); the uniform screen A0 = 0.3 mag/kpc × d.
        let (plx, d, a0) = (f64s(&f, "parallax"), f64s(&f, "distance"), f64s(&f, "a0"));
        for i in 0..plx.len() {
            assert!(
                (plx[i] * d[i] - 1.0).abs() < 1e-9,
                "row {i}: {} {}",
                plx[i],
                d[i]
            );
            assert!((a0[i] - 0.3 * d[i]).abs() < 1e-12);
        }
        // Reddened = intrinsic + A_G; observed G scatters about it by its sigma.
        let (g0, ag, gt, ge) = (
            f64s(&f, "g_intrinsic"),
            f64s(&f, "a_g"),
            f64s(&f, "g"),
            f64s(&f, "g_error"),
        );
        let mut chi2 = 0.0;
        for i in 0..g.len() {
            assert!((g0[i] + ag[i] - gt[i]).abs() < 1e-9);
            chi2 += ((g[i] - gt[i]) / ge[i]).powi(2);
        }
        let chi2 = chi2 / g.len() as f64;
        assert!((0.8..1.25).contains(&chi2), "observed G: chi2/n = {chi2}");
        // Root attributes: the catalogue's, the observer's and the survey's.
        let pos = attr_f64s(&f, "observer_position_kpc");
        let want = common::vec3(&s["observer_position_kpc"]);
        assert!(
            (0..3).all(|k| (pos[k] - want[k]).abs() < 1e-12),
            "{pos:?} vs {want:?}"
        );
        assert!(((pos[0].powi(2) + pos[1].powi(2)).sqrt() - 8.122).abs() < 1e-3);
        assert_eq!(attr_f64s(&f, "observer_velocity_kms").len(), 3);
        assert_eq!(attr_f64s(&f, "g_max"), vec![21.0]);
        for a in [
            "seed",
            "configuration",
            "gaia_release",
            "dust_model",
            "frame_rotation",
        ] {
            assert!(f.attr(a).is_ok(), "root attribute {a} missing");
        }
        positions.push(f.dataset("position").unwrap().read_raw::<f64>().unwrap());
    }
    // Two Suns 180° apart see different stars of the same catalogue.
    assert_ne!(positions[0], positions[1]);
    let a: std::collections::BTreeSet<u64> =
        positions[0].chunks(3).map(|p| p[0].to_bits()).collect();
    let common_rows = positions[1]
        .chunks(3)
        .filter(|p| a.contains(&p[0].to_bits()))
        .count();
    assert!(
        common_rows < positions[1].len() / 3,
        "observer 1 sees the same stars as observer 0"
    );
}

#[test]
fn the_same_seed_gives_the_same_survey_files_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (a, da) = run(dir.path(), "a", TWO_SUNS, &[]);
    let (b, db) = run(dir.path(), "b", TWO_SUNS, &[("RAYON_NUM_THREADS", "1")]);
    assert!(
        a.status.success() && b.status.success(),
        "{}",
        text(&b.stderr)
    );
    for name in ["catalog.hdf5", "survey_obs0.hdf5", "survey_obs1.hdf5"] {
        let (x, y) = (
            std::fs::read(da.join(name)).unwrap(),
            std::fs::read(db.join(name)).unwrap(),
        );
        assert!(x == y, "{name} differs between runs of one seed");
    }
}

#[test]
fn a_bad_survey_value_fails_with_a_clear_message_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    for (name, toml, needle) in [
        (
            "release",
            "[survey]\nenabled = true\nrelease = \"dr9\"\n",
            "dr9",
        ),
        (
            "ring",
            "[survey]\nenabled = true\nring = 0\n",
            "survey.ring",
        ),
        (
            "dust",
            "[survey]\nenabled = true\ndust = \"constant\"\na0 = -2.0\n",
            "survey.a0",
        ),
        (
            "iso",
            "[survey]\nenabled = true\nisochrones = \"/no/such/folder\"\n",
            "/no/such/folder",
        ),
    ] {
        let (out, run_dir) = run(dir.path(), name, toml, &[]);
        assert!(!out.status.success(), "{name}: a bad value ran");
        let err = text(&out.stderr);
        assert!(
            err.contains(needle),
            "{name}: message lacks {needle:?}: {err}"
        );
        assert!(
            !run_dir.exists() || std::fs::read_dir(&run_dir).unwrap().next().is_none(),
            "{name}: output left behind"
        );
    }
}

#[test]
fn the_flow_method_writes_the_survey_while_merging_and_a_second_merge_gives_the_same_bytes() {
    // A deliberately tiny flow run (seconds): the merge path, not the flows' accuracy.
    let toml = "seed = 3\nmethod = \"flow\"\n[clusters]\nn = 2\n\
        [flow]\nwidth = 8\ndepth = 1\nrk4_steps = 2\nrtol = 1e-2\natol = 1e-2\n\
        [training]\nepochs = 1\nmax_particles = 1000\nbatch_size = 500\npatience = 1\nmin_steps = 0\n\
        [stars]\nfraction = 0.0002\n[survey]\nenabled = true\n";
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("flow.toml");
    std::fs::write(&cfg, toml).unwrap();
    let run_dir = dir.path().join("flow");
    let out = common::upsample(&[
        "--snapshot",
        "data/snap_099.hdf5",
        "--out",
        run_dir.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "flow run failed: {}",
        text(&out.stderr)
    );
    let report = read_report(&run_dir);
    let s = &report["survey"][0];
    let f = hdf5::File::open(run_dir.join("survey_obs0.hdf5")).unwrap();
    assert_eq!(
        f.dataset("obs_g").unwrap().shape()[0] as u64,
        s["selected"].as_u64().unwrap()
    );
    assert_eq!(s["drawn"], report["stars"]["stars_written"]);
    drop(f);
    let first = std::fs::read(run_dir.join("survey_obs0.hdf5")).unwrap();
    let merged = common::upsample(&["merge", run_dir.to_str().unwrap()]);
    assert!(
        merged.status.success(),
        "merge failed: {}",
        text(&merged.stderr)
    );
    assert!(text(&merged.stdout).contains("survey observer 0"));
    assert!(first == std::fs::read(run_dir.join("survey_obs0.hdf5")).unwrap());
}

/// A snapshot (GIZMO/FIRE, a = 1) with two compact groups of star particles on the x axis, at
/// x = -7 kpc (between the Sun at x = -8.12 and the slab) and x = -2 kpc (behind it), and a
/// slab of gas 2 kpc thick (-6 < x < -4, |y|, |z| < 4 kpc): a lattice of 0.2 kpc with
/// smoothing length 0.4 kpc, whose top-hats (half-width h/2 = one spacing) sum to a uniform
/// density. Returns the snapshot path and the slab's neutral hydrogen column along x (cm⁻²).
fn slab_snapshot(dir: &Path, gas: bool) -> (std::path::PathBuf, f64) {
    use snapio::{GasParticles, Header, Layout, StarParticles};
    let mut stars = StarParticles::default();
    let mut k = 0u64;
    for x0 in [-7.0, -2.0] {
        for i in 0..6 {
            for j in 0..6 {
                for l in 0..6 {
                    let f = |a: usize| -0.25 + 0.1 * a as f64;
                    stars.position.push([x0 + f(i), f(j), f(l)]);
                    stars.velocity.push([f(j) * 10.0, f(l) * 10.0, f(i) * 10.0]);
                    stars.mass.push(2.0e3);
                    stars.initial_mass.push(2.0e3);
                    k += 1;
                    stars.id.push(k);
                    stars.age.push(1.0 + 0.01 * (k % 7) as f64);
                    stars.metallicity.push(0.015);
                }
            }
        }
    }
    let (spacing, m, xh, fn_) = (0.2, 2.0e5, 0.76, 0.5);
    let mut g = GasParticles::default();
    for i in 0..10 {
        for j in 0..40 {
            for l in 0..40 {
                let c = |a: usize, lo: f64| lo + (a as f64 + 0.5) * spacing;
                g.position.push([c(i, -6.0), c(j, -4.0), c(l, -4.0)]);
                g.mass.push(m);
                g.hydrogen_fraction.push(xh);
                g.neutral_fraction.push(fn_);
                g.metallicity.push(0.01);
                g.smoothing_length.push(2.0 * spacing);
            }
        }
    }
    let path = dir.join("slab.hdf5");
    let header = Header::cosmological_at(1.0);
    let files = snapio::write_snapshot(&path, Layout::GizmoFire, &header, &stars, None, 1).unwrap();
    if gas {
        snapio::write_gas(&files, Layout::GizmoFire, &header, &g).unwrap();
    }
    // Atoms per kpc² through the slab along x: 10 particles per spacing² of y-z area.
    let atoms = m * xh * fn_ * survey::gas_column::MSUN_G / survey::gas_column::PROTON_MASS_G;
    let per_kpc2 = 10.0 * atoms / (spacing * spacing);
    let kpc_cm = survey::gas_column::KPC_CM;
    (path, per_kpc2 / (kpc_cm * kpc_cm))
}

/// Runs the kernel method on `snapshot` with `toml` into `dir/name`.
fn run_on(dir: &Path, snapshot: &Path, name: &str, toml: &str) -> (Output, std::path::PathBuf) {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, toml).unwrap();
    let out_dir = dir.join(name);
    let out = common::upsample(&[
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--method",
        "kernel",
    ]);
    (out, out_dir)
}

const GAS_DUST: &str = "seed = 5\n[frame]\nenabled = false\n[stars]\nfraction = 0.02\n\
    [survey]\nenabled = true\ndust = \"gas\"\ngas_grid = 128\ngas_box_kpc = 20.0\ng_max = 35.0\n";

#[test]
fn dust_from_gas_gives_the_analytic_column_behind_a_slab_and_none_in_front() {
    let dir = tempfile::tempdir().unwrap();
    let (snap, column_x) = slab_snapshot(dir.path(), true);
    let (out, run_dir) = run_on(dir.path(), &snap, "gas", GAS_DUST);
    assert!(out.status.success(), "run failed: {}", text(&out.stderr));
    let f = hdf5::File::open(run_dir.join("survey_obs0.hdf5")).unwrap();
    let (pos, a0, a_g) = (
        f.dataset("position").unwrap().read_raw::<f64>().unwrap(),
        f64s(&f, "a0"),
        f64s(&f, "a_g"),
    );
    let sun = attr_f64s(&f, "observer_position_kpc");
    let av_of_column = column_x / 2.21e21;
    assert!((0.5..2.0).contains(&av_of_column), "{av_of_column}");
    let (mut front, mut behind, mut worst) = (0, 0, 0.0f64);
    for (i, &a) in a0.iter().enumerate() {
        let x = &pos[3 * i..3 * i + 3];
        if x[0] < -6.2 {
            // Between the Sun and the slab: no gas on the way, A0 and A_G exactly 0.
            assert_eq!((a, a_g[i]), (0.0, 0.0), "star at {x:?}");
            front += 1;
        } else if x[0] > -3.8 {
            // Behind: the column along x divided by cos(angle to the x axis).
            let d: Vec<f64> = (0..3).map(|k| x[k] - sun[k]).collect();
            let cos = d[0] / (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
            let want = av_of_column / cos;
            worst = worst.max((a / want - 1.0).abs());
            assert!(a_g[i] > 0.5 * a && a_g[i] < a, "A_G {} for A0 {a}", a_g[i]);
            behind += 1;
        }
    }
    assert!(front > 50 && behind > 50, "front {front}, behind {behind}");
    eprintln!("A0 behind the slab: worst relative error {worst:.2e} over {behind} stars; {front} in front at 0");
    assert!(
        worst < 0.02,
        "worst relative error of A0 behind the slab: {worst}"
    );
    // The root attributes say which dust model ran and with which constants.
    let model: hdf5::types::VarLenUnicode = f.attr("dust_model").unwrap().read_scalar().unwrap();
    assert!(model.as_str().starts_with("gas:"), "{}", model.as_str());
    assert_eq!(attr_f64s(&f, "dust_nh_per_av"), vec![2.21e21]);
    assert_eq!(attr_f64s(&f, "dust_gas_box_kpc"), vec![20.0]);
    let n_gas: i64 = f.attr("dust_gas_particles").unwrap().read_scalar().unwrap();
    assert_eq!(n_gas, 16_000);
}

#[test]
fn dust_from_gas_fails_early_without_gas_or_with_a_bad_gas_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let (no_gas, _) = slab_snapshot(dir.path(), false);
    let (out, run_dir) = run_on(dir.path(), &no_gas, "nogas", GAS_DUST);
    assert!(!out.status.success(), "a snapshot without gas ran");
    let err = text(&out.stderr);
    assert!(
        err.contains("survey.dust = \"gas\"") && err.contains("no gas"),
        "{err}"
    );
    assert!(!run_dir.exists(), "output left behind");

    let bad_dir = dir.path().join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let (bad, _) = slab_snapshot(&bad_dir, true);
    {
        let f = hdf5::File::open_rw(&bad).unwrap();
        let g = f.group("PartType0").unwrap();
        g.unlink("NeutralHydrogenAbundance").unwrap();
        g.new_dataset_builder()
            .with_data(&[0.5f32; 10])
            .create("NeutralHydrogenAbundance")
            .unwrap();
    }
    let (out, run_dir) = run_on(dir.path(), &bad, "badgas", GAS_DUST);
    assert!(!out.status.success(), "a bad gas dataset ran");
    let err = text(&out.stderr);
    assert!(
        err.contains("PartType0/NeutralHydrogenAbundance") && err.contains("slab.hdf5"),
        "{err}"
    );
    assert!(!run_dir.exists(), "output left behind");
}
