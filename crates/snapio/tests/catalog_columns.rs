//! Extra named columns of the streaming catalogue writer: declared at creation, appended with
//! each batch, written across chunk boundaries; a catalogue without them is unchanged.

use snapio::{
    read_catalog, read_table, AttrValue, CatalogMeta, CatalogWriter, StarBatch, TableColumn,
    TableValues,
};

fn batch(start: usize, n: usize) -> StarBatch {
    let f = |k: usize| (start + k) as f64;
    StarBatch {
        position: (0..n).map(|k| [f(k), 0.5, -1.0]).collect(),
        velocity: (0..n).map(|k| [0.0, f(k), 2.0]).collect(),
        mass: (0..n).map(|k| 0.1 + f(k) * 1e-6).collect(),
        initial_mass: (0..n).map(|k| 0.1 + f(k) * 1e-6).collect(),
        age: vec![5.0; n],
        metallicity: vec![0.01; n],
        parent_id: (0..n).map(|k| (start + k) as u64 / 7).collect(),
        cluster: vec![0; n],
        ..Default::default()
    }
}

fn meta() -> CatalogMeta {
    CatalogMeta {
        attributes: vec![("seed".into(), AttrValue::Int(3))],
    }
}

fn declare(name: &str, units: &str, values: TableValues) -> TableColumn {
    TableColumn::new(name, units, "", values)
}

#[test]
fn no_extra_columns_gives_the_same_bytes_as_create() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.hdf5"), dir.path().join("b.hdf5"));
    let mut w = CatalogWriter::create(&a, &meta()).unwrap();
    w.append(&batch(0, 1000)).unwrap();
    w.finish().unwrap();
    let mut w = CatalogWriter::create_with_columns(&b, &meta(), false, &[]).unwrap();
    w.append_with_columns(&batch(0, 1000), &[]).unwrap();
    w.finish().unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn extra_columns_round_trip_across_chunks_with_units() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.hdf5");
    let cols = [
        declare("parallax", "mas", TableValues::Float(Vec::new())),
        declare(
            "label",
            "dimensionless (PARSEC label)",
            TableValues::Byte(Vec::new()),
        ),
        declare("count", "dimensionless", TableValues::UInt(Vec::new())),
        declare("xyz", "kpc", TableValues::Float3(Vec::new())),
    ];
    let mut w = CatalogWriter::create_with_columns(&p, &meta(), false, &cols).unwrap();
    let n_total = 70_000; // more than one 65536-row chunk
    let mut start = 0;
    while start < n_total {
        let n = 30_000.min(n_total - start);
        let extra = [
            TableValues::Float((start..start + n).map(|k| 1.0 / (1.0 + k as f64)).collect()),
            TableValues::Byte((start..start + n).map(|k| (k % 9) as u8).collect()),
            TableValues::UInt((start..start + n).map(|k| k as u32).collect()),
            TableValues::Float3((start..start + n).map(|k| [k as f64, -1.0, 2.0]).collect()),
        ];
        w.append_with_columns(&batch(start, n), &extra).unwrap();
        start += n;
    }
    assert_eq!(w.finish().unwrap(), n_total as u64);
    let cat = read_catalog(&p).unwrap();
    assert_eq!(cat.len(), n_total);
    assert_eq!(cat.position[66_000][0], 66_000.0);
    let t = read_table(&p).unwrap();
    let by = |n: &str| t.iter().find(|c| c.name == n).unwrap();
    assert_eq!(by("parallax").units, "mas");
    match &by("parallax").values {
        TableValues::Float(v) => {
            assert_eq!(v.len(), n_total);
            assert_eq!(v[65_537], 1.0 / 65_538.0);
        }
        other => panic!("parallax: {other:?}"),
    }
    match &by("label").values {
        TableValues::Byte(v) => assert_eq!(v[69_999], (69_999 % 9) as u8),
        other => panic!("label: {other:?}"),
    }
    match &by("count").values {
        TableValues::UInt(v) => assert_eq!(v[40_000], 40_000),
        other => panic!("count: {other:?}"),
    }
    match &by("xyz").values {
        TableValues::Float3(v) => assert_eq!(v[65_536], [65_536.0, -1.0, 2.0]),
        other => panic!("xyz: {other:?}"),
    }
}

#[test]
fn wrong_extra_columns_are_refused_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.hdf5");
    let cols = [declare("parallax", "mas", TableValues::Float(Vec::new()))];
    let mut w = CatalogWriter::create_with_columns(&p, &meta(), false, &cols).unwrap();
    let e = w.append(&batch(0, 3)).unwrap_err().to_string();
    assert!(e.contains("0 extra columns given"), "{e}");
    let e = w
        .append_with_columns(&batch(0, 3), &[TableValues::Float(vec![1.0; 2])])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`parallax` has 2 rows but the batch has 3"),
        "{e}"
    );
    let e = w
        .append_with_columns(&batch(0, 3), &[TableValues::UInt(vec![1; 3])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("declared f64 but is given u32"), "{e}");
    drop(w);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let dup = [declare("mass", "Msun", TableValues::Float(Vec::new()))];
    let e = CatalogWriter::create_with_columns(&p, &meta(), false, &dup)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("shadows a catalogue dataset"), "{e}");
}
