//! `upsample accel` end to end: a models/ folder of exact-Gaussian flows (harmonic potential,
//! known acceleration) written to disk, the binary run on CSV, HDF5 and grid inputs, its
//! failures; and the acceptance check on the shipped sample's trained flows (ignored unless
//! trained models are given, see `sample_accelerations_match_the_truth`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use upsample::dynamics::harmonic;
use upsample::models::{
    save_cluster, ClusterRecord, ModelsManifest, TrainingRecord, MODELS_FORMAT,
};

const S: f64 = 2.0; // kpc
const SIGMA: f64 = 50.0; // km/s

fn device_name() -> String {
    std::env::var("CNF_TEST_DEVICE").unwrap_or_else(|_| "flex".into())
}

/// Writes `run/models/` with one cluster of two exact-Gaussian members.
fn write_models(run: &Path) -> PathBuf {
    let dev = cnf::parse_device(&device_name()).unwrap();
    let models = run.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let members = vec![
        harmonic::member(S, SIGMA, &dev).unwrap(),
        harmonic::member(S, SIGMA, &dev).unwrap(),
    ];
    let record = ClusterRecord {
        index: 0,
        label: "harmonic".into(),
        members: 100,
        ghosts: 0,
        weight_msun: 1e9,
        initial_mass_msun: 1e9,
        core_lo: None,
        core_hi: None,
    };
    save_cluster(
        &models.join(record.dir_name()),
        &members,
        &TrainingRecord {
            index: 0,
            position: vec![],
            velocity: vec![],
            seconds: 0.0,
        },
    )
    .unwrap();
    ModelsManifest {
        format: MODELS_FORMAT,
        version: upsample::VERSION.into(),
        method: "fof".into(),
        ensemble: 2,
        clusters: vec![record],
    }
    .write(&models)
    .unwrap();
    models
}

fn accel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_upsample"))
        // HDF5 locks off: a child spawned by another test thread while this one writes an
        // input inherits the file's lock, and the next reader fails with errno 11
        // (tests/common/mod.rs, NO_HDF5_LOCKS).
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .arg("accel")
        .args(args)
        .args(["--device", &device_name()])
        .env("RUST_LOG", "info")
        .output()
        .expect("the upsample binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn accel_on_gaussian_flows_matches_the_harmonic_truth() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    write_models(&run);
    // Grid input, CSV output, --model given the run folder.
    let out = dir.path().join("grid.csv");
    let o = accel(&[
        "--model",
        run.to_str().unwrap(),
        "--grid",
        "x=-2:2:3,y=0.5,z=-1:1:2",
        "--out",
        out.to_str().unwrap(),
        "--k",
        "24",
        "--bootstrap",
        "8",
    ]);
    assert!(o.status.success(), "accel failed: {}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("accelerations/s"),
        "{}",
        text(&o.stderr)
    );
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("x,y,z,ax,ay,az,"));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(&rows[1][0..3], &[-2.0, 0.5, 1.0]); // z fastest
    for r in &rows {
        let want = harmonic::acceleration(S, SIGMA, &[r[0], r[1], r[2]]);
        for j in 0..3 {
            assert!(
                (r[3 + j] - want[j]).abs() < 1e-3 * 625.0,
                "{r:?} vs {want:?}"
            );
        }
        assert_eq!(r[9], 24.0); // samples
        assert_eq!(r[12], 0.0); // flag
    }
    // HDF5 positions in, HDF5 out, --model given the models/ folder.
    let q = dir.path().join("q.hdf5");
    let x = vec![[1.0, 0.0, 0.0], [0.0, -3.0, 0.5]];
    snapio::write_table(
        &q,
        &[snapio::TableColumn {
            name: "position".into(),
            units: "kpc".into(),
            description: String::new(),
            values: snapio::TableValues::Float3(x.clone()),
        }],
        &[],
    )
    .unwrap();
    let out = dir.path().join("a.h5");
    let o = accel(&[
        "--model",
        run.join("models").to_str().unwrap(),
        "--positions",
        q.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--k",
        "16",
    ]);
    assert!(o.status.success(), "accel failed: {}", text(&o.stderr));
    let cols = snapio::read_table(&out).unwrap();
    let get = |n: &str| cols.iter().find(|c| c.name == n).unwrap();
    assert_eq!(get("acceleration").units, "(km/s)^2/kpc");
    assert_eq!(
        get("position").values,
        snapio::TableValues::Float3(x.clone())
    );
    let snapio::TableValues::Float3(a) = &get("acceleration").values else {
        panic!("acceleration is not (N, 3)")
    };
    for (p, a) in x.iter().zip(a) {
        let want = harmonic::acceleration(S, SIGMA, p);
        for j in 0..3 {
            assert!((a[j] - want[j]).abs() < 1e-3 * 625.0, "{a:?} vs {want:?}");
        }
    }
}

#[test]
fn accel_failures_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let models = write_models(&run);
    let m = models.to_str().unwrap();
    let bad_csv = dir.path().join("bad.csv");
    std::fs::write(&bad_csv, "a,b\n1,2\n").unwrap();
    let h5_wrong = dir.path().join("wrong.h5");
    snapio::write_table(
        &h5_wrong,
        &[snapio::TableColumn {
            name: "pos".into(),
            units: "kpc".into(),
            description: String::new(),
            values: snapio::TableValues::Float(vec![1.0]),
        }],
        &[],
    )
    .unwrap();
    let out = dir.path().join("o.csv");
    let o_s = out.to_str().unwrap();
    let missing = dir.path().join("nope");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec![
                "--model",
                missing.to_str().unwrap(),
                "--grid",
                "x=0,y=0,z=1",
                "--out",
                o_s,
            ],
            vec!["nope", "model folder not found"],
        ),
        (
            vec![
                "--model",
                m,
                "--positions",
                bad_csv.to_str().unwrap(),
                "--out",
                o_s,
            ],
            vec!["bad.csv", "x,y,z"],
        ),
        (
            vec![
                "--model",
                m,
                "--positions",
                h5_wrong.to_str().unwrap(),
                "--out",
                o_s,
            ],
            vec!["wrong.h5", "`position`"],
        ),
        (
            vec!["--model", m, "--grid", "x=0,y=0,z=1", "--out", "o.txt"],
            vec!["o.txt", ".csv, .h5 or .hdf5"],
        ),
        (
            vec!["--model", m, "--grid", "x=0,y=0", "--out", o_s],
            vec!["--grid", "every axis"],
        ),
        (
            vec![
                "--model",
                m,
                "--grid",
                "x=0,y=0,z=1",
                "--out",
                o_s,
                "--k",
                "2",
            ],
            vec!["k (velocity samples per point) must be >= 3"],
        ),
        (
            vec![
                "--model",
                dir.path().to_str().unwrap(),
                "--grid",
                "x=0,y=0,z=1",
                "--out",
                o_s,
            ],
            vec!["manifest.json"],
        ),
    ];
    for (args, needles) in cases {
        let o = accel(&args);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        for n in needles {
            assert!(err.contains(n), "{args:?}: stderr lacks {n:?}: {err}");
        }
        assert!(!out.exists(), "{args:?} left an output");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_upsample"))
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .args(["accel", "--help"])
        .output()
        .unwrap();
    let h = text(&help.stdout);
    for n in ["(km/s)^2/kpc", "kpc", "Msun/kpc^3", "x,y,z"] {
        assert!(h.contains(n), "help lacks {n}: {h}");
    }
}
