//! Streaming writer and reader of the output star catalogue (`catalog.hdf5`).

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use hdf5::{Extent, SimpleExtents};

use crate::error::{h5err, Result, SnapError};
use crate::table::{TableColumn, TableValues};

/// Rows per HDF5 chunk of every catalogue dataset.
pub const CATALOG_CHUNK_ROWS: usize = 65536;
/// Deflate (gzip) level of the catalogue datasets (with the shuffle filter); 1 = fast.
pub const CATALOG_DEFLATE_LEVEL: u8 = 1;

/// A batch of output stars (galaxy frame): kpc, km/s, Msun, Gyr.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StarBatch {
    /// Positions in kpc (galaxy frame).
    pub position: Vec<[f64; 3]>,
    /// Velocities in km/s (galaxy frame).
    pub velocity: Vec<[f64; 3]>,
    /// Current stellar masses in Msun.
    pub mass: Vec<f64>,
    /// Initial stellar masses in Msun.
    pub initial_mass: Vec<f64>,
    /// Ages in Gyr.
    pub age: Vec<f64>,
    /// Total metal mass fraction (dimensionless).
    pub metallicity: Vec<f64>,
    /// `ParticleIDs` of the parent snapshot particle.
    pub parent_id: Vec<u64>,
    /// Cluster index the star was sampled in.
    pub cluster: Vec<u32>,
    /// `ParticleChildIDsNumber` of the parent (FIRE); empty when the snapshot has none. Written
    /// only by a writer made with [`CatalogWriter::create_with_parent_identity`].
    pub parent_child_id: Vec<u32>,
    /// `ParticleIDGenerationNumber` of the parent (FIRE); empty when the snapshot has none.
    pub parent_generation: Vec<u32>,
}

impl StarBatch {
    /// Number of stars.
    pub fn len(&self) -> usize {
        self.mass.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.mass.is_empty()
    }

    /// Checks all arrays have the same length; returns it.
    pub fn check_lengths(&self) -> Result<usize> {
        let n = self.mass.len();
        let lens = [
            ("position", self.position.len()),
            ("velocity", self.velocity.len()),
            ("initial_mass", self.initial_mass.len()),
            ("age", self.age.len()),
            ("metallicity", self.metallicity.len()),
            ("parent_id", self.parent_id.len()),
            ("cluster", self.cluster.len()),
        ];
        for (name, l) in lens {
            if l != n {
                return Err(SnapError::InvalidInput(format!(
                    "StarBatch: `{name}` has {l} entries but `mass` has {n}"
                )));
            }
        }
        for (name, l) in [
            ("parent_child_id", self.parent_child_id.len()),
            ("parent_generation", self.parent_generation.len()),
        ] {
            if l != 0 && l != n {
                return Err(SnapError::InvalidInput(format!(
                    "StarBatch: `{name}` has {l} entries but `mass` has {n} (0 = absent)"
                )));
            }
        }
        Ok(n)
    }

    /// Whether the batch carries the parents' child or generation numbers.
    pub fn has_parent_identity(&self) -> bool {
        !self.parent_child_id.is_empty() || !self.parent_generation.is_empty()
    }

    /// Appends the rows of `o` (same units) to this batch.
    pub fn extend(&mut self, o: &StarBatch) {
        let (n, m) = (self.len(), o.len());
        for (mine, theirs) in [
            (&mut self.parent_child_id, &o.parent_child_id),
            (&mut self.parent_generation, &o.parent_generation),
        ] {
            crate::particles::extend_optional_column(mine, n, theirs, m);
        }
        self.position.extend_from_slice(&o.position);
        self.velocity.extend_from_slice(&o.velocity);
        self.mass.extend_from_slice(&o.mass);
        self.initial_mass.extend_from_slice(&o.initial_mass);
        self.age.extend_from_slice(&o.age);
        self.metallicity.extend_from_slice(&o.metallicity);
        self.parent_id.extend_from_slice(&o.parent_id);
        self.cluster.extend_from_slice(&o.cluster);
    }

    /// Removes and returns the first `k` rows.
    fn split_front(&mut self, k: usize) -> StarBatch {
        let rest = StarBatch {
            position: self.position.split_off(k),
            velocity: self.velocity.split_off(k),
            mass: self.mass.split_off(k),
            initial_mass: self.initial_mass.split_off(k),
            age: self.age.split_off(k),
            metallicity: self.metallicity.split_off(k),
            parent_id: self.parent_id.split_off(k),
            cluster: self.cluster.split_off(k),
            parent_child_id: split_optional(&mut self.parent_child_id, k),
            parent_generation: split_optional(&mut self.parent_generation, k),
        };
        std::mem::replace(self, rest)
    }
}

/// `split_off(k)` of a column that may be absent (empty).
fn split_optional(v: &mut Vec<u32>, k: usize) -> Vec<u32> {
    if v.is_empty() {
        Vec::new()
    } else {
        v.split_off(k)
    }
}

/// Value of a root attribute of the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// UTF-8 string (variable length; h5py reads it as `str`).
    Str(String),
    /// 64-bit signed integer.
    Int(i64),
    /// 64-bit float.
    Float(f64),
    /// 1-D array of 64-bit floats.
    FloatArray(Vec<f64>),
}

/// Root attributes of the catalogue (frame, snapshot path, seed, configuration, version), filled by the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogMeta {
    /// (name, value) pairs written as root attributes.
    pub attributes: Vec<(String, AttrValue)>,
}

/// Writes one attribute on `loc`.
pub fn write_attr(path: &Path, loc: &hdf5::Location, name: &str, value: &AttrValue) -> Result<()> {
    let err = |e| h5err(path, &format!("attribute {name}"), "writing attribute")(e);
    match value {
        AttrValue::Str(s) => {
            let v: VarLenUnicode = s.parse().map_err(|e| {
                SnapError::InvalidInput(format!(
                    "attribute `{name}`: string not storable in HDF5: {e}"
                ))
            })?;
            loc.new_attr::<VarLenUnicode>()
                .create(name)
                .and_then(|a| a.write_scalar(&v))
                .map_err(err)
        }
        AttrValue::Int(i) => loc
            .new_attr::<i64>()
            .create(name)
            .and_then(|a| a.write_scalar(i))
            .map_err(err),
        AttrValue::Float(x) => loc
            .new_attr::<f64>()
            .create(name)
            .and_then(|a| a.write_scalar(x))
            .map_err(err),
        AttrValue::FloatArray(v) => loc
            .new_attr::<f64>()
            .shape(v.len())
            .create(name)
            .and_then(|a| a.write_raw(v))
            .map_err(err),
    }
}

struct Datasets {
    position: hdf5::Dataset,
    velocity: hdf5::Dataset,
    mass: hdf5::Dataset,
    initial_mass: hdf5::Dataset,
    age: hdf5::Dataset,
    metallicity: hdf5::Dataset,
    parent_id: hdf5::Dataset,
    cluster: hdf5::Dataset,
    /// `parent_child_id` and `parent_generation`, in catalogues of FIRE snapshots with child IDs.
    parent_identity: Option<(hdf5::Dataset, hdf5::Dataset)>,
    /// Extra named columns declared at creation ([`CatalogWriter::create_with_columns`]).
    extra: Vec<(String, hdf5::Dataset)>,
}

/// Streaming catalogue writer: writes `<path>.tmp`, renamed to `path` by [`CatalogWriter::finish`].
///
/// Dropping a writer that was not finished removes the temporary file.
pub struct CatalogWriter {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<hdf5::File>,
    ds: Option<Datasets>,
    rows: u64,
    buf: StarBatch,
    /// Buffered rows of the extra columns, parallel to `buf`.
    extra_buf: Vec<TableValues>,
}

/// Creates (truncates) an HDF5 file whose objects record no modification times (datasets never
/// do, h5py's convention; the root group neither), so that the same content gives the same
/// bytes: a catalogue made with the same seed is byte-identical, whenever it was written.
pub(crate) fn create_untimed(path: &Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::with_options()
        .with_fcpl(|p| p.obj_track_times(false))
        .create(path)
}

fn create_ds<T: hdf5::H5Type>(
    path: &Path,
    file: &hdf5::File,
    name: &str,
    width: Option<usize>,
    units: &str,
) -> Result<hdf5::Dataset> {
    let b = file
        .new_dataset::<T>()
        .shuffle()
        .deflate(CATALOG_DEFLATE_LEVEL);
    let ds = match width {
        Some(w) => b
            .chunk((CATALOG_CHUNK_ROWS, w))
            .shape(SimpleExtents::from(vec![
                Extent::from(0..),
                Extent::from(w),
            ]))
            .create(name),
        None => b.chunk(CATALOG_CHUNK_ROWS).shape(0..).create(name),
    }
    .map_err(h5err(path, name, "creating dataset"))?;
    write_attr(path, &ds, "units", &AttrValue::Str(units.into()))?;
    Ok(ds)
}

/// Removes a file when dropped, unless disarmed.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl CatalogWriter {
    /// Temporary file name used while writing (`<path>.tmp`).
    pub fn temp_path(path: &Path) -> PathBuf {
        let mut s = path.as_os_str().to_os_string();
        s.push(".tmp");
        PathBuf::from(s)
    }

    /// Creates `<path>.tmp` with empty, chunked (65536 rows), deflated datasets and the root attributes.
    pub fn create(path: &Path, meta: &CatalogMeta) -> Result<Self> {
        Self::create_inner(path, meta, false, &[])
    }

    /// As [`CatalogWriter::create`], plus u32 datasets `parent_child_id` and `parent_generation`
    /// (the parents' FIRE `ParticleChildIDsNumber`/`ParticleIDGenerationNumber`; 0 for rows of
    /// batches without them). A catalogue made by [`CatalogWriter::create`] has neither.
    pub fn create_with_parent_identity(path: &Path, meta: &CatalogMeta) -> Result<Self> {
        Self::create_inner(path, meta, true, &[])
    }

    /// As [`CatalogWriter::create`] (with the parent identity columns when `parent_identity`),
    /// plus extra root datasets, one per entry of `columns`: its name, its `units` attribute
    /// (and `description` when not empty), and its element type given by the variant of its
    /// `values` (f64, (N, 3) f64, u32 or u8; the values themselves are ignored). Rows are then
    /// appended with [`CatalogWriter::append_with_columns`]. Without extra columns the file is
    /// byte-identical to the one [`CatalogWriter::create`] writes.
    pub fn create_with_columns(
        path: &Path,
        meta: &CatalogMeta,
        parent_identity: bool,
        columns: &[TableColumn],
    ) -> Result<Self> {
        Self::create_inner(path, meta, parent_identity, columns)
    }

    fn create_inner(
        path: &Path,
        meta: &CatalogMeta,
        parent_identity: bool,
        columns: &[TableColumn],
    ) -> Result<Self> {
        let tmp = Self::temp_path(path);
        let file = create_untimed(&tmp).map_err(h5err(&tmp, "/", "creating catalogue file"))?;
        // A failure below removes the half-made file (the writer owns it only at the end).
        let guard = RemoveOnDrop(Some(tmp.clone()));
        let mut w = CatalogWriter {
            path: path.to_path_buf(),
            tmp: tmp.clone(),
            file: None,
            ds: None,
            rows: 0,
            buf: StarBatch::default(),
            extra_buf: columns.iter().map(|c| c.values.empty_like()).collect(),
        };
        let ds = Datasets {
            position: create_ds::<f64>(&tmp, &file, "position", Some(3), "kpc")?,
            velocity: create_ds::<f64>(&tmp, &file, "velocity", Some(3), "km/s")?,
            mass: create_ds::<f64>(&tmp, &file, "mass", None, "Msun")?,
            initial_mass: create_ds::<f64>(&tmp, &file, "initial_mass", None, "Msun")?,
            age: create_ds::<f64>(&tmp, &file, "age", None, "Gyr")?,
            metallicity: create_ds::<f64>(
                &tmp,
                &file,
                "metallicity",
                None,
                "dimensionless (metal mass fraction)",
            )?,
            parent_id: create_ds::<u64>(
                &tmp,
                &file,
                "parent_id",
                None,
                "dimensionless (snapshot ParticleIDs)",
            )?,
            cluster: create_ds::<u32>(
                &tmp,
                &file,
                "cluster",
                None,
                "dimensionless (cluster index)",
            )?,
            parent_identity: None,
            extra: Vec::new(),
        };
        let mut ds = ds;
        if parent_identity {
            ds.parent_identity = Some((
                create_ds::<u32>(
                    &tmp,
                    &file,
                    "parent_child_id",
                    None,
                    "dimensionless (snapshot ParticleChildIDsNumber)",
                )?,
                create_ds::<u32>(
                    &tmp,
                    &file,
                    "parent_generation",
                    None,
                    "dimensionless (snapshot ParticleIDGenerationNumber)",
                )?,
            ));
        }
        for c in columns {
            let name = c.name.as_str();
            if file.link_exists(name) {
                return Err(SnapError::InvalidInput(format!(
                    "{}: extra column `{name}` is declared twice or shadows a catalogue dataset",
                    path.display()
                )));
            }
            let d = match &c.values {
                TableValues::Float(_) => create_ds::<f64>(&tmp, &file, name, None, &c.units)?,
                TableValues::Float3(_) => create_ds::<f64>(&tmp, &file, name, Some(3), &c.units)?,
                TableValues::UInt(_) => create_ds::<u32>(&tmp, &file, name, None, &c.units)?,
                TableValues::Byte(_) => create_ds::<u8>(&tmp, &file, name, None, &c.units)?,
            };
            if !c.description.is_empty() {
                write_attr(
                    &tmp,
                    &d,
                    "description",
                    &AttrValue::Str(c.description.clone()),
                )?;
            }
            ds.extra.push((c.name.clone(), d));
        }
        for (name, value) in &meta.attributes {
            write_attr(&tmp, &file, name, value)?;
        }
        w.file = Some(file);
        w.ds = Some(ds);
        guard.disarm();
        Ok(w)
    }

    /// Rows written or buffered so far.
    pub fn rows(&self) -> u64 {
        self.rows + self.buf.len() as u64
    }

    /// Appends a batch; full chunks are written, the remainder is buffered (at most one chunk).
    ///
    /// A batch carrying parent child/generation numbers is an error for a writer made without
    /// them ([`CatalogWriter::create`]): they would be lost silently.
    pub fn append(&mut self, batch: &StarBatch) -> Result<()> {
        self.append_with_columns(batch, &[])
    }

    /// Appends a batch and the rows of the extra columns declared at creation
    /// ([`CatalogWriter::create_with_columns`]), in their order, each with the batch's row count
    /// and its declared element type; full chunks are written, the rest buffered.
    pub fn append_with_columns(
        &mut self,
        batch: &StarBatch,
        columns: &[TableValues],
    ) -> Result<()> {
        let n = batch.check_lengths()?;
        if columns.len() != self.extra_buf.len() {
            return Err(SnapError::InvalidInput(format!(
                "{}: {} extra columns given but the catalogue was created with {}",
                self.path.display(),
                columns.len(),
                self.extra_buf.len()
            )));
        }
        let names: Vec<&str> = self
            .ds
            .as_ref()
            .map(|d| d.extra.iter().map(|(n, _)| n.as_str()).collect())
            .unwrap_or_default();
        for (k, c) in columns.iter().enumerate() {
            let name = names.get(k).copied().unwrap_or("?");
            if c.len() != n {
                return Err(SnapError::InvalidInput(format!(
                    "{}: extra column `{name}` has {} rows but the batch has {n}",
                    self.path.display(),
                    c.len()
                )));
            }
            if c.kind() != self.extra_buf[k].kind() {
                return Err(SnapError::InvalidInput(format!(
                    "{}: extra column `{name}` was declared {} but is given {}",
                    self.path.display(),
                    self.extra_buf[k].kind(),
                    c.kind()
                )));
            }
        }
        let has_columns = self
            .ds
            .as_ref()
            .is_some_and(|d| d.parent_identity.is_some());
        if batch.has_parent_identity() && !has_columns {
            return Err(SnapError::InvalidInput(format!(
                "{}: the batch carries parent child/generation numbers but the catalogue was \
                 created without those columns (use CatalogWriter::create_with_parent_identity)",
                self.path.display()
            )));
        }
        self.buf.extend(batch);
        for (mine, theirs) in self.extra_buf.iter_mut().zip(columns) {
            mine.extend_from(theirs);
        }
        let full = self.buf.len() / CATALOG_CHUNK_ROWS * CATALOG_CHUNK_ROWS;
        if full > 0 {
            let head = self.buf.split_front(full);
            let extra: Vec<TableValues> = self
                .extra_buf
                .iter_mut()
                .map(|c| c.split_front(full))
                .collect();
            self.write_rows(&head, &extra)?;
        }
        Ok(())
    }

    fn write_rows(&mut self, b: &StarBatch, extra: &[TableValues]) -> Result<()> {
        let n = b.len();
        if n == 0 {
            return Ok(());
        }
        let tmp = self.tmp.clone();
        let ds = self
            .ds
            .as_ref()
            .ok_or_else(|| SnapError::InvalidInput("CatalogWriter used after finish".into()))?;
        let s = self.rows as usize;
        let e = s + n;
        let flat = |v: &[[f64; 3]]| -> Vec<f64> { v.iter().flatten().copied().collect() };
        fn put2(
            tmp: &Path,
            d: &hdf5::Dataset,
            name: &str,
            v: Vec<f64>,
            s: usize,
            e: usize,
        ) -> Result<()> {
            d.resize((e, 3)).map_err(h5err(tmp, name, "resizing"))?;
            let a = ndarray::Array2::from_shape_vec((e - s, 3), v)
                .map_err(|err| SnapError::InvalidInput(format!("{name}: {err}")))?;
            d.write_slice(&a, (s..e, 0..3))
                .map_err(h5err(tmp, name, "writing rows"))
        }
        fn put1<T: hdf5::H5Type>(
            tmp: &Path,
            d: &hdf5::Dataset,
            name: &str,
            v: &[T],
            s: usize,
            e: usize,
        ) -> Result<()> {
            d.resize(e).map_err(h5err(tmp, name, "resizing"))?;
            d.write_slice(v, s..e)
                .map_err(h5err(tmp, name, "writing rows"))
        }
        put2(&tmp, &ds.position, "position", flat(&b.position), s, e)?;
        put2(&tmp, &ds.velocity, "velocity", flat(&b.velocity), s, e)?;
        put1(&tmp, &ds.mass, "mass", &b.mass, s, e)?;
        put1(
            &tmp,
            &ds.initial_mass,
            "initial_mass",
            &b.initial_mass,
            s,
            e,
        )?;
        put1(&tmp, &ds.age, "age", &b.age, s, e)?;
        put1(&tmp, &ds.metallicity, "metallicity", &b.metallicity, s, e)?;
        put1(&tmp, &ds.parent_id, "parent_id", &b.parent_id, s, e)?;
        put1(&tmp, &ds.cluster, "cluster", &b.cluster, s, e)?;
        if let Some((child, generation)) = &ds.parent_identity {
            let zeros = vec![0u32; n];
            let col = |v: &Vec<u32>| {
                if v.is_empty() {
                    zeros.clone()
                } else {
                    v.clone()
                }
            };
            put1(
                &tmp,
                child,
                "parent_child_id",
                &col(&b.parent_child_id),
                s,
                e,
            )?;
            put1(
                &tmp,
                generation,
                "parent_generation",
                &col(&b.parent_generation),
                s,
                e,
            )?;
        }
        for ((name, d), values) in ds.extra.iter().zip(extra) {
            match values {
                TableValues::Float(v) => put1(&tmp, d, name, v, s, e)?,
                TableValues::Float3(v) => put2(&tmp, d, name, flat(v), s, e)?,
                TableValues::UInt(v) => put1(&tmp, d, name, v, s, e)?,
                TableValues::Byte(v) => put1(&tmp, d, name, v, s, e)?,
            }
        }
        self.rows = e as u64;
        Ok(())
    }

    /// Writes buffered rows, closes the file and renames it to the final path; returns the row count.
    pub fn finish(mut self) -> Result<u64> {
        let rest = std::mem::take(&mut self.buf);
        let extra = std::mem::take(&mut self.extra_buf);
        self.write_rows(&rest, &extra)?;
        self.ds = None;
        if let Some(f) = self.file.take() {
            f.flush().map_err(h5err(&self.tmp, "/", "flushing"))?;
            f.close().map_err(h5err(&self.tmp, "/", "closing"))?;
        }
        std::fs::rename(&self.tmp, &self.path).map_err(|source| SnapError::Io {
            path: self.path.clone(),
            context: format!("renaming {} to the final name", self.tmp.display()),
            error: source,
        })?;
        Ok(self.rows)
    }
}

impl Drop for CatalogWriter {
    fn drop(&mut self) {
        // Unfinished (finish() takes `file` before renaming): remove the temporary file.
        if self.file.is_some() {
            self.ds = None;
            if let Some(f) = self.file.take() {
                let _ = f.close();
            }
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Reads a whole catalogue into memory (for tests and small files).
pub fn read_catalog(path: impl AsRef<Path>) -> Result<StarBatch> {
    let path = path.as_ref();
    let file = crate::discover::open_h5(path)?;
    let get = |name: &str| -> Result<hdf5::Dataset> {
        if !file.link_exists(name) {
            return Err(SnapError::MissingDataset {
                path: path.to_path_buf(),
                dataset: name.into(),
                expected: "catalogue dataset".into(),
            });
        }
        file.dataset(name)
            .map_err(h5err(path, name, "opening dataset"))
    };
    let vec3 = |name: &str| -> Result<Vec<[f64; 3]>> {
        let d = get(name)?;
        let a = d.read_2d::<f64>().map_err(h5err(path, name, "reading"))?;
        if a.ncols() != 3 {
            return Err(SnapError::BadShape {
                path: path.to_path_buf(),
                dataset: name.into(),
                expected: "(N, 3)".into(),
                found: a.shape().to_vec(),
            });
        }
        Ok(a.rows().into_iter().map(|r| [r[0], r[1], r[2]]).collect())
    };
    let f64s = |name: &str| -> Result<Vec<f64>> {
        get(name)?
            .read_raw::<f64>()
            .map_err(h5err(path, name, "reading"))
    };
    let optional_u32 = |name: &str| -> Result<Vec<u32>> {
        if !file.link_exists(name) {
            return Ok(Vec::new());
        }
        get(name)?
            .read_raw::<u32>()
            .map_err(h5err(path, name, "reading"))
    };
    let b = StarBatch {
        position: vec3("position")?,
        velocity: vec3("velocity")?,
        mass: f64s("mass")?,
        initial_mass: f64s("initial_mass")?,
        age: f64s("age")?,
        metallicity: f64s("metallicity")?,
        parent_id: get("parent_id")?.read_raw::<u64>().map_err(h5err(
            path,
            "parent_id",
            "reading",
        ))?,
        cluster: get("cluster")?
            .read_raw::<u32>()
            .map_err(h5err(path, "cluster", "reading"))?,
        parent_child_id: optional_u32("parent_child_id")?,
        parent_generation: optional_u32("parent_generation")?,
    };
    b.check_lengths()?;
    Ok(b)
}

/// Reads root datasets of a catalogue (`catalog.hdf5`, `survey_obsN.hdf5`, or any file whose
/// root datasets have one row per star) in row ranges, so a caller can stream a file of any
/// size in chunks instead of holding it whole ([`read_catalog`]). Values are returned as
/// stored (units as in each dataset's `units` attribute).
pub struct CatalogChunks {
    path: PathBuf,
    file: hdf5::File,
}

impl CatalogChunks {
    /// Opens `path` for chunked reading.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = crate::discover::open_h5(&path)?;
        Ok(CatalogChunks { path, file })
    }

    /// Whether the root dataset `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.file.link_exists(name)
    }

    fn dataset(&self, name: &str, expected: &str) -> Result<hdf5::Dataset> {
        if !self.has(name) {
            return Err(SnapError::MissingDataset {
                path: self.path.clone(),
                dataset: name.into(),
                expected: expected.into(),
            });
        }
        self.file
            .dataset(name)
            .map_err(h5err(&self.path, name, "opening dataset"))
    }

    /// Rows of the root dataset `name` (its first dimension).
    pub fn rows(&self, name: &str) -> Result<usize> {
        let d = self.dataset(name, "a dataset with one row per star")?;
        Ok(d.shape().first().copied().unwrap_or(0))
    }

    /// Rows `start..end` of the 1-D float dataset `name`, as f64.
    pub fn read_f64(&self, name: &str, start: usize, end: usize) -> Result<Vec<f64>> {
        let d = self.dataset(name, "1-D float dataset")?;
        let a = d.read_slice_1d::<f64, _>(start..end).map_err(h5err(
            &self.path,
            name,
            &format!("reading rows {start}..{end}"),
        ))?;
        Ok(a.into_iter().collect())
    }

    /// Rows `start..end` of the 1-D unsigned integer dataset `name`, as u32.
    pub fn read_u32(&self, name: &str, start: usize, end: usize) -> Result<Vec<u32>> {
        let d = self.dataset(name, "1-D unsigned integer dataset")?;
        let a = d.read_slice_1d::<u32, _>(start..end).map_err(h5err(
            &self.path,
            name,
            &format!("reading rows {start}..{end}"),
        ))?;
        Ok(a.into_iter().collect())
    }

    /// Rows `start..end` of the (N, 3) float dataset `name`.
    pub fn read_vec3(&self, name: &str, start: usize, end: usize) -> Result<Vec<[f64; 3]>> {
        let d = self.dataset(name, "(N, 3) float dataset")?;
        let shape = d.shape();
        if shape.len() != 2 || shape[1] != 3 {
            return Err(SnapError::BadShape {
                path: self.path.clone(),
                dataset: name.into(),
                expected: "(N, 3)".into(),
                found: shape,
            });
        }
        let a = d
            .read_slice_2d::<f64, _>((start..end, 0..3))
            .map_err(h5err(
                &self.path,
                name,
                &format!("reading rows {start}..{end}"),
            ))?;
        Ok(a.rows().into_iter().map(|r| [r[0], r[1], r[2]]).collect())
    }
}
