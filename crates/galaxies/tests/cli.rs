//! The `galaxies` command: one call writes snapshot, truth, labels and model; bad input fails
//! with a message naming the option.

use std::process::Command;

fn galaxies(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_galaxies"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn one_command_writes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stream");
    let o = galaxies(&[
        "--model",
        "stream",
        "--n",
        "3000",
        "--n-truth",
        "2000",
        "--seed",
        "4",
        "--layout",
        "gizmo",
        "--mass-gamma",
        "0.5",
        "--mass-scale",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "snapshot.hdf5",
        "truth.hdf5",
        "labels.hdf5",
        "truth_labels.hdf5",
        "model.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let snap = snapio::Snapshot::open(out.join("truth.hdf5")).unwrap();
    assert_eq!(snap.layout(), snapio::Layout::GizmoFire);
    assert_eq!(snap.header().num_part_total[4], 2000);
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["options"]["mass_weights"]["gamma"], 0.5);
    assert_eq!(model["labels"][2], "satellite");
}

#[test]
fn bad_options_fail_naming_the_option() {
    let o = galaxies(&["--model", "bar", "--out", "/tmp/x"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--model bar: expected spheroid, disc or stream"),
        "{err}"
    );
    let o = galaxies(&["--model", "disc"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--out is required"));
    let o = galaxies(&["--model", "disc", "--out", "/tmp/x", "--mass-gamma", "1"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("go together"));
}
