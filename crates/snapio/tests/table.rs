//! Generic HDF5 tables: (N, 3) reads by name, atomic writes of named datasets with units.

use snapio::{read_table, read_vec3, write_table, AttrValue, SnapError, TableColumn, TableValues};
use std::path::Path;

fn col(name: &str, units: &str, values: TableValues) -> TableColumn {
    TableColumn::new(name, units, &format!("{name} values"), values)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn write_then_read_back_with_units() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.hdf5");
    let pos = vec![[1.0, 2.0, 3.0], [-4.0, 5.5, 6.25]];
    let cols = vec![
        col("position", "kpc", TableValues::Float3(pos.clone())),
        col(
            "condition",
            "dimensionless",
            TableValues::Float(vec![1.5, f64::NAN]),
        ),
        col("flag", "dimensionless", TableValues::UInt(vec![0, 2])),
    ];
    let attrs = vec![("program".to_string(), AttrValue::Str("test".into()))];
    write_table(&p, &cols, &attrs).unwrap();
    assert_eq!(files_in(dir.path()), vec!["t.hdf5".to_string()]);
    assert_eq!(read_vec3(&p, "position").unwrap(), pos);
    let back = read_table(&p).unwrap();
    assert_eq!(back.len(), 3);
    let by = |n: &str| back.iter().find(|c| c.name == n).unwrap();
    assert_eq!(by("position").units, "kpc");
    assert_eq!(by("position").description, "position values");
    assert_eq!(by("flag").values, TableValues::UInt(vec![0, 2]));
    match &by("condition").values {
        TableValues::Float(v) => assert!(v[0] == 1.5 && v[1].is_nan()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn mismatched_lengths_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.hdf5");
    let cols = vec![
        col("position", "kpc", TableValues::Float3(vec![[0.0; 3]; 2])),
        col("flag", "dimensionless", TableValues::UInt(vec![0])),
    ];
    let e = write_table(&p, &cols, &[]).unwrap_err().to_string();
    assert!(e.contains("flag") && e.contains("t.hdf5"), "{e}");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn bad_position_datasets_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.hdf5");
    {
        let f = hdf5::File::create(&p).unwrap();
        f.new_dataset::<f64>()
            .shape((2, 2))
            .create("two_cols")
            .unwrap()
            .write_raw(&[0.0, 1.0, 2.0, 3.0])
            .unwrap();
        f.new_dataset::<i32>()
            .shape((1, 3))
            .create("ints")
            .unwrap()
            .write_raw(&[1, 2, 3])
            .unwrap();
        f.new_dataset::<f32>()
            .shape((2, 3))
            .create("single")
            .unwrap()
            .write_raw(&[0.5f32, 1.0, 2.0, 3.0, 4.0, 5.0])
            .unwrap();
        f.new_dataset::<f64>()
            .shape((2, 3))
            .create("nan")
            .unwrap()
            .write_raw(&[0.0, 1.0, 2.0, 3.0, f64::NAN, 5.0])
            .unwrap();
    }
    assert_eq!(
        read_vec3(&p, "single").unwrap(),
        vec![[0.5, 1.0, 2.0], [3.0, 4.0, 5.0]]
    );
    let e = read_vec3(&p, "position").unwrap_err();
    assert!(matches!(e, SnapError::MissingDataset { .. }), "{e}");
    assert!(e.to_string().contains("q.hdf5") && e.to_string().contains("`position`"));
    let e = read_vec3(&p, "two_cols").unwrap_err();
    assert!(matches!(e, SnapError::BadShape { .. }), "{e}");
    assert!(e.to_string().contains("(N, 3)"), "{e}");
    let e = read_vec3(&p, "ints").unwrap_err();
    assert!(matches!(e, SnapError::BadType { .. }), "{e}");
    let e = read_vec3(&p, "nan").unwrap_err();
    assert!(matches!(e, SnapError::NonFinite { row: 1, .. }), "{e}");
    let missing = dir.path().join("none.hdf5");
    assert!(matches!(
        read_vec3(&missing, "position").unwrap_err(),
        SnapError::NotFound { .. } | SnapError::Io { .. }
    ));
}
