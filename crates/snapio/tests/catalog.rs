//! Streaming catalogue writer: appends, read back, units attributes, temp-file handling.

use snapio::{read_catalog, AttrValue, CatalogMeta, CatalogWriter, StarBatch};

fn batch(n: usize, offset: usize) -> StarBatch {
    let mut b = StarBatch::default();
    for j in 0..n {
        let i = (offset + j) as f64;
        b.position.push([i, -i, 0.5 * i]);
        b.velocity.push([10.0 + i, 0.0, -i]);
        b.mass.push(0.1 + i * 1e-6);
        b.initial_mass.push(0.2 + i * 1e-6);
        b.age.push(i * 1e-5);
        b.metallicity.push(0.02);
        b.parent_id.push(1_000_000_000_000 + (offset + j) as u64);
        b.cluster.push(((offset + j) % 7) as u32);
    }
    b
}

#[test]
fn appends_stream_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.hdf5");
    let meta = CatalogMeta {
        attributes: vec![
            (
                "snapshot".into(),
                AttrValue::Str("/data/snap_099.hdf5".into()),
            ),
            ("seed".into(), AttrValue::Int(42)),
            ("star_fraction".into(), AttrValue::Float(0.5)),
            (
                "frame_rotation".into(),
                AttrValue::FloatArray(vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
            ),
            (
                "configuration".into(),
                AttrValue::Str("[run]\nepochs = 3 # ünïcode\n".into()),
            ),
        ],
    };
    let mut w = CatalogWriter::create(&path, &meta).unwrap();
    let tmp = CatalogWriter::temp_path(&path);
    assert!(tmp.exists());
    assert!(!path.exists());
    let sizes = [10usize, 70_000, 0, 65_536, 3];
    let mut off = 0;
    for n in sizes {
        w.append(&batch(n, off)).unwrap();
        off += n;
    }
    assert_eq!(w.rows(), off as u64);
    let rows = w.finish().unwrap();
    assert_eq!(rows, off as u64);
    assert!(path.exists());
    assert!(!tmp.exists(), "temp file must be gone after finish");

    let got = read_catalog(&path).unwrap();
    assert_eq!(got, batch(off, 0));

    let f = hdf5::File::open(&path).unwrap();
    for (name, unit) in [
        ("position", "kpc"),
        ("velocity", "km/s"),
        ("mass", "Msun"),
        ("initial_mass", "Msun"),
        ("age", "Gyr"),
        ("metallicity", "dimensionless"),
        ("parent_id", "dimensionless"),
        ("cluster", "dimensionless"),
    ] {
        let ds = f.dataset(name).unwrap();
        let u: hdf5::types::VarLenUnicode = ds.attr("units").unwrap().read_scalar().unwrap();
        assert!(u.as_str().starts_with(unit), "{name}: {u}");
        assert_eq!(ds.shape()[0], off);
        assert_eq!(ds.chunk().unwrap()[0], snapio::CATALOG_CHUNK_ROWS);
    }
    let seed: i64 = f.attr("seed").unwrap().read_scalar().unwrap();
    assert_eq!(seed, 42);
    let cfg: hdf5::types::VarLenUnicode = f.attr("configuration").unwrap().read_scalar().unwrap();
    assert!(cfg.as_str().contains("ünïcode"));
    let rot: Vec<f64> = f.attr("frame_rotation").unwrap().read_raw().unwrap();
    assert_eq!(rot.len(), 9);
}

#[test]
fn dropping_an_unfinished_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.hdf5");
    {
        let mut w = CatalogWriter::create(&path, &CatalogMeta::default()).unwrap();
        w.append(&batch(100_000, 0)).unwrap();
    }
    assert!(!path.exists());
    assert!(!CatalogWriter::temp_path(&path).exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn mismatched_batch_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.hdf5");
    let mut w = CatalogWriter::create(&path, &CatalogMeta::default()).unwrap();
    let mut b = batch(5, 0);
    b.cluster.pop();
    let e = w.append(&b).unwrap_err();
    assert!(e.to_string().contains("cluster"), "{e}");
    // Empty catalogue is still a valid file.
    assert_eq!(w.finish().unwrap(), 0);
    assert_eq!(read_catalog(&path).unwrap().len(), 0);
}

#[test]
fn parent_identity_columns_only_when_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    // Plain writer: the eight datasets of before, and a batch with identity is refused.
    let plain = dir.path().join("plain.hdf5");
    let mut w = CatalogWriter::create(&plain, &CatalogMeta::default()).unwrap();
    w.append(&batch(10, 0)).unwrap();
    let mut with_ids = batch(5, 10);
    with_ids.parent_child_id = vec![1, 2, 3, 4, 5];
    let e = w.append(&with_ids).unwrap_err();
    assert!(e.to_string().contains("create_with_parent_identity"), "{e}");
    assert_eq!(w.finish().unwrap(), 10);
    let f = hdf5::File::open(&plain).unwrap();
    let mut names = f.member_names().unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            "age",
            "cluster",
            "initial_mass",
            "mass",
            "metallicity",
            "parent_id",
            "position",
            "velocity"
        ]
    );
    drop(f);
    let back = read_catalog(&plain).unwrap();
    assert!(back.parent_child_id.is_empty() && back.parent_generation.is_empty());

    // Identity writer: batches with and without the columns, across a chunk boundary.
    let ided = dir.path().join("ided.hdf5");
    let mut w = CatalogWriter::create_with_parent_identity(&ided, &CatalogMeta::default()).unwrap();
    let n1 = 70_000;
    let mut b1 = batch(n1, 0);
    b1.parent_child_id = (0..n1 as u32).map(|i| i % 5).collect();
    b1.parent_generation = (0..n1 as u32).map(|i| i % 2).collect();
    w.append(&b1).unwrap();
    w.append(&batch(3, n1)).unwrap();
    assert_eq!(w.finish().unwrap(), (n1 + 3) as u64);
    let back = read_catalog(&ided).unwrap();
    assert_eq!(back.parent_child_id.len(), n1 + 3);
    assert_eq!(back.parent_child_id[69_999], 69_999 % 5);
    assert_eq!(back.parent_generation[65_537], 1);
    assert_eq!(&back.parent_child_id[n1..], &[0, 0, 0]);
    assert_eq!(back.parent_id[n1 + 2], 1_000_000_000_000 + (n1 + 2) as u64);
}

#[test]
fn the_same_catalogue_written_at_another_time_has_the_same_bytes() {
    // HDF5 stamps object headers with modification times unless told not to: a catalogue
    // made again from the same seed must be the same file, byte for byte.
    let dir = tempfile::tempdir().unwrap();
    let meta = CatalogMeta {
        attributes: vec![("seed".into(), AttrValue::Int(7))],
    };
    let write = |name: &str| {
        let path = dir.path().join(name);
        let mut w = CatalogWriter::create(&path, &meta).unwrap();
        w.append(&batch(5000, 0)).unwrap();
        w.finish().unwrap();
        std::fs::read(&path).unwrap()
    };
    let first = write("a.hdf5");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = write("b.hdf5");
    assert_eq!(first.len(), second.len());
    let differing = first.iter().zip(&second).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "{differing} bytes differ");
}
