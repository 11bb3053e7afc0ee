//! PartType4 datasets checked for element type and shape, read in row ranges.

use std::path::Path;

use hdf5::types::TypeDescriptor;

use crate::error::{h5err, Result, SnapError};

/// The PartType4 group of a file whose header counts `n` > 0 star particles.
pub(crate) fn star_group(path: &Path, file: &hdf5::File, n: u64) -> Result<hdf5::Group> {
    if !file.link_exists("PartType4") {
        return Err(SnapError::MissingGroup {
            path: path.to_path_buf(),
            group: "PartType4".into(),
            expected: format!("Header/NumPart_ThisFile[4] = {n} star particles"),
        });
    }
    file.group("PartType4")
        .map_err(h5err(path, "PartType4", "opening group"))
}

pub(crate) fn dtype_name(d: &TypeDescriptor) -> String {
    match d {
        TypeDescriptor::Integer(s) => format!("i{}", *s as usize * 8),
        TypeDescriptor::Unsigned(s) => format!("u{}", *s as usize * 8),
        TypeDescriptor::Float(s) => format!("f{}", *s as usize * 8),
        TypeDescriptor::Boolean => "bool".into(),
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => format!("string[{n}]"),
        TypeDescriptor::VarLenAscii | TypeDescriptor::VarLenUnicode => "string".into(),
        other => format!("{other:?}"),
    }
}

/// Kind of element a field must have.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Want {
    Float,
    Integer,
}

/// A PartType4 dataset checked for type and shape.
pub(crate) struct Field {
    pub(crate) ds: hdf5::Dataset,
    pub(crate) name: String,
    /// Columns (1 for 1-D).
    pub(crate) width: usize,
    /// Whether 2-D.
    pub(crate) two_d: bool,
    pub(crate) elem: usize,
}

/// Opens dataset `name` of group `PartTypeN` (`part`), `None` when absent, and checks that its
/// elements are of the kind `want` (`what`, when not empty, says what the dataset is for in the
/// error). Returns the dataset, its full name and its element size in bytes.
pub(crate) fn open_typed(
    path: &Path,
    g: &hdf5::Group,
    part: usize,
    name: &str,
    want: Want,
    what: &str,
) -> Result<Option<(hdf5::Dataset, String, usize)>> {
    let full = format!("PartType{part}/{name}");
    if !g.link_exists(name) {
        return Ok(None);
    }
    let ds = g
        .dataset(name)
        .map_err(h5err(path, &full, "opening dataset"))?;
    let dt = ds
        .dtype()
        .map_err(h5err(path, &full, "reading element type"))?;
    let desc = dt
        .to_descriptor()
        .map_err(h5err(path, &full, "reading element type"))?;
    let ok = matches!(
        (want, &desc),
        (Want::Float, TypeDescriptor::Float(_))
            | (
                Want::Integer,
                TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)
            )
    );
    if !ok {
        let kind = match want {
            Want::Float => "floating point (f32 or f64)",
            Want::Integer => "integer",
        };
        return Err(SnapError::BadType {
            path: path.to_path_buf(),
            dataset: full,
            expected: if what.is_empty() {
                kind.into()
            } else {
                format!("{kind} for {what}")
            },
            found: dtype_name(&desc),
        });
    }
    Ok(Some((ds, full, dt.size())))
}

/// Opens star dataset `PartType4/name` of `n` rows, checked for type and shape (`width`
/// columns, or 1-D when `None`, or N×k of which column 0 is used); `None` when absent.
pub(crate) fn open_field(
    path: &Path,
    g: &hdf5::Group,
    name: &str,
    n: u64,
    want: Want,
    width: Option<usize>,
) -> Result<Option<Field>> {
    let Some((ds, full, elem)) = open_typed(path, g, 4, name, want, "")? else {
        return Ok(None);
    };
    let shape = ds.shape();
    let shape_ok = match (width, shape.len()) {
        (Some(w), 2) => shape[0] as u64 == n && shape[1] == w,
        (None, 1) => shape[0] as u64 == n,
        (None, 2) => shape[0] as u64 == n && shape[1] >= 1, // metallicity N×k: column 0 used
        _ => false,
    };
    if !shape_ok {
        return Err(SnapError::BadShape {
            path: path.to_path_buf(),
            dataset: full,
            expected: match width {
                Some(w) => format!("({n}, {w}) to match Header/NumPart_ThisFile[4] = {n}"),
                None => format!("({n},) to match Header/NumPart_ThisFile[4] = {n}"),
            },
            found: shape,
        });
    }
    let two_d = shape.len() == 2;
    Ok(Some(Field {
        ds,
        name: full,
        width: width.unwrap_or(1),
        two_d,
        elem,
    }))
}

pub(crate) fn require(path: &Path, f: Option<Field>, name: &str, expected: &str) -> Result<Field> {
    f.ok_or_else(|| SnapError::MissingDataset {
        path: path.to_path_buf(),
        dataset: format!("PartType4/{name}"),
        expected: expected.to_string(),
    })
}

impl Field {
    /// Reads rows `start..end` (all `width` columns, or column 0 of an N×k array) as f64.
    pub(crate) fn read_f64(
        &self,
        path: &Path,
        start: usize,
        end: usize,
        bytes: &mut u64,
    ) -> Result<Vec<f64>> {
        let ctx = || format!("reading rows {start}..{end}");
        let v: Vec<f64> = if self.two_d {
            let cols = self.width;
            let a = self
                .ds
                .read_slice_2d::<f64, _>((start..end, 0..cols))
                .map_err(h5err(path, &self.name, &ctx()))?;
            if a.is_standard_layout() {
                a.into_raw_vec_and_offset().0
            } else {
                a.iter().copied().collect()
            }
        } else {
            let a = self.ds.read_slice_1d::<f64, _>(start..end).map_err(h5err(
                path,
                &self.name,
                &ctx(),
            ))?;
            a.into_iter().collect()
        };
        *bytes += (v.len() * self.elem) as u64;
        Ok(v)
    }

    pub(crate) fn read_u64(
        &self,
        path: &Path,
        start: usize,
        end: usize,
        bytes: &mut u64,
    ) -> Result<Vec<u64>> {
        let a = self.ds.read_slice_1d::<u64, _>(start..end).map_err(h5err(
            path,
            &self.name,
            &format!("reading rows {start}..{end} as unsigned integers"),
        ))?;
        *bytes += (a.len() * self.elem) as u64;
        Ok(a.iter().copied().collect())
    }

    /// Reads rows `start..end` of a 1-D integer dataset as i64 (u64 values above i64::MAX saturate).
    pub(crate) fn read_i64(
        &self,
        path: &Path,
        start: usize,
        end: usize,
        bytes: &mut u64,
    ) -> Result<Vec<i64>> {
        let a = self.ds.read_slice_1d::<i64, _>(start..end).map_err(h5err(
            path,
            &self.name,
            &format!("reading rows {start}..{end} as integers"),
        ))?;
        *bytes += (a.len() * self.elem) as u64;
        Ok(a.iter().copied().collect())
    }
}

/// Rows per read of the integer-field readers.
pub(crate) const FIELD_CHUNK_ROWS: usize = 1 << 20;

/// A checked 1-D integer dataset: the dataset, its full name for errors, its length, whether u64.
pub(crate) struct IntColumn {
    pub(crate) ds: hdf5::Dataset,
    pub(crate) full: String,
    pub(crate) len: usize,
    pub(crate) unsigned_64: bool,
}

/// Opens `name` in `g` as a 1-D integer dataset of `n` rows (any length if `None`); `full` names
/// it in errors, `what` says what it holds and `rows_rule` where `n` comes from.
pub(crate) fn open_int_column(
    path: &Path,
    g: &hdf5::Group,
    full: &str,
    name: &str,
    n: Option<u64>,
    what: &str,
    rows_rule: &str,
) -> Result<IntColumn> {
    let rows = n.map_or_else(|| "N".to_string(), |n| n.to_string());
    if !g.link_exists(name) {
        return Err(SnapError::MissingDataset {
            path: path.to_path_buf(),
            dataset: full.to_string(),
            expected: format!("({rows},) {what}"),
        });
    }
    let ds = g
        .dataset(name)
        .map_err(h5err(path, full, "opening dataset"))?;
    let desc = ds.dtype().and_then(|d| d.to_descriptor()).map_err(h5err(
        path,
        full,
        "reading element type",
    ))?;
    let unsigned_64 = match desc {
        TypeDescriptor::Integer(_) => false,
        TypeDescriptor::Unsigned(s) => s as usize == 8,
        other => {
            return Err(SnapError::BadType {
                path: path.to_path_buf(),
                dataset: full.to_string(),
                expected: format!("integer (i8..i64 or u8..u64) for {what}"),
                found: dtype_name(&other),
            })
        }
    };
    let shape = ds.shape();
    if shape.len() != 1 || n.is_some_and(|n| shape[0] as u64 != n) {
        return Err(SnapError::BadShape {
            path: path.to_path_buf(),
            dataset: full.to_string(),
            expected: if rows_rule.is_empty() {
                format!("({rows},), one-dimensional: {what}")
            } else {
                format!("({rows},) to match {rows_rule}: {what}")
            },
            found: shape,
        });
    }
    Ok(IntColumn {
        ds,
        full: full.to_string(),
        len: shape[0],
        unsigned_64,
    })
}

impl IntColumn {
    /// Appends every row as u64 (particle IDs), in chunks.
    pub(crate) fn read_u64_into(&self, path: &Path, out: &mut Vec<u64>) -> Result<()> {
        out.reserve(self.len);
        let mut s = 0;
        while s < self.len {
            let e = (s + FIELD_CHUNK_ROWS).min(self.len);
            let a = self.ds.read_slice_1d::<u64, _>(s..e).map_err(h5err(
                path,
                &self.full,
                &format!("reading rows {s}..{e} as unsigned integers"),
            ))?;
            out.extend(a.iter().copied());
            s = e;
        }
        Ok(())
    }

    /// Appends every row as i64, in chunks; u64 values above i64::MAX are an error.
    pub(crate) fn read_i64_into(&self, path: &Path, out: &mut Vec<i64>) -> Result<()> {
        out.reserve(self.len);
        let mut s = 0;
        while s < self.len {
            let e = (s + FIELD_CHUNK_ROWS).min(self.len);
            let ctx = format!("reading rows {s}..{e} as integers");
            if self.unsigned_64 {
                let a = self
                    .ds
                    .read_slice_1d::<u64, _>(s..e)
                    .map_err(h5err(path, &self.full, &ctx))?;
                for (k, &v) in a.iter().enumerate() {
                    let v = i64::try_from(v).map_err(|_| SnapError::BadType {
                        path: path.to_path_buf(),
                        dataset: self.full.clone(),
                        expected: "integers up to 2^63 - 1 (read as i64)".into(),
                        found: format!("u64 value {v} at row {}", s + k),
                    })?;
                    out.push(v);
                }
            } else {
                let a = self
                    .ds
                    .read_slice_1d::<i64, _>(s..e)
                    .map_err(h5err(path, &self.full, &ctx))?;
                out.extend(a.iter().copied());
            }
            s = e;
        }
        Ok(())
    }
}
