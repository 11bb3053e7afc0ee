//! Integer fields for `field:NAME` decompositions: `Snapshot::read_star_field_i64` over
//! multi-file snapshots (winds included) and `read_side_field_i64` on side files, with errors
//! naming file, dataset and expectation.

mod common;

use std::path::{Path, PathBuf};

use common::sample_stars;
use snapio::{read_side_field_i64, write_snapshot, Header, Layout, SnapError, Snapshot};

/// The label every test writes for particle `id`: negative values included.
fn label_of(id: u64) -> i64 {
    (id % 13) as i64 - 4
}

/// Adds PartType4/`name` to every file holding stars, `label_of(ParticleID)` written as `T`.
fn add_field<T: hdf5::H5Type + Copy>(files: &[PathBuf], name: &str, cast: impl Fn(i64) -> T) {
    for f in files {
        let file = hdf5::File::open_rw(f).unwrap();
        if !file.link_exists("PartType4") {
            continue;
        }
        let g = file.group("PartType4").unwrap();
        let ids: Vec<u64> = g.dataset("ParticleIDs").unwrap().read_raw().unwrap();
        let v: Vec<T> = ids.iter().map(|&id| cast(label_of(id))).collect();
        g.new_dataset_builder().with_data(&v).create(name).unwrap();
    }
}

/// A TNG snapshot in `n_files` files with 900 stars and 40 wind particles.
fn tng(dir: &Path, n_files: usize) -> (PathBuf, Vec<PathBuf>) {
    let path = dir.join("snap_042.hdf5");
    let stars = sample_stars(900, 21, [10.0, 0.0, -5.0], 8.0);
    let mut winds = sample_stars(40, 22, [0.0; 3], 8.0);
    for (k, id) in winds.id.iter_mut().enumerate() {
        *id = 900_000 + k as u64;
    }
    let header = Header::cosmological_at(0.9);
    let files = write_snapshot(
        &path,
        Layout::ArepoTng,
        &header,
        &stars,
        Some(&winds),
        n_files,
    )
    .unwrap();
    (path, files)
}

/// Asserts the message of `e` names the file and every fragment.
fn names(e: &SnapError, file: &Path, fragments: &[&str]) {
    let msg = e.to_string();
    assert!(
        msg.contains(&file.display().to_string()),
        "error does not name the file {}: {msg}",
        file.display()
    );
    for f in fragments {
        assert!(msg.contains(f), "error does not mention `{f}`: {msg}");
    }
}

#[test]
fn multi_file_star_field_of_any_integer_type_with_winds() {
    let dir = tempfile::tempdir().unwrap();
    let (path, files) = tng(dir.path(), 3);
    assert_eq!(files.len(), 3);
    add_field(&files, "GroupI32", |v| v as i32);
    add_field(&files, "GroupI64", |v| v);
    add_field(&files, "GroupU32", |v| (v + 4) as u32);
    add_field(&files, "GroupU64", |v| (v + 4) as u64);
    add_field(&files, "GroupI16", |v| v as i16);
    let snap = Snapshot::open(&path).unwrap();
    let (ids, values) = snap.read_star_field_i64("GroupI32").unwrap();
    assert_eq!(
        ids.len(),
        940,
        "every PartType4 row of every file, winds included"
    );
    assert!(ids.iter().any(|&id| id >= 900_000), "wind IDs present");
    assert_eq!(
        values,
        ids.iter().map(|&id| label_of(id)).collect::<Vec<_>>()
    );
    // In file order: the rows of file 0 first.
    let first: Vec<u64> = hdf5::File::open(&files[0])
        .unwrap()
        .dataset("PartType4/ParticleIDs")
        .unwrap()
        .read_raw()
        .unwrap();
    assert_eq!(ids[..first.len()], first[..]);
    for (name, shift) in [
        ("GroupI64", 0),
        ("GroupU32", 4),
        ("GroupU64", 4),
        ("GroupI16", 0),
    ] {
        let (ids2, v) = snap.read_star_field_i64(name).unwrap();
        assert_eq!(ids2, ids, "{name}");
        let want: Vec<i64> = ids.iter().map(|&id| label_of(id) + shift).collect();
        assert_eq!(v, want, "{name}");
    }
    // ParticleIDs themselves are an integer field too.
    let (_, v) = snap.read_star_field_i64("ParticleIDs").unwrap();
    assert_eq!(v, ids.iter().map(|&id| id as i64).collect::<Vec<_>>());
}

#[test]
fn star_field_errors_name_file_dataset_and_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let (path, files) = tng(dir.path(), 2);
    let snap = Snapshot::open(&path).unwrap();

    // Missing in every file: the first file is named.
    let e = snap.read_star_field_i64("SubhaloID").unwrap_err();
    assert!(matches!(e, SnapError::MissingDataset { .. }), "{e:?}");
    names(&e, &files[0], &["PartType4/SubhaloID", "integer values"]);

    // Present in the first file only: the second is named.
    add_field(&files[..1], "Partial", |v| v as i32);
    let e = snap.read_star_field_i64("Partial").unwrap_err();
    names(&e, &files[1], &["PartType4/Partial"]);

    // A float dataset.
    add_field(&files, "Mass32", |v| v as f32);
    let e = snap.read_star_field_i64("Mass32").unwrap_err();
    assert!(matches!(e, SnapError::BadType { .. }), "{e:?}");
    names(&e, &files[0], &["PartType4/Mass32", "integer", "f32"]);

    // Wrong length, and two-dimensional, in the second file.
    let f1 = hdf5::File::open_rw(&files[1]).unwrap();
    let g = f1.group("PartType4").unwrap();
    let n1 = g.dataset("ParticleIDs").unwrap().shape()[0];
    g.new_dataset_builder()
        .with_data(&vec![1i32; n1 - 1])
        .create("Short")
        .unwrap();
    let wide = ndarray::Array2::<i64>::zeros((n1, 2));
    g.new_dataset_builder()
        .with_data(&wide)
        .create("Wide")
        .unwrap();
    drop(g);
    drop(f1);
    let f0 = hdf5::File::open_rw(&files[0]).unwrap();
    let g = f0.group("PartType4").unwrap();
    let n0 = g.dataset("ParticleIDs").unwrap().shape()[0];
    g.new_dataset_builder()
        .with_data(&vec![1i32; n0])
        .create("Short")
        .unwrap();
    g.new_dataset_builder()
        .with_data(&ndarray::Array2::<i64>::zeros((n0, 2)))
        .create("Wide")
        .unwrap();
    g.new_dataset_builder()
        .with_data(&vec![u64::MAX; n0])
        .create("Huge")
        .unwrap();
    drop(g);
    drop(f0);
    let e = snap.read_star_field_i64("Short").unwrap_err();
    assert!(matches!(e, SnapError::BadShape { .. }), "{e:?}");
    names(
        &e,
        &files[1],
        &[
            "PartType4/Short",
            &format!("({n1},)"),
            &format!("NumPart_ThisFile[4] = {n1}"),
        ],
    );
    let e = snap.read_star_field_i64("Wide").unwrap_err();
    assert!(matches!(e, SnapError::BadShape { .. }), "{e:?}");
    names(&e, &files[0], &["PartType4/Wide"]);
    let e = snap.read_star_field_i64("Huge").unwrap_err();
    names(
        &e,
        &files[0],
        &["PartType4/Huge", "i64", "18446744073709551615"],
    );
}

/// Writes a side file with root datasets ParticleIDs (u64) and `name` (i32).
fn side_file(path: &Path, ids: &[u64], name: &str, values: &[i32]) {
    let f = hdf5::File::create(path).unwrap();
    f.new_dataset_builder()
        .with_data(ids)
        .create("ParticleIDs")
        .unwrap();
    f.new_dataset_builder()
        .with_data(values)
        .create(name)
        .unwrap();
}

#[test]
fn side_file_field_reads_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("membership.hdf5");
    let ids: Vec<u64> = (0..2500).map(|k| 77 + 3 * k).collect();
    let values: Vec<i32> = ids.iter().map(|&id| label_of(id) as i32).collect();
    side_file(&p, &ids, "SubhaloID", &values);
    let (got_ids, got) = read_side_field_i64(&p, "SubhaloID").unwrap();
    assert_eq!(got_ids, ids);
    assert_eq!(got, values.iter().map(|&v| v as i64).collect::<Vec<_>>());

    // Missing dataset.
    let e = read_side_field_i64(&p, "GroupNr").unwrap_err();
    assert!(matches!(e, SnapError::MissingDataset { .. }), "{e:?}");
    names(&e, &p, &["GroupNr", "(2500,)", "integer"]);

    // Float values, wrong length.
    let f = hdf5::File::open_rw(&p).unwrap();
    f.new_dataset_builder()
        .with_data(&vec![0.5f64; ids.len()])
        .create("Float")
        .unwrap();
    f.new_dataset_builder()
        .with_data(&vec![1i64; 10])
        .create("Short")
        .unwrap();
    drop(f);
    let e = read_side_field_i64(&p, "Float").unwrap_err();
    assert!(matches!(e, SnapError::BadType { .. }), "{e:?}");
    names(&e, &p, &["Float", "integer", "f64"]);
    let e = read_side_field_i64(&p, "Short").unwrap_err();
    assert!(matches!(e, SnapError::BadShape { .. }), "{e:?}");
    names(&e, &p, &["Short", "(2500,)", "ParticleIDs"]);

    // No ParticleIDs, or float ones.
    let q = dir.path().join("no_ids.hdf5");
    let f = hdf5::File::create(&q).unwrap();
    f.new_dataset_builder()
        .with_data(&values)
        .create("SubhaloID")
        .unwrap();
    drop(f);
    let e = read_side_field_i64(&q, "SubhaloID").unwrap_err();
    names(&e, &q, &["ParticleIDs"]);
    let r = dir.path().join("float_ids.hdf5");
    let f = hdf5::File::create(&r).unwrap();
    f.new_dataset_builder()
        .with_data(&vec![1.0f32; 4])
        .create("ParticleIDs")
        .unwrap();
    drop(f);
    let e = read_side_field_i64(&r, "SubhaloID").unwrap_err();
    assert!(matches!(e, SnapError::BadType { .. }), "{e:?}");
    names(&e, &r, &["ParticleIDs", "integer"]);

    // Not there, not HDF5.
    let missing = dir.path().join("nope.hdf5");
    let e = read_side_field_i64(&missing, "SubhaloID").unwrap_err();
    assert!(matches!(e, SnapError::NotFound { .. }), "{e:?}");
    names(&e, &missing, &["ParticleIDs", "SubhaloID"]);
    let text = dir.path().join("groups.txt");
    std::fs::write(&text, "1 2 3\n").unwrap();
    let e = read_side_field_i64(&text, "SubhaloID").unwrap_err();
    assert!(matches!(e, SnapError::NotHdf5 { .. }), "{e:?}");
}
