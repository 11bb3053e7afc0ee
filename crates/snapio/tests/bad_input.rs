//! Every bad input is an error naming the file, the dataset/attribute and what was expected.

mod common;

use std::path::{Path, PathBuf};

use common::sample_stars;
use snapio::{write_snapshot, Header, Layout, ReadOptions, SnapError, Snapshot, StarParticles};

fn good(dir: &Path, layout: Layout) -> PathBuf {
    let path = dir.join("snap_010.hdf5");
    let stars = sample_stars(200, 3, [0.0; 3], 4.0);
    write_snapshot(
        &path,
        layout,
        &Header::cosmological_at(0.5),
        &stars,
        None,
        1,
    )
    .unwrap();
    path
}

fn read(path: &Path) -> Result<(StarParticles, snapio::ReadReport), SnapError> {
    Snapshot::open(path)?.read_stars(&ReadOptions::default())
}

/// The message names the file and every fragment given.
fn names(e: &SnapError, path: &Path, fragments: &[&str]) {
    let msg = e.to_string();
    let file = path.file_name().unwrap().to_str().unwrap();
    assert!(msg.contains(file), "message does not name the file: {msg}");
    for f in fragments {
        assert!(msg.contains(f), "message lacks `{f}`: {msg}");
    }
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nothing_here.hdf5");
    let e = Snapshot::open(&p).unwrap_err();
    assert!(matches!(e, SnapError::NotFound { .. }), "{e:?}");
    names(&e, &p, &["not found"]);
}

#[test]
fn not_hdf5() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("snap.hdf5");
    std::fs::write(&p, "x,y,z\n1,2,3\n").unwrap();
    let e = Snapshot::open(&p).unwrap_err();
    assert!(matches!(e, SnapError::NotHdf5 { .. }), "{e:?}");
    names(&e, &p, &["not an HDF5 file"]);
}

#[test]
fn truncated_hdf5() {
    let dir = tempfile::tempdir().unwrap();
    let p = good(dir.path(), Layout::ArepoTng);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = read(&p).unwrap_err();
    names(&e, &p, &[]);
}

#[test]
fn missing_header_group_and_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.hdf5");
    hdf5::File::create(&p)
        .unwrap()
        .create_group("PartType4")
        .unwrap();
    let e = Snapshot::open(&p).unwrap_err();
    assert!(matches!(e, SnapError::MissingGroup { .. }), "{e:?}");
    names(&e, &p, &["Header"]);

    let p = good(dir.path(), Layout::GizmoFire);
    hdf5::File::open_rw(&p)
        .unwrap()
        .group("Header")
        .unwrap()
        .delete_attr("Time")
        .unwrap();
    let e = Snapshot::open(&p).unwrap_err();
    assert!(matches!(e, SnapError::MissingAttribute { .. }), "{e:?}");
    names(&e, &p, &["Header/Time", "scale factor"]);
}

#[test]
fn gadget4_without_parameters_hubble() {
    let dir = tempfile::tempdir().unwrap();
    let p = good(dir.path(), Layout::Gadget4);
    let f = hdf5::File::open_rw(&p).unwrap();
    f.group("Parameters")
        .unwrap()
        .delete_attr("HubbleParam")
        .unwrap();
    drop(f);
    // Without HubbleParam anywhere, the file still has Omega0 in Parameters → GADGET-4, and h is required.
    let e = Snapshot::open(&p).unwrap_err();
    names(&e, &p, &["HubbleParam"]);
}

#[test]
fn missing_dataset() {
    for (layout, ds) in [
        (Layout::ArepoTng, "GFM_StellarFormationTime"),
        (Layout::ArepoTng, "GFM_InitialMass"),
        (Layout::GizmoFire, "Velocities"),
        (Layout::Gadget4, "Masses"),
        (Layout::GizmoFire, "Metallicity"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = good(dir.path(), layout);
        hdf5::File::open_rw(&p)
            .unwrap()
            .group("PartType4")
            .unwrap()
            .unlink(ds)
            .unwrap();
        let e = read(&p).unwrap_err();
        if ds == "GFM_StellarFormationTime" {
            // Layout detection still finds the other GFM datasets.
            assert!(matches!(e, SnapError::MissingDataset { .. }), "{e:?}");
        }
        names(&e, &p, &[&format!("PartType4/{ds}")]);
    }
}

#[test]
fn mismatched_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let p = good(dir.path(), Layout::ArepoTng);
    {
        let g = hdf5::File::open_rw(&p).unwrap().group("PartType4").unwrap();
        g.unlink("Masses").unwrap();
        g.new_dataset_builder()
            .with_data(&vec![1e-5f32; 199])
            .create("Masses")
            .unwrap();
    }
    let e = read(&p).unwrap_err();
    assert!(matches!(e, SnapError::BadShape { .. }), "{e:?}");
    names(&e, &p, &["PartType4/Masses", "NumPart_ThisFile", "199"]);

    // Coordinates with 2 columns.
    let p = good(dir.path(), Layout::Gadget4);
    {
        let g = hdf5::File::open_rw(&p).unwrap().group("PartType4").unwrap();
        g.unlink("Coordinates").unwrap();
        let a = ndarray::Array2::<f64>::zeros((200, 2));
        g.new_dataset_builder()
            .with_data(&a)
            .create("Coordinates")
            .unwrap();
    }
    let e = read(&p).unwrap_err();
    names(&e, &p, &["PartType4/Coordinates", "(200, 3)"]);

    // NumPart_Total disagreeing with the files.
    let p = good(dir.path(), Layout::GizmoFire);
    {
        let h = hdf5::File::open_rw(&p).unwrap().group("Header").unwrap();
        h.delete_attr("NumPart_Total").unwrap();
        h.new_attr::<u32>()
            .shape(6)
            .create("NumPart_Total")
            .unwrap()
            .write_raw(&[0u32, 0, 0, 0, 300, 0])
            .unwrap();
    }
    let e = read(&p).unwrap_err();
    names(&e, &p, &["NumPart_Total", "300"]);
}

#[test]
fn wrong_element_type() {
    let dir = tempfile::tempdir().unwrap();
    let p = good(dir.path(), Layout::ArepoTng);
    {
        let g = hdf5::File::open_rw(&p).unwrap().group("PartType4").unwrap();
        g.unlink("ParticleIDs").unwrap();
        g.new_dataset_builder()
            .with_data(&vec![1.5f64; 200])
            .create("ParticleIDs")
            .unwrap();
    }
    let e = read(&p).unwrap_err();
    assert!(matches!(e, SnapError::BadType { .. }), "{e:?}");
    names(&e, &p, &["PartType4/ParticleIDs", "integer", "f64"]);
}

#[test]
fn non_finite_values() {
    for (ds, width, value) in [
        ("Coordinates", 3, f64::NAN),
        ("Velocities", 3, f64::INFINITY),
        ("Masses", 1, f64::NAN),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = good(dir.path(), Layout::ArepoTng);
        {
            let d = hdf5::File::open_rw(&p)
                .unwrap()
                .dataset(&format!("PartType4/{ds}"))
                .unwrap();
            if width == 3 {
                let mut a = d.read_2d::<f64>().unwrap();
                a[[57, 1]] = value;
                d.write(&a).unwrap();
            } else {
                let mut a = d.read_raw::<f64>().unwrap();
                a[57] = value;
                d.write_raw(&a).unwrap();
            }
        }
        let e = Snapshot::open(&p)
            .unwrap()
            .read_stars(&ReadOptions {
                chunk_len: 50,
                region: None,
                ..ReadOptions::default()
            })
            .unwrap_err();
        assert!(matches!(e, SnapError::NonFinite { row: 57, .. }), "{e:?}");
        names(&e, &p, &[&format!("PartType4/{ds}"), "row 57", "finite"]);
    }
}

#[test]
fn zero_stars_and_only_winds() {
    let dir = tempfile::tempdir().unwrap();
    for layout in [Layout::GizmoFire, Layout::Gadget4, Layout::ArepoTng] {
        let p = dir.path().join(format!("empty_{layout:?}.hdf5"));
        write_snapshot(
            &p,
            layout,
            &Header::cosmological_at(1.0),
            &StarParticles::default(),
            None,
            1,
        )
        .unwrap();
        let snap = Snapshot::open(&p).unwrap();
        assert_eq!(snap.layout(), layout);
        let e = snap.read_stars(&ReadOptions::default()).unwrap_err();
        assert!(matches!(e, SnapError::NoStars { .. }), "{e:?}");
        names(&e, &p, &["no star particles", "NumPart_Total[4] = 0"]);
    }
    let p = dir.path().join("winds.hdf5");
    let winds = sample_stars(10, 1, [0.0; 3], 1.0);
    write_snapshot(
        &p,
        Layout::ArepoTng,
        &Header::cosmological_at(1.0),
        &StarParticles::default(),
        Some(&winds),
        1,
    )
    .unwrap();
    let e = read(&p).unwrap_err();
    names(&e, &p, &["wind"]);
}

#[test]
fn unknown_layout() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mystery.hdf5");
    {
        let f = hdf5::File::create(&p).unwrap();
        let h = f.create_group("Header").unwrap();
        h.new_attr::<f64>()
            .create("Time")
            .unwrap()
            .write_scalar(&1.0)
            .unwrap();
        let g = f.create_group("PartType4").unwrap();
        g.new_dataset_builder()
            .with_data(&[1.0f32])
            .create("Masses")
            .unwrap();
    }
    let e = Snapshot::open(&p).unwrap_err();
    assert!(matches!(e, SnapError::UnknownLayout { .. }), "{e:?}");
    names(
        &e,
        &p,
        &["GFM_StellarFormationTime", "Parameters", "GIZMO_version"],
    );
}

#[test]
fn incomplete_multi_file_set() {
    let dir = tempfile::tempdir().unwrap();
    let stars = sample_stars(100, 3, [0.0; 3], 4.0);
    let files = write_snapshot(
        &dir.path().join("snap_005.hdf5"),
        Layout::ArepoTng,
        &Header::cosmological_at(0.5),
        &stars,
        None,
        3,
    )
    .unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    let e = Snapshot::open(&files[0]).unwrap_err();
    assert!(matches!(e, SnapError::FileSet { .. }), "{e:?}");
    names(&e, &files[0], &["snap_005.1.hdf5", "missing"]);
    std::fs::remove_file(&files[2]).unwrap();
    let e = Snapshot::open(&files[0]).unwrap_err();
    names(&e, &files[0], &["NumFilesPerSnapshot = 3", "1 file"]);
}
