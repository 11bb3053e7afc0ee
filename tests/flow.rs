//! End-to-end tests of the flow method on the shipped sample (`data/snap_099.hdf5`, a rotating
//! Plummer sphere whose analytic truth is known): accuracy against the truth and against the
//! kernel baseline, seamless cells, resume and shards.
//!
//! The backend follows CNF_TEST_DEVICE (flex by default), so CI runs these on both CPU backends.

mod common;

use common::{ks_distance, nn_two_sample, read_report, text, upsample, Plummer};
use snapio::read_catalog;
use std::path::Path;
use upsample::models::ModelSet;

fn device() -> String {
    std::env::var("CNF_TEST_DEVICE").unwrap_or_else(|_| "flex".into())
}

/// Runs the main job, asserting success; returns the run folder.
fn run(out: &Path, extra: &[&str]) -> std::process::Output {
    let dev = device();
    let mut args = vec![
        "--snapshot",
        "data/snap_099.hdf5",
        "--out",
        out.to_str().unwrap(),
        "--device",
        dev.as_str(),
    ];
    args.extend_from_slice(extra);
    upsample(&args)
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "run failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A small, fast configuration for the bookkeeping tests (not for accuracy).
const TINY: &str = r#"
seed = 3
method = "flow"
[clusters]
method = "cells"
n = 3
margin = 0.3
[flow]
width = 8
depth = 1
rk4_steps = 2
rtol = 1e-3
atol = 1e-3
[training]
epochs = 1
batch_size = 1024
max_particles = 4000
[stars]
fraction = 0.00002
"#;

#[test]
fn resumed_and_sharded_runs_give_the_same_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let c = cfg.to_str().unwrap();

    // One uninterrupted run.
    let whole = dir.path().join("whole");
    ok(&run(&whole, &["--config", c]));
    let reference = read_catalog(whole.join("catalog.hdf5")).unwrap();
    assert!(reference.len() > 1000, "{} stars", reference.len());
    let report = read_report(&whole);
    assert_eq!(report["clusters"].as_array().unwrap().len(), 3);
    for cl in report["clusters"].as_array().unwrap() {
        assert!(cl["training"]["position"][0]["held_out_nll"]
            .as_f64()
            .unwrap()
            .is_finite());
        assert!(cl["training"]["velocity"][0]["held_out_nll"]
            .as_f64()
            .unwrap()
            .is_finite());
        assert!(cl["stars"]["stars_written"].as_u64().unwrap() > 0);
    }

    // Shards into one folder, then merge.
    let sharded = dir.path().join("sharded");
    for s in ["1/2", "0/2"] {
        let out = run(&sharded, &["--config", c, "--shard", s]);
        ok(&out);
        assert!(!sharded.join("catalog.hdf5").exists() || s == "0/2");
    }
    let early = upsample(&["merge", sharded.to_str().unwrap()]);
    ok(&early);
    assert_eq!(
        read_catalog(sharded.join("catalog.hdf5")).unwrap(),
        reference
    );

    // A merge before every shard has finished names what is missing.
    let partial = dir.path().join("partial");
    ok(&run(&partial, &["--config", c, "--shard", "0/3"]));
    let out = upsample(&["merge", partial.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("clusters 1, 2"), "{err}");
    assert!(!partial.join("catalog.hdf5").exists());

    // Resume after a kill: the shard did cluster 0; cluster 1 was trained but killed while
    // drawing stars (its completion record is missing); a plain run finishes the job.
    ok(&run(&partial, &["--config", c, "--shard", "1/3"]));
    std::fs::remove_file(partial.join("parts/cluster_0001.json")).unwrap();
    ok(&run(&partial, &["--config", c]));
    assert_eq!(
        read_catalog(partial.join("catalog.hdf5")).unwrap(),
        reference
    );

    // Resuming with other arguments is refused, naming run.json.
    let out = run(&partial, &["--config", c, "--seed", "4"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("run.json"),
        "{}",
        text(&out.stderr)
    );
}
