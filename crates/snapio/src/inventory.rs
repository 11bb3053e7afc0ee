//! What a snapshot holds, in words, for `upsample inspect`.

use std::fmt;
use std::path::{Path, PathBuf};

use hdf5::types::TypeDescriptor;

use crate::discover::open_h5;
use crate::error::{h5err, Result};
use crate::fields::dtype_name;
use crate::header::{open_header_group, Layout};
use crate::snapshot::Snapshot;

/// One dataset of a particle type, for [`Inventory`].
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInfo {
    /// Dataset name inside `PartTypeN`.
    pub name: String,
    /// Shape in the file where it was found (first file holding that type).
    pub shape: Vec<usize>,
    /// Element type, in words (e.g. `f32`, `u64`).
    pub dtype: String,
}

/// What a snapshot holds, for `upsample inspect`.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// Detected layout.
    pub layout: Layout,
    /// Files of the snapshot.
    pub files: Vec<PathBuf>,
    /// Total particle counts per type (all files).
    pub counts: [u64; 6],
    /// Per type present: (type index, datasets of the first file that holds that type).
    pub datasets: Vec<(usize, Vec<DatasetInfo>)>,
    /// Header attributes of the first file: (name, printable value); GADGET-4 `Parameters` too.
    pub header_attributes: Vec<(String, String)>,
    /// How code units are converted, one rule per line.
    pub units: Vec<String>,
    /// AREPO/TNG wind particles in PartType4 (formation time <= 0); `None` for other layouts.
    pub winds: Option<u64>,
    /// Conventions and defaults applied while reading the header.
    pub notes: Vec<String>,
}

impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "layout: {}", self.layout)?;
        writeln!(f, "files ({}):", self.files.len())?;
        for p in &self.files {
            writeln!(f, "  {}", p.display())?;
        }
        writeln!(f, "particles per type: {:?}", self.counts)?;
        for (t, ds) in &self.datasets {
            writeln!(f, "PartType{t}:")?;
            for d in ds {
                writeln!(f, "  {:<28} {:?} {}", d.name, d.shape, d.dtype)?;
            }
        }
        writeln!(f, "header:")?;
        for (k, v) in &self.header_attributes {
            writeln!(f, "  {k} = {v}")?;
        }
        writeln!(f, "units:")?;
        for u in &self.units {
            writeln!(f, "  {u}")?;
        }
        if let Some(w) = self.winds {
            writeln!(f, "wind particles in PartType4: {w}")?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

impl Snapshot {
    /// Describes the snapshot: counts, datasets per type, header attributes, unit rules, winds.
    pub fn inventory(&self) -> Result<Inventory> {
        let mut datasets: Vec<(usize, Vec<DatasetInfo>)> = Vec::new();
        let mut winds: Option<u64> = if self.layout == Layout::ArepoTng {
            Some(0)
        } else {
            None
        };
        let first = &self.files[0];
        let f0 = open_h5(first)?;
        let mut header_attributes = Vec::new();
        let hdr = open_header_group(first, &f0)?;
        attrs_printable(first, &hdr, "", &mut header_attributes)?;
        if f0.link_exists("Parameters") {
            let p = f0
                .group("Parameters")
                .map_err(h5err(first, "Parameters", "opening group"))?;
            attrs_printable(first, &p, "Parameters/", &mut header_attributes)?;
        }
        drop(hdr);
        drop(f0);
        for path in &self.files {
            let file = open_h5(path)?;
            for t in 0..6 {
                let gname = format!("PartType{t}");
                if !file.link_exists(&gname) {
                    continue;
                }
                let g = file
                    .group(&gname)
                    .map_err(h5err(path, &gname, "opening group"))?;
                if t == 4 {
                    if let Some(w) = winds.as_mut() {
                        if g.link_exists("GFM_StellarFormationTime") {
                            let ds = g.dataset("GFM_StellarFormationTime").map_err(h5err(
                                path,
                                "PartType4/GFM_StellarFormationTime",
                                "opening dataset",
                            ))?;
                            let n = ds.shape().first().copied().unwrap_or(0);
                            let mut s = 0;
                            while s < n {
                                let e = (s + (1 << 20)).min(n);
                                let a = ds.read_slice_1d::<f64, _>(s..e).map_err(h5err(
                                    path,
                                    "PartType4/GFM_StellarFormationTime",
                                    "reading",
                                ))?;
                                *w += a.iter().filter(|&&x| x <= 0.0).count() as u64;
                                s = e;
                            }
                        }
                    }
                }
                if datasets.iter().any(|(k, _)| *k == t) {
                    continue;
                }
                let mut infos = Vec::new();
                let mut names =
                    g.member_names()
                        .map_err(h5err(path, &gname, "listing datasets"))?;
                names.sort();
                for name in names {
                    if let Ok(ds) = g.dataset(&name) {
                        let dtype = ds
                            .dtype()
                            .and_then(|d| d.to_descriptor())
                            .map(|d| dtype_name(&d))
                            .unwrap_or_else(|_| "?".into());
                        infos.push(DatasetInfo {
                            name,
                            shape: ds.shape(),
                            dtype,
                        });
                    }
                }
                datasets.push((t, infos));
            }
        }
        datasets.sort_by_key(|(t, _)| *t);
        Ok(Inventory {
            layout: self.layout,
            files: self.files.clone(),
            counts: self.header.num_part_total,
            datasets,
            header_attributes,
            units: self.unit_rules(),
            winds,
            notes: self.notes.clone(),
        })
    }
}

/// Appends (prefix+name, printable value) for every attribute of `loc`.
fn attrs_printable(
    path: &Path,
    loc: &hdf5::Location,
    prefix: &str,
    out: &mut Vec<(String, String)>,
) -> Result<()> {
    let mut names = loc
        .attr_names()
        .map_err(h5err(path, prefix, "listing attributes"))?;
    names.sort();
    for name in names {
        let value = match loc.attr(&name) {
            Ok(a) => printable(&a),
            Err(e) => format!("<unreadable: {e}>"),
        };
        out.push((format!("{prefix}{name}"), value));
    }
    Ok(())
}

/// A float for people: plain between 1e-4 and 1e7, scientific outside.
fn format_float(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 || (1e-4..1e7).contains(&a) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

fn printable(a: &hdf5::Attribute) -> String {
    let desc = match a.dtype().and_then(|d| d.to_descriptor()) {
        Ok(d) => d,
        Err(e) => return format!("<unreadable type: {e}>"),
    };
    let join = |v: Vec<String>| {
        if v.len() == 1 {
            v.into_iter().next().unwrap_or_default()
        } else {
            format!("[{}]", v.join(", "))
        }
    };
    match desc {
        TypeDescriptor::Float(_) => match a.read_raw::<f64>() {
            Ok(v) => join(v.iter().map(|x| format_float(*x)).collect()),
            Err(e) => format!("<{e}>"),
        },
        TypeDescriptor::Integer(_) | TypeDescriptor::Boolean => match a.read_raw::<i64>() {
            Ok(v) => join(v.iter().map(|x| format!("{x}")).collect()),
            Err(e) => format!("<{e}>"),
        },
        TypeDescriptor::Unsigned(_) => match a.read_raw::<u64>() {
            Ok(v) => join(v.iter().map(|x| format!("{x}")).collect()),
            Err(e) => format!("<{e}>"),
        },
        TypeDescriptor::VarLenUnicode => match a.read_raw::<hdf5::types::VarLenUnicode>() {
            Ok(v) => join(v.iter().map(|x| x.as_str().to_string()).collect()),
            Err(e) => format!("<{e}>"),
        },
        TypeDescriptor::VarLenAscii => match a.read_raw::<hdf5::types::VarLenAscii>() {
            Ok(v) => join(v.iter().map(|x| x.as_str().to_string()).collect()),
            Err(e) => format!("<{e}>"),
        },
        // HDF5 converts fixed-length strings between lengths; 1024 bytes hold any header text.
        TypeDescriptor::FixedAscii(_) => match a.read_raw::<hdf5::types::FixedAscii<1024>>() {
            Ok(v) => join(v.iter().map(|x| x.as_str().trim().to_string()).collect()),
            Err(e) => format!("<{e}>"),
        },
        TypeDescriptor::FixedUnicode(_) => match a.read_raw::<hdf5::types::FixedUnicode<1024>>() {
            Ok(v) => join(v.iter().map(|x| x.as_str().trim().to_string()).collect()),
            Err(e) => format!("<{e}>"),
        },
        other => format!("<{}>", dtype_name(&other)),
    }
}
