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
        [training]\nepochs = 1\nmax_particles = 1000\nbatch_size = 500\npatience = 1\n\
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
