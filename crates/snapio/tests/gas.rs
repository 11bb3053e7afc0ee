//! The gas reader (PartType0): every layout in physical units at a = 1 and 0.5, multi-file,
//! hydrogen and size conventions, the frame, and clear errors for missing or bad datasets.

mod common;

use common::{close, sample_stars, Rng};
use snapio::{
    write_gas, write_snapshot, GalaxyFrame, GasParticles, Header, InvalidPolicy, Layout,
    ReadOptions, SnapError, Snapshot,
};
use std::path::{Path, PathBuf};

const LAYOUTS: [Layout; 3] = [Layout::GizmoFire, Layout::Gadget4, Layout::ArepoTng];

/// `n` gas particles around `center` (kpc) with varied fractions, metals and sizes.
fn sample_gas(n: usize, seed: u64, center: [f64; 3]) -> GasParticles {
    let mut r = Rng(seed);
    let mut g = GasParticles::default();
    for _ in 0..n {
        g.position.push([
            center[0] + r.range(-10.0, 10.0),
            center[1] + r.range(-10.0, 10.0),
            center[2] + r.range(-10.0, 10.0),
        ]);
        g.mass.push(r.range(1e4, 1e5));
        let z = r.range(1e-4, 0.03);
        g.metallicity.push(z);
        g.hydrogen_fraction.push(r.range(0.70, 0.76));
        g.neutral_fraction.push(r.range(0.0, 1.0));
        g.smoothing_length.push(r.range(0.01, 1.0));
    }
    g
}

/// A snapshot of `layout` at scale factor `a` with stars and `gas`, in `n_files` files.
fn write(dir: &Path, layout: Layout, a: f64, gas: &GasParticles, n_files: usize) -> PathBuf {
    let path = dir.join("snap_099.hdf5");
    let header = Header::cosmological_at(a);
    let stars = sample_stars(500, 3, [5000.0, 3000.0, 2000.0], 5.0);
    let files = write_snapshot(&path, layout, &header, &stars, None, n_files).unwrap();
    write_gas(&files, layout, &header, gas).unwrap();
    if n_files > 1 {
        dir.to_path_buf()
    } else {
        path
    }
}

#[test]
fn every_layout_reads_gas_in_physical_units() {
    for layout in LAYOUTS {
        for (a, n_files) in [(1.0, 1), (0.5, 3)] {
            let dir = tempfile::tempdir().unwrap();
            let gas = sample_gas(2000, 7, [5000.0, 3000.0, 2000.0]);
            let snap = Snapshot::open(write(dir.path(), layout, a, &gas, n_files)).unwrap();
            assert_eq!(snap.gas_count(), 2000);
            assert_eq!(snap.check_gas().unwrap(), 2000);
            let (got, report) = snap.read_gas(&ReadOptions::default()).unwrap();
            assert_eq!(
                (got.len(), report.kept, report.rows_read),
                (2000, 2000, 2000)
            );
            assert_eq!(report.files.len(), n_files, "{layout}");
            let f32_tol = 2e-7;
            for i in 0..gas.len() {
                for k in 0..3 {
                    assert!(close(got.position[i][k], gas.position[i][k], 1e-12, 0.0));
                }
                assert!(
                    close(got.mass[i], gas.mass[i], f32_tol, 0.0),
                    "{layout} mass"
                );
                assert!(close(
                    got.neutral_fraction[i],
                    gas.neutral_fraction[i],
                    0.0,
                    1e-7
                ));
                // Size: SPH smoothing length, or AREPO's (m / rho)^(1/3) from Density.
                assert!(
                    close(got.smoothing_length[i], gas.smoothing_length[i], 1e-6, 0.0),
                    "{layout}: size {} vs {}",
                    got.smoothing_length[i],
                    gas.smoothing_length[i]
                );
                assert!(close(got.metallicity[i], gas.metallicity[i], 0.0, 1e-8));
                // X_H: FIRE 1 - Z - Y, TNG GFM_Metals[:,0]; GADGET-4 stores none: 0.76.
                let want_x = match layout {
                    Layout::Gadget4 => 0.76,
                    _ => gas.hydrogen_fraction[i],
                };
                assert!(
                    close(got.hydrogen_fraction[i], want_x, 0.0, 1e-7),
                    "{layout}: X_H {} vs {want_x}",
                    got.hydrogen_fraction[i]
                );
            }
            let notes = report.notes.join("; ");
            let want = match layout {
                Layout::GizmoFire => "1 - PartType0/Metallicity[:,0] - [:,1]",
                Layout::ArepoTng => "GFM_Metals[:,0]",
                Layout::Gadget4 => "X_H = 0.76",
            };
            assert!(notes.contains(want), "{layout}: {notes}");
            let size = if layout == Layout::ArepoTng {
                "(Masses / Density)^(1/3)"
            } else {
                "SmoothingLength"
            };
            assert!(notes.contains(size), "{layout}: {notes}");
        }
    }
}

#[test]
fn the_gas_moves_into_the_stars_frame_and_honours_the_region() {
    let dir = tempfile::tempdir().unwrap();
    let gas = sample_gas(500, 9, [100.0, 200.0, 300.0]);
    let snap = Snapshot::open(write(dir.path(), Layout::GizmoFire, 1.0, &gas, 1)).unwrap();
    let frame = GalaxyFrame {
        center: [100.0, 200.0, 300.0],
        bulk_velocity: [0.0; 3],
        rotation: [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
    };
    let (mut got, _) = snap.read_gas(&ReadOptions::default()).unwrap();
    got.to_frame(&frame);
    for i in 0..gas.len() {
        let d = [
            gas.position[i][0] - 100.0,
            gas.position[i][1] - 200.0,
            gas.position[i][2] - 300.0,
        ];
        let want = [d[1], d[2], d[0]];
        for (g, w) in got.position[i].iter().zip(want) {
            assert!((g - w).abs() < 1e-9);
        }
    }
    let sphere = snapio::Sphere {
        center: [100.0, 200.0, 300.0],
        radius: 5.0,
    };
    let inside = gas.position.iter().filter(|&&x| sphere.contains(x)).count();
    assert!(inside > 10 && inside < 500, "{inside}");
    let opts = ReadOptions {
        region: Some(sphere),
        chunk_len: 37,
        ..ReadOptions::default()
    };
    let (sel, report) = snap.read_gas(&opts).unwrap();
    assert_eq!(sel.len(), inside);
    assert_eq!(report.rows_read, 500);
}

#[test]
fn no_gas_and_bad_gas_datasets_fail_naming_file_and_dataset() {
    // No gas at all.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap_099.hdf5");
    let header = Header::cosmological_at(1.0);
    let stars = sample_stars(100, 3, [5000.0, 3000.0, 2000.0], 5.0);
    write_snapshot(&path, Layout::GizmoFire, &header, &stars, None, 1).unwrap();
    let snap = Snapshot::open(&path).unwrap();
    let e = snap.check_gas().unwrap_err().to_string();
    assert!(e.contains("no gas") && e.contains("PartType0"), "{e}");
    let e = snap
        .read_gas(&ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("snap_099.hdf5") && e.contains("no gas"), "{e}");

    // Masses of the wrong length, then a missing Coordinates, then a neutral fraction of 3.
    let gas = sample_gas(50, 4, [5000.0, 3000.0, 2000.0]);
    type Edit = fn(&hdf5::Group);
    let cases: [(&str, Edit, &str); 4] = [
        (
            "bad shape",
            |g| {
                g.unlink("Masses").unwrap();
                g.new_dataset_builder()
                    .with_data(&[1.0f32; 7])
                    .create("Masses")
                    .unwrap();
            },
            "PartType0/Masses",
        ),
        (
            "missing",
            |g| g.unlink("Coordinates").unwrap(),
            "missing dataset `PartType0/Coordinates`",
        ),
        (
            "integer type",
            |g| {
                g.unlink("NeutralHydrogenAbundance").unwrap();
                g.new_dataset_builder()
                    .with_data(&[1i32; 50])
                    .create("NeutralHydrogenAbundance")
                    .unwrap();
            },
            "floating point",
        ),
        (
            "out of range",
            |g| {
                let mut v = vec![0.5f32; 50];
                v[17] = 3.0;
                g.unlink("NeutralHydrogenAbundance").unwrap();
                g.new_dataset_builder()
                    .with_data(&v)
                    .create("NeutralHydrogenAbundance")
                    .unwrap();
            },
            "row 17",
        ),
    ];
    for (what, edit, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), Layout::GizmoFire, 1.0, &gas, 1);
        {
            let f = hdf5::File::open_rw(&p).unwrap();
            edit(&f.group("PartType0").unwrap());
        }
        let snap = Snapshot::open(&p).unwrap();
        let e = snap
            .read_gas(&ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(want) && e.contains("snap_099.hdf5"),
            "{what}: {e}"
        );
        if what == "out of range" {
            // Only values are wrong: the structural check passes, a drop read keeps the rest.
            assert_eq!(snap.check_gas().unwrap(), 50);
            let opts = ReadOptions {
                on_invalid: InvalidPolicy::Drop,
                ..ReadOptions::default()
            };
            let (g, r) = snap.read_gas(&opts).unwrap();
            assert_eq!(g.len(), 49);
            assert_eq!(r.invalid_dropped["neutral_fraction_out_of_range"], 1);
        } else {
            assert!(matches!(
                snap.check_gas(),
                Err(SnapError::BadShape { .. }
                    | SnapError::MissingDataset { .. }
                    | SnapError::BadType { .. })
            ));
        }
    }
}

#[test]
fn a_snapshot_without_abundances_or_sizes_states_its_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut gas = sample_gas(40, 5, [5000.0, 3000.0, 2000.0]);
    gas.smoothing_length.clear();
    gas.metallicity.clear();
    let p = write(dir.path(), Layout::Gadget4, 1.0, &gas, 1);
    {
        let f = hdf5::File::open_rw(&p).unwrap();
        f.group("PartType0")
            .unwrap()
            .unlink("NeutralHydrogenAbundance")
            .unwrap();
    }
    let (got, report) = Snapshot::open(&p)
        .unwrap()
        .read_gas(&ReadOptions::default())
        .unwrap();
    assert!(got.smoothing_length.is_empty() && got.metallicity.is_empty());
    assert!(got.neutral_fraction.iter().all(|&f| f == 1.0));
    assert!(got.hydrogen_fraction.iter().all(|&x| x == 0.76));
    let notes = report.notes.join("; ");
    for want in [
        "all hydrogen taken as neutral",
        "no gas metallicity",
        "no gas size",
    ] {
        assert!(notes.contains(want), "{want}: {notes}");
    }
}

/// Not a test: writes `$GAS_FIXTURE_OUT` = the sample `data/snap_099.hdf5` plus an exponential
/// gas disc of `$GAS_FIXTURE_N` particles (default 1e6; 1e10 Msun in all, scale length 3 kpc,
/// height 0.1 kpc, X_H 0.76, neutral fraction 0.5, Z 0.01, h 0.1 kpc) in the stars' galaxy
/// frame, for timing `dust = "gas"` through the pipeline (docs/PERFORMANCE.md):
/// `GAS_FIXTURE_OUT=/tmp/snap_gas.hdf5 cargo test -p snapio --test gas -- --ignored`.
#[test]
#[ignore = "fixture writer for the gas benchmark"]
fn write_the_sample_with_a_gas_disc() {
    let Ok(out) = std::env::var("GAS_FIXTURE_OUT") else {
        return;
    };
    let n: usize = std::env::var("GAS_FIXTURE_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/snap_099.hdf5");
    let snap = Snapshot::open(&sample).unwrap();
    let (stars, _) = snap.read_stars(&ReadOptions::default()).unwrap();
    let frame = GalaxyFrame::find(&stars, &snapio::FrameOptions::default()).unwrap();
    let out = PathBuf::from(out);
    std::fs::copy(&sample, &out).unwrap();
    let mut r = Rng(17);
    let mut g = GasParticles::default();
    for _ in 0..n {
        let rad = -3.0 * (r.uniform().max(1e-300) * r.uniform().max(1e-300)).ln();
        let phi = std::f64::consts::TAU * r.uniform();
        let z = 0.1 * (r.uniform().max(1e-300) / r.uniform().max(1e-300)).ln();
        g.position
            .push(frame.point_from_frame([rad * phi.cos(), rad * phi.sin(), z]));
        g.mass.push(1e10 / n as f64);
        g.hydrogen_fraction.push(0.76);
        g.neutral_fraction.push(0.5);
        g.metallicity.push(0.01);
        g.smoothing_length.push(0.1);
    }
    write_gas(std::slice::from_ref(&out), snap.layout(), snap.header(), &g).unwrap();
    let back = Snapshot::open(&out).unwrap();
    assert_eq!(back.check_gas().unwrap(), n as u64);
    eprintln!(
        "wrote {} with {n} gas particles ({})",
        out.display(),
        snap.layout()
    );
}
