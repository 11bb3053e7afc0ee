//! Small generic tables in HDF5: reading an (N, 3) float dataset by name, and writing a set of
//! named 1-D / (N, 3) datasets, each with a `units` attribute, atomically (temporary name, then
//! rename). Used for query points and per-point results (e.g. `upsample accel`).

use std::path::{Path, PathBuf};

use hdf5::types::TypeDescriptor;

use crate::catalog::{write_attr, AttrValue};
use crate::error::{h5err, Result, SnapError};

/// Values of one dataset of a [`write_table`] file; all datasets of a file share their row count.
#[derive(Debug, Clone, PartialEq)]
pub enum TableValues {
    /// 1-D array of f64, one value per row.
    Float(Vec<f64>),
    /// (N, 3) array of f64 (e.g. positions in kpc, accelerations in (km/s)^2/kpc).
    Float3(Vec<[f64; 3]>),
    /// 1-D array of u32 (counts, flags).
    UInt(Vec<u32>),
    /// 1-D array of u8 (small labels and bit flags).
    Byte(Vec<u8>),
}

impl TableValues {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            TableValues::Float(v) => v.len(),
            TableValues::Float3(v) => v.len(),
            TableValues::UInt(v) => v.len(),
            TableValues::Byte(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type in words (error messages).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            TableValues::Float(_) => "f64",
            TableValues::Float3(_) => "(N, 3) f64",
            TableValues::UInt(_) => "u32",
            TableValues::Byte(_) => "u8",
        }
    }

    /// An empty column of the same element type.
    pub(crate) fn empty_like(&self) -> TableValues {
        match self {
            TableValues::Float(_) => TableValues::Float(Vec::new()),
            TableValues::Float3(_) => TableValues::Float3(Vec::new()),
            TableValues::UInt(_) => TableValues::UInt(Vec::new()),
            TableValues::Byte(_) => TableValues::Byte(Vec::new()),
        }
    }

    /// Appends the rows of `o`; false (nothing appended) when the element types differ.
    pub(crate) fn extend_from(&mut self, o: &TableValues) -> bool {
        match (self, o) {
            (TableValues::Float(a), TableValues::Float(b)) => a.extend_from_slice(b),
            (TableValues::Float3(a), TableValues::Float3(b)) => a.extend_from_slice(b),
            (TableValues::UInt(a), TableValues::UInt(b)) => a.extend_from_slice(b),
            (TableValues::Byte(a), TableValues::Byte(b)) => a.extend_from_slice(b),
            _ => return false,
        }
        true
    }

    /// Removes and returns the first `k` rows.
    pub(crate) fn split_front(&mut self, k: usize) -> TableValues {
        fn front<T>(v: &mut Vec<T>, k: usize) -> Vec<T> {
            let rest = v.split_off(k);
            std::mem::replace(v, rest)
        }
        match self {
            TableValues::Float(v) => TableValues::Float(front(v, k)),
            TableValues::Float3(v) => TableValues::Float3(front(v, k)),
            TableValues::UInt(v) => TableValues::UInt(front(v, k)),
            TableValues::Byte(v) => TableValues::Byte(front(v, k)),
        }
    }
}

/// One named dataset with its units (stored as the `units` attribute) and an optional description
/// (stored as the `description` attribute).
#[derive(Debug, Clone, PartialEq)]
pub struct TableColumn {
    /// Dataset name (at the root of the file).
    pub name: String,
    /// Units, e.g. "kpc", "(km/s)^2/kpc", "dimensionless".
    pub units: String,
    /// What the values are, in words (empty: no attribute written).
    pub description: String,
    /// The values.
    pub values: TableValues,
}

impl TableColumn {
    /// A column `name` in `units`, described by `description` (empty: no attribute written).
    pub fn new(name: &str, units: &str, description: &str, values: TableValues) -> TableColumn {
        TableColumn {
            name: name.into(),
            units: units.into(),
            description: description.into(),
            values,
        }
    }
}

/// Reads the dataset `dataset` of `path` as rows of three f64 (shape (N, 3), any float type).
///
/// Errors name the file and dataset: missing file or dataset, non-float element type, a shape
/// other than (N, 3), non-finite values (with their row).
pub fn read_vec3(path: &Path, dataset: &str) -> Result<Vec<[f64; 3]>> {
    let file = crate::discover::open_h5(path)?;
    read3(path, &file, dataset, true)
}

fn read3(
    path: &Path,
    file: &hdf5::File,
    dataset: &str,
    require_finite: bool,
) -> Result<Vec<[f64; 3]>> {
    if !file.link_exists(dataset) {
        return Err(SnapError::MissingDataset {
            path: path.to_path_buf(),
            dataset: dataset.into(),
            expected: "an (N, 3) floating-point dataset".into(),
        });
    }
    let ds = file
        .dataset(dataset)
        .map_err(h5err(path, dataset, "opening dataset"))?;
    let desc = ds.dtype().and_then(|t| t.to_descriptor()).map_err(h5err(
        path,
        dataset,
        "reading element type",
    ))?;
    if !matches!(desc, TypeDescriptor::Float(_)) {
        return Err(SnapError::BadType {
            path: path.to_path_buf(),
            dataset: dataset.into(),
            expected: "floating point (f32 or f64)".into(),
            found: crate::fields::dtype_name(&desc),
        });
    }
    let shape = ds.shape();
    if shape.len() != 2 || shape[1] != 3 {
        return Err(SnapError::BadShape {
            path: path.to_path_buf(),
            dataset: dataset.into(),
            expected: "(N, 3)".into(),
            found: shape,
        });
    }
    let flat = ds
        .read_raw::<f64>()
        .map_err(h5err(path, dataset, "reading values"))?;
    let rows: Vec<[f64; 3]> = flat.chunks_exact(3).map(|r| [r[0], r[1], r[2]]).collect();
    for (i, r) in rows.iter().enumerate().filter(|_| require_finite) {
        if let Some(&value) = r.iter().find(|v| !v.is_finite()) {
            return Err(SnapError::NonFinite {
                path: path.to_path_buf(),
                dataset: dataset.into(),
                row: i as u64,
                value,
            });
        }
    }
    Ok(rows)
}

/// Temporary name used while a table is written: `<path>.tmp`.
fn temp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Writes `columns` (all with the same row count) and root `attributes` into a new HDF5 file at
/// `path`, atomically: the file is written as `<path>.tmp` and renamed when complete; on error
/// the temporary file is removed and `path` is left untouched.
pub fn write_table(
    path: &Path,
    columns: &[TableColumn],
    attributes: &[(String, AttrValue)],
) -> Result<()> {
    if let Some(first) = columns.first() {
        let n = first.values.len();
        if let Some(bad) = columns.iter().find(|c| c.values.len() != n) {
            return Err(SnapError::InvalidInput(format!(
                "{}: dataset `{}` has {} rows, expected {n} like `{}`",
                path.display(),
                bad.name,
                bad.values.len(),
                first.name
            )));
        }
    }
    let tmp = temp_path(path);
    let result = write_table_to(&tmp, columns, attributes).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|source| SnapError::Io {
            path: path.to_path_buf(),
            context: format!("renaming {} to the final name", tmp.display()),
            error: source,
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_table_to(
    tmp: &Path,
    columns: &[TableColumn],
    attributes: &[(String, AttrValue)],
) -> Result<()> {
    let file = crate::catalog::create_untimed(tmp).map_err(h5err(tmp, "/", "creating file"))?;
    for c in columns {
        let name = c.name.as_str();
        let err = |what: &str| h5err(tmp, name, what);
        let ds = match &c.values {
            TableValues::Float(v) => {
                let ds = file
                    .new_dataset::<f64>()
                    .shape(v.len())
                    .create(name)
                    .map_err(err("creating dataset"))?;
                ds.write_raw(v).map_err(err("writing values"))?;
                ds
            }
            TableValues::Float3(v) => {
                let flat: Vec<f64> = v.iter().flatten().copied().collect();
                let ds = file
                    .new_dataset::<f64>()
                    .shape((v.len(), 3))
                    .create(name)
                    .map_err(err("creating dataset"))?;
                ds.write_raw(&flat).map_err(err("writing values"))?;
                ds
            }
            TableValues::UInt(v) => {
                let ds = file
                    .new_dataset::<u32>()
                    .shape(v.len())
                    .create(name)
                    .map_err(err("creating dataset"))?;
                ds.write_raw(v).map_err(err("writing values"))?;
                ds
            }
            TableValues::Byte(v) => {
                let ds = file
                    .new_dataset::<u8>()
                    .shape(v.len())
                    .create(name)
                    .map_err(err("creating dataset"))?;
                ds.write_raw(v).map_err(err("writing values"))?;
                ds
            }
        };
        write_attr(tmp, &ds, "units", &AttrValue::Str(c.units.clone()))?;
        if !c.description.is_empty() {
            write_attr(
                tmp,
                &ds,
                "description",
                &AttrValue::Str(c.description.clone()),
            )?;
        }
    }
    for (name, value) in attributes {
        write_attr(tmp, &file, name, value)?;
    }
    file.flush().map_err(h5err(tmp, "/", "flushing"))?;
    file.close().map_err(h5err(tmp, "/", "closing"))?;
    Ok(())
}

/// Reads a whole table written by [`write_table`]: (name, units, values) for each root dataset
/// that is 1-D (f64, u32, or u8 read as [`TableValues::Byte`]) or (N, 3) f64, in name order (for tests and small files).
pub fn read_table(path: &Path) -> Result<Vec<TableColumn>> {
    let file = crate::discover::open_h5(path)?;
    let names = file
        .member_names()
        .map_err(h5err(path, "/", "listing datasets"))?;
    let mut out = Vec::new();
    for name in names {
        let n = name.as_str();
        let ds = file.dataset(n).map_err(h5err(path, n, "opening dataset"))?;
        let units = read_str_attr(path, &ds, n, "units")?;
        let description = if ds
            .attr_names()
            .map_err(h5err(path, n, "listing attributes"))?
            .iter()
            .any(|a| a == "description")
        {
            read_str_attr(path, &ds, n, "description")?
        } else {
            String::new()
        };
        let desc = ds.dtype().and_then(|t| t.to_descriptor()).map_err(h5err(
            path,
            n,
            "reading element type",
        ))?;
        let shape = ds.shape();
        let values = match (&desc, shape.as_slice()) {
            (TypeDescriptor::Unsigned(hdf5::types::IntSize::U1), [_]) => TableValues::Byte(
                ds.read_raw::<u8>()
                    .map_err(h5err(path, n, "reading values"))?,
            ),
            (TypeDescriptor::Unsigned(_), [_]) => TableValues::UInt(
                ds.read_raw::<u32>()
                    .map_err(h5err(path, n, "reading values"))?,
            ),
            (TypeDescriptor::Float(_), [_]) => TableValues::Float(
                ds.read_raw::<f64>()
                    .map_err(h5err(path, n, "reading values"))?,
            ),
            (TypeDescriptor::Float(_), [_, 3]) => {
                TableValues::Float3(read3(path, &file, n, false)?)
            }
            _ => {
                return Err(SnapError::BadShape {
                    path: path.to_path_buf(),
                    dataset: n.into(),
                    expected: "1-D f64/u32 or (N, 3) f64".into(),
                    found: shape,
                })
            }
        };
        out.push(TableColumn {
            name,
            units,
            description,
            values,
        });
    }
    Ok(out)
}

fn read_str_attr(path: &Path, ds: &hdf5::Dataset, object: &str, name: &str) -> Result<String> {
    let a = ds.attr(name).map_err(|_| SnapError::MissingAttribute {
        path: path.to_path_buf(),
        object: object.into(),
        attribute: name.into(),
        expected: "a string attribute".into(),
    })?;
    let v: hdf5::types::VarLenUnicode = a.read_scalar().map_err(h5err(
        path,
        &format!("{object}/{name}"),
        "reading attribute",
    ))?;
    Ok(v.as_str().to_string())
}
