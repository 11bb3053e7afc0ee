//! Opening snapshots (single and multi-file), layout detection, streaming star reads, inventory.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use hdf5::types::TypeDescriptor;

use crate::error::{h5err, Result, SnapError};
use crate::header::{open_header_group, read_header, read_this_file_counts, Header, Layout};
use crate::particles::{ReadOptions, ReadReport, StarParticles};

/// HDF5 format signature (first 8 bytes of the superblock).
const HDF5_SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];

/// An opened snapshot: its files, layout and header. Particle data is read on demand.
#[derive(Debug, Clone)]
pub struct Snapshot {
    files: Vec<PathBuf>,
    layout: Layout,
    header: Header,
    notes: Vec<String>,
}

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

/// Splits `snap_099.3.hdf5` into (`snap_099`, Some(3), `hdf5`); `snap_099.hdf5` into (`snap_099`, None, `hdf5`).
fn parse_name(name: &str) -> Option<(String, Option<u32>, String)> {
    let (stem, ext) = name.rsplit_once('.')?;
    if ext != "hdf5" && ext != "h5" {
        return None;
    }
    if let Some((base, idx)) = stem.rsplit_once('.') {
        if !idx.is_empty() && idx.chars().all(|c| c.is_ascii_digit()) {
            if let Ok(i) = idx.parse::<u32>() {
                return Some((base.to_string(), Some(i), ext.to_string()));
            }
        }
    }
    Some((stem.to_string(), None, ext.to_string()))
}

/// A snapshot-like file in a folder: (path, base name, file index, extension).
type NamedFile = (PathBuf, String, Option<u32>, String);

fn list_dir(dir: &Path) -> Result<Vec<NamedFile>> {
    let rd = std::fs::read_dir(dir).map_err(|source| SnapError::Io {
        path: dir.to_path_buf(),
        context: "listing folder".into(),
        error: source,
    })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|source| SnapError::Io {
            path: dir.to_path_buf(),
            context: "listing folder".into(),
            error: source,
        })?;
        let p = e.path();
        if !p.is_file() {
            continue;
        }
        if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
            if let Some((b, i, x)) = parse_name(name) {
                out.push((p.clone(), b, i, x));
            }
        }
    }
    Ok(out)
}

/// Members `<base>.<i>.<ext>` of a multi-file set in `dir`, sorted by index, checked contiguous from 0.
fn indexed_set(given: &Path, dir: &Path, base: &str, ext: &str) -> Result<Vec<PathBuf>> {
    let mut members: Vec<(u32, PathBuf)> = list_dir(dir)?
        .into_iter()
        .filter(|(_, b, i, x)| b == base && i.is_some() && x == ext)
        .filter_map(|(p, _, i, _)| i.map(|i| (i, p)))
        .collect();
    members.sort();
    for (k, (i, _)) in members.iter().enumerate() {
        if *i as usize != k {
            return Err(SnapError::FileSet {
                path: given.to_path_buf(),
                detail: format!(
                    "file {base}.{k}.{ext} is missing from {} (files must be numbered 0..N-1)",
                    dir.display()
                ),
            });
        }
    }
    Ok(members.into_iter().map(|(_, p)| p).collect())
}

/// Finds the files of a snapshot from one file name, a missing single-file name, or a folder.
pub fn discover_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        let entries = list_dir(path)?;
        let mut bases: Vec<(String, String)> = entries
            .iter()
            .map(|(_, b, _, x)| (b.clone(), x.clone()))
            .collect();
        bases.sort();
        bases.dedup();
        return match bases.len() {
            0 => Err(SnapError::NotFound {
                path: path.to_path_buf(),
                expected: "a folder holding snapshot files named <base>.hdf5 or <base>.<i>.hdf5"
                    .into(),
            }),
            1 => {
                let (b, x) = &bases[0];
                let set = indexed_set(path, path, b, x)?;
                if set.is_empty() {
                    Ok(entries.into_iter().map(|e| e.0).collect())
                } else {
                    Ok(set)
                }
            }
            _ => Err(SnapError::FileSet {
                path: path.to_path_buf(),
                detail: format!(
                    "folder holds several snapshots ({}); give one file name",
                    bases
                        .iter()
                        .map(|(b, x)| format!("{b}.*.{x}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        };
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if path.is_file() {
        return match parse_name(name) {
            Some((base, Some(_), ext)) => indexed_set(path, &dir, &base, &ext),
            _ => Ok(vec![path.to_path_buf()]),
        };
    }
    // Not there: `snap_099.hdf5` may name the set `snap_099.0.hdf5`, `snap_099.1.hdf5`, ...
    if let Some((base, None, ext)) = parse_name(name) {
        if dir.is_dir() {
            let set = indexed_set(path, &dir, &base, &ext)?;
            if !set.is_empty() {
                return Ok(set);
            }
        }
    }
    Err(SnapError::NotFound {
        path: path.to_path_buf(),
        expected: "a snapshot file (or <name>.0.hdf5 ... of a multi-file set, or a snapdir folder)"
            .into(),
    })
}

/// Checks the HDF5 signature (at offset 0, 512, 1024, ... as HDF5 allows a user block).
fn check_signature(path: &Path) -> Result<()> {
    let mut f = std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SnapError::NotFound {
                path: path.to_path_buf(),
                expected: "a snapshot file".into(),
            }
        } else {
            SnapError::Io {
                path: path.to_path_buf(),
                context: "opening file".into(),
                error: source,
            }
        }
    })?;
    let mut head = vec![0u8; 1 << 16];
    let mut n = 0;
    loop {
        let k = f.read(&mut head[n..]).map_err(|source| SnapError::Io {
            path: path.to_path_buf(),
            context: "reading file signature".into(),
            error: source,
        })?;
        if k == 0 || n + k == head.len() {
            n += k;
            break;
        }
        n += k;
    }
    let mut off = 0usize;
    while off + 8 <= n {
        if head[off..off + 8] == HDF5_SIGNATURE {
            return Ok(());
        }
        off = if off == 0 { 512 } else { off * 2 };
    }
    Err(SnapError::NotHdf5 {
        path: path.to_path_buf(),
    })
}

pub(crate) fn open_h5(path: &Path) -> Result<hdf5::File> {
    check_signature(path)?;
    hdf5::File::open(path).map_err(h5err(
        path,
        "/",
        "opening HDF5 file (truncated or corrupt?)",
    ))
}

/// The PartType4 group of a file whose header counts `n` > 0 star particles.
fn star_group(path: &Path, file: &hdf5::File, n: u64) -> Result<hdf5::Group> {
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

fn pt4_names(path: &Path, file: &hdf5::File) -> Result<Option<Vec<String>>> {
    if !file.link_exists("PartType4") {
        return Ok(None);
    }
    let g = file
        .group("PartType4")
        .map_err(h5err(path, "PartType4", "opening group"))?;
    Ok(Some(g.member_names().map_err(h5err(
        path,
        "PartType4",
        "listing datasets",
    ))?))
}

fn has_attr(loc: &hdf5::Location, name: &str) -> bool {
    loc.attr_names()
        .map(|v| v.iter().any(|n| n == name))
        .unwrap_or(false)
}

/// Decides the layout from the first file (and PartType4 of the first file that has one).
fn detect_layout(path: &Path, file: &hdf5::File, pt4: Option<&[String]>) -> Result<Layout> {
    let hdr = open_header_group(path, file)?;
    let has = |n: &str| pt4.map(|v| v.iter().any(|x| x == n)).unwrap_or(false);
    if has_attr(&hdr, "GIZMO_version") {
        return Ok(Layout::GizmoFire);
    }
    if has("GFM_StellarFormationTime") || has("GFM_InitialMass") || has("GFM_Metallicity") {
        return Ok(Layout::ArepoTng);
    }
    let params = if file.link_exists("Parameters") {
        file.group("Parameters").ok()
    } else {
        None
    };
    let params_cosmo = params
        .as_ref()
        .map(|p| has_attr(p, "HubbleParam") || has_attr(p, "Omega0"))
        .unwrap_or(false);
    if params_cosmo && !has_attr(&hdr, "HubbleParam") {
        return Ok(Layout::Gadget4);
    }
    if has_attr(&hdr, "ComovingIntegrationOn") || has("StellarFormationTime") {
        return Ok(Layout::GizmoFire);
    }
    if params_cosmo && file.link_exists("Config") {
        // AREPO writes HubbleParam in both Header and Parameters.
        return Ok(Layout::ArepoTng);
    }
    Err(SnapError::UnknownLayout {
        path: path.to_path_buf(),
        looked_for: "GADGET-4 (`Parameters` group with HubbleParam/Omega0, none in Header), AREPO/TNG \
                     (PartType4/GFM_StellarFormationTime, GFM_InitialMass or GFM_Metallicity), \
                     GIZMO/FIRE (Header GIZMO_version or ComovingIntegrationOn, PartType4/StellarFormationTime)"
            .into(),
    })
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
enum Want {
    Float,
    Integer,
}

/// A PartType4 dataset checked for type and shape.
struct Field {
    ds: hdf5::Dataset,
    name: String,
    /// Columns (1 for 1-D).
    width: usize,
    /// Whether 2-D.
    two_d: bool,
    elem: usize,
}

fn open_field(
    path: &Path,
    g: &hdf5::Group,
    name: &str,
    n: u64,
    want: Want,
    width: Option<usize>,
) -> Result<Option<Field>> {
    let full = format!("PartType4/{name}");
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
        return Err(SnapError::BadType {
            path: path.to_path_buf(),
            dataset: full,
            expected: match want {
                Want::Float => "floating point (f32 or f64)".into(),
                Want::Integer => "integer".into(),
            },
            found: dtype_name(&desc),
        });
    }
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
        elem: dt.size(),
    }))
}

fn require(path: &Path, f: Option<Field>, name: &str, expected: &str) -> Result<Field> {
    f.ok_or_else(|| SnapError::MissingDataset {
        path: path.to_path_buf(),
        dataset: format!("PartType4/{name}"),
        expected: expected.to_string(),
    })
}

impl Field {
    /// Reads rows `start..end` (all `width` columns, or column 0 of an N×k array) as f64.
    fn read_f64(&self, path: &Path, start: usize, end: usize, bytes: &mut u64) -> Result<Vec<f64>> {
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

    fn read_u64(&self, path: &Path, start: usize, end: usize, bytes: &mut u64) -> Result<Vec<u64>> {
        let a = self.ds.read_slice_1d::<u64, _>(start..end).map_err(h5err(
            path,
            &self.name,
            &format!("reading rows {start}..{end} as unsigned integers"),
        ))?;
        *bytes += (a.len() * self.elem) as u64;
        Ok(a.iter().copied().collect())
    }
}

fn check_finite(path: &Path, name: &str, v: &[f64], width: usize, row0: usize) -> Result<()> {
    if let Some(k) = v.iter().position(|x| !x.is_finite()) {
        return Err(SnapError::NonFinite {
            path: path.to_path_buf(),
            dataset: name.to_string(),
            row: (row0 + k / width) as u64,
            value: v[k],
        });
    }
    Ok(())
}

/// Rows per read of the integer-field readers.
const FIELD_CHUNK_ROWS: usize = 1 << 20;

/// A checked 1-D integer dataset: the dataset, its full name for errors, its length, whether u64.
struct IntColumn {
    ds: hdf5::Dataset,
    full: String,
    len: usize,
    unsigned_64: bool,
}

/// Opens `name` in `g` as a 1-D integer dataset of `n` rows (any length if `None`); `full` names
/// it in errors, `what` says what it holds and `rows_rule` where `n` comes from.
fn open_int_column(
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
    fn read_u64_into(&self, path: &Path, out: &mut Vec<u64>) -> Result<()> {
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
    fn read_i64_into(&self, path: &Path, out: &mut Vec<i64>) -> Result<()> {
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

/// `ParticleIDs` and the integer dataset `name` at the root of a side HDF5 file (e.g. a halo finder's membership list), all rows.
///
/// Both must be 1-D integer datasets (any of i8..i64, u8..u64) of the same length; the values
/// are returned as i64 for a join by ID ([`Snapshot::read_star_field_i64`] for the snapshot's own).
pub fn read_side_field_i64(path: &Path, name: &str) -> Result<(Vec<u64>, Vec<i64>)> {
    if !path.is_file() {
        return Err(SnapError::NotFound {
            path: path.to_path_buf(),
            expected: format!(
                "an HDF5 file with root datasets `ParticleIDs` and `{name}` (integers, same length)"
            ),
        });
    }
    let file = open_h5(path)?;
    let ids = open_int_column(
        path,
        &file,
        "ParticleIDs",
        "ParticleIDs",
        None,
        "integer particle IDs, one per row of the field",
        "",
    )?;
    let n = ids.len as u64;
    let field = open_int_column(
        path,
        &file,
        name,
        name,
        Some(n),
        "integer values, one per particle ID",
        &format!("`ParticleIDs` ({n} rows)"),
    )?;
    let (mut id, mut values) = (Vec::new(), Vec::new());
    ids.read_u64_into(path, &mut id)?;
    field.read_i64_into(path, &mut values)?;
    Ok((id, values))
}

impl Snapshot {
    /// Opens a snapshot: one file, any one file of a multi-file set, or a `snapdir_XXX/` folder.
    pub fn open(path: impl AsRef<Path>) -> Result<Snapshot> {
        let path = path.as_ref();
        let files = discover_files(path)?;
        let first = &files[0];
        let f0 = open_h5(first)?;
        let mut pt4 = pt4_names(first, &f0)?;
        if pt4.is_none() {
            for p in files.iter().skip(1) {
                let f = open_h5(p)?;
                pt4 = pt4_names(p, &f)?;
                if pt4.is_some() {
                    break;
                }
            }
        }
        let layout = detect_layout(first, &f0, pt4.as_deref())?;
        let (header, mut notes) = read_header(first, &f0, layout)?;
        if header.num_files as usize != files.len() {
            return Err(SnapError::FileSet {
                path: path.to_path_buf(),
                detail: format!(
                    "Header/NumFilesPerSnapshot = {} but {} file(s) found: {}",
                    header.num_files,
                    files.len(),
                    files
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        notes.insert(0, format!("layout detected: {layout}"));
        Ok(Snapshot {
            files,
            layout,
            header,
            notes,
        })
    }

    /// Layout detected.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Header of the first file (code units).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Files of the snapshot, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Notes from opening (layout, defaults applied to the header).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Unit rules applied, one line each.
    pub fn unit_rules(&self) -> Vec<String> {
        let h = &self.header;
        let mut v = vec![
            format!(
                "Coordinates × {:.6e} → physical kpc (UnitLength_in_cm/3.085678e21 = {:.6}, × a = {:.6}, / h = {:.6})",
                h.length_to_kpc(),
                h.unit_length_cm / crate::header::KPC_CM,
                h.scale_factor,
                h.hubble_param
            ),
            format!(
                "Velocities × {:.6e} → physical peculiar km/s (UnitVelocity_in_cm_per_s/1e5 × sqrt(a))",
                h.velocity_to_kms()
            ),
            format!(
                "Masses × {:.6e} → Msun (UnitMass_in_g/1.989e33 / h)",
                h.mass_to_msun()
            ),
        ];
        v.push(if h.cosmological {
            format!(
                "{} is a scale factor → age via flat ΛCDM (h = {}, Ωm = {}, ΩΛ = {}); t(snapshot) = {:.4} Gyr",
                self.layout.formation_time_dataset(),
                h.hubble_param,
                h.omega0,
                h.omega_lambda,
                h.time_gyr()
            )
        } else {
            format!(
                "{} is code time → age = (Time − t_form) × {:.6} Gyr (UnitLength/UnitVelocity / h)",
                self.layout.formation_time_dataset(),
                h.time_unit_gyr()
            )
        });
        v.push(match self.layout {
            Layout::GizmoFire => "Metallicity: column 0 (total metal mass fraction) of N×k".into(),
            Layout::ArepoTng => "GFM_Metallicity: total metal mass fraction".into(),
            Layout::Gadget4 => "Metallicity: total metal mass fraction (0 if absent)".into(),
        });
        v.push(match self.layout {
            Layout::ArepoTng => "GFM_InitialMass × mass factor → initial mass in Msun; GFM_StellarFormationTime <= 0: wind particle, dropped".into(),
            _ => "no initial mass stored: initial mass = current mass".into(),
        });
        v
    }

    /// Reads the star particles (PartType4) in physical units, streaming `opts.chunk_len` rows at a time.
    ///
    /// Region selection and wind filtering happen per chunk, so memory stays at the kept stars plus one chunk.
    pub fn read_stars(&self, opts: &ReadOptions) -> Result<(StarParticles, ReadReport)> {
        let chunk = opts.chunk_len.max(1);
        let h = &self.header;
        let lf = h.length_to_kpc();
        let vf = h.velocity_to_kms();
        let mf = h.mass_to_msun();
        let layout = self.layout;
        let mut report = ReadReport {
            files: self.files.clone(),
            notes: self.notes.clone(),
            ..Default::default()
        };
        // Without a region every non-wind star is kept: reserve once.
        let mut out = if opts.region.is_none() {
            StarParticles::with_capacity(usize::try_from(h.num_part_total[4]).unwrap_or(0))
        } else {
            StarParticles::default()
        };
        let mut total_this_file = 0u64;
        let mut negative_ages = 0u64;
        let mut metal_missing = false;
        let t_snap = h.time_gyr();
        for path in &self.files {
            let file = open_h5(path)?;
            let counts = read_this_file_counts(path, &file)?;
            let n = counts[4];
            total_this_file += n;
            if n == 0 {
                continue;
            }
            let g = star_group(path, &file, n)?;
            let coords = require(
                path,
                open_field(path, &g, "Coordinates", n, Want::Float, Some(3))?,
                "Coordinates",
                &format!("({n}, 3) positions in code length units"),
            )?;
            let vels = require(
                path,
                open_field(path, &g, "Velocities", n, Want::Float, Some(3))?,
                "Velocities",
                &format!("({n}, 3) velocities in code units"),
            )?;
            let ids = require(
                path,
                open_field(path, &g, "ParticleIDs", n, Want::Integer, None)?,
                "ParticleIDs",
                &format!("({n},) integer particle IDs"),
            )?;
            let table_mass = h.mass_table[4];
            let masses = if table_mass != 0.0 {
                None
            } else {
                Some(require(
                    path,
                    open_field(path, &g, "Masses", n, Want::Float, None)?,
                    "Masses",
                    &format!("({n},) masses, since Header/MassTable[4] = 0"),
                )?)
            };
            let tname = layout.formation_time_dataset();
            let tform = require(
                path,
                open_field(path, &g, tname, n, Want::Float, None)?,
                tname,
                &format!("({n},) formation times (scale factor if cosmological)"),
            )?;
            let mname = layout.metallicity_dataset();
            let metal = open_field(path, &g, mname, n, Want::Float, None)?;
            let metal = match (metal, layout) {
                (Some(m), _) => Some(m),
                (None, Layout::Gadget4) => {
                    metal_missing = true;
                    None
                }
                (None, _) => {
                    return Err(SnapError::MissingDataset {
                        path: path.clone(),
                        dataset: format!("PartType4/{mname}"),
                        expected: format!(
                            "({n},) metal mass fractions{}",
                            if layout == Layout::GizmoFire {
                                " or (N, 11) with the total in column 0"
                            } else {
                                ""
                            }
                        ),
                    })
                }
            };
            let imass = match layout.initial_mass_dataset() {
                Some(iname) => Some(require(
                    path,
                    open_field(path, &g, iname, n, Want::Float, None)?,
                    iname,
                    &format!("({n},) initial masses"),
                )?),
                None => None,
            };
            let n = n as usize;
            let mut start = 0usize;
            while start < n {
                let end = (start + chunk).min(n);
                let m = end - start;
                let b = &mut report.bytes_read;
                let pos = coords.read_f64(path, start, end, b)?;
                check_finite(path, &coords.name, &pos, 3, start)?;
                report.rows_read += m as u64;
                let mut keep: Vec<bool> = vec![true; m];
                if let Some(region) = &opts.region {
                    for (j, k) in keep.iter_mut().enumerate() {
                        let p = [pos[3 * j] * lf, pos[3 * j + 1] * lf, pos[3 * j + 2] * lf];
                        *k = region.contains(p);
                    }
                    if !keep.iter().any(|&k| k) {
                        start = end;
                        continue;
                    }
                }
                let vel = vels.read_f64(path, start, end, b)?;
                check_finite(path, &vels.name, &vel, 3, start)?;
                let id = ids.read_u64(path, start, end, b)?;
                let mass = match &masses {
                    Some(f) => {
                        let v = f.read_f64(path, start, end, b)?;
                        check_finite(path, &f.name, &v, 1, start)?;
                        v
                    }
                    None => vec![table_mass; m],
                };
                let tf = tform.read_f64(path, start, end, b)?;
                check_finite(path, &tform.name, &tf, 1, start)?;
                let z = match &metal {
                    Some(f) => f.read_f64(path, start, end, b)?,
                    None => vec![0.0; m],
                };
                let im = match &imass {
                    Some(f) => {
                        let v = f.read_f64(path, start, end, b)?;
                        check_finite(path, &f.name, &v, 1, start)?;
                        v
                    }
                    None => mass.clone(),
                };
                for j in 0..m {
                    if layout == Layout::ArepoTng && tf[j] <= 0.0 {
                        report.winds_dropped += 1;
                        continue;
                    }
                    if !keep[j] {
                        continue;
                    }
                    out.position
                        .push([pos[3 * j] * lf, pos[3 * j + 1] * lf, pos[3 * j + 2] * lf]);
                    out.velocity
                        .push([vel[3 * j] * vf, vel[3 * j + 1] * vf, vel[3 * j + 2] * vf]);
                    out.mass.push(mass[j] * mf);
                    out.initial_mass.push(im[j] * mf);
                    out.id.push(id[j]);
                    let age = if h.cosmological {
                        t_snap
                            - crate::header::cosmic_time_gyr(
                                tf[j],
                                h.hubble_param,
                                h.omega0,
                                h.omega_lambda,
                            )
                    } else {
                        h.age_gyr(tf[j])
                    };
                    if age < 0.0 {
                        negative_ages += 1;
                    }
                    out.age.push(age.max(0.0));
                    out.metallicity.push(z[j]);
                }
                start = end;
            }
        }
        if total_this_file != h.num_part_total[4] {
            return Err(SnapError::FileSet {
                path: self.files[0].clone(),
                detail: format!(
                    "sum of Header/NumPart_ThisFile[4] over {} file(s) is {total_this_file} but Header/NumPart_Total[4] (+HighWord) is {}",
                    self.files.len(),
                    h.num_part_total[4]
                ),
            });
        }
        if layout == Layout::ArepoTng && report.winds_dropped > 0 {
            report.notes.push(format!(
                "{} wind particles (GFM_StellarFormationTime <= 0) dropped",
                report.winds_dropped
            ));
        }
        if negative_ages > 0 {
            report.notes.push(format!(
                "{negative_ages} stars formed after the snapshot time (negative age): age set to 0"
            ));
        }
        if metal_missing {
            report
                .notes
                .push("PartType4/Metallicity absent: metallicity set to 0".into());
        }
        if layout.initial_mass_dataset().is_none() {
            report.notes.push(format!(
                "{layout} stores no initial stellar mass: initial_mass = current mass"
            ));
        }
        if h.mass_table[4] != 0.0 {
            report.notes.push(format!(
                "Header/MassTable[4] = {} (code units): all stars have that mass",
                h.mass_table[4]
            ));
        }
        report.stars_kept = out.len() as u64;
        if out.is_empty() {
            let detail = if total_this_file == 0 {
                "Header/NumPart_Total[4] = 0: no PartType4 in any file".to_string()
            } else if report.winds_dropped == total_this_file {
                format!("all {total_this_file} PartType4 particles are wind particles")
            } else if let Some(r) = &opts.region {
                format!(
                    "none of the {total_this_file} star particles lies inside the region centre {:?} kpc, radius {} kpc",
                    r.center, r.radius
                )
            } else {
                "nothing kept".into()
            };
            return Err(SnapError::NoStars {
                path: self.files[0].clone(),
                detail,
            });
        }
        Ok((out, report))
    }

    /// ParticleIDs and the integer dataset `name` of the star particles (PartType4), all rows of every file in order (wind particles included: join by ID).
    ///
    /// `name` may have any integer element type (i8..i64, u8..u64) and must be 1-D with one row
    /// per particle in every file; values are returned as i64.
    pub fn read_star_field_i64(&self, name: &str) -> Result<(Vec<u64>, Vec<i64>)> {
        let full = format!("PartType4/{name}");
        let (mut ids, mut values) = (Vec::new(), Vec::new());
        let mut total = 0u64;
        for path in &self.files {
            let file = open_h5(path)?;
            let n = read_this_file_counts(path, &file)?[4];
            total += n;
            if n == 0 {
                continue;
            }
            let g = star_group(path, &file, n)?;
            let rule = format!("Header/NumPart_ThisFile[4] = {n}");
            let id_col = open_int_column(
                path,
                &g,
                "PartType4/ParticleIDs",
                "ParticleIDs",
                Some(n),
                "integer particle IDs",
                &rule,
            )?;
            let col = open_int_column(
                path,
                &g,
                &full,
                name,
                Some(n),
                "integer values, one per star particle, to group the stars by",
                &rule,
            )?;
            id_col.read_u64_into(path, &mut ids)?;
            col.read_i64_into(path, &mut values)?;
        }
        if total != self.header.num_part_total[4] {
            return Err(SnapError::FileSet {
                path: self.files[0].clone(),
                detail: format!(
                    "sum of Header/NumPart_ThisFile[4] over {} file(s) is {total} but Header/NumPart_Total[4] (+HighWord) is {}",
                    self.files.len(),
                    self.header.num_part_total[4]
                ),
            });
        }
        Ok((ids, values))
    }

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
