//! Gas particles (PartType0) for extinction: positions, masses, hydrogen content, metallicity
//! and size, in physical units (kpc, Msun), streamed per file and chunk like the stars.
//!
//! Conventions (each one applied is stated in [`GasReport::notes`]):
//! - hydrogen mass fraction X_H: GIZMO/FIRE `1 − Metallicity[:,0] − Metallicity[:,1]` (total
//!   metals and helium); AREPO/TNG `GFM_Metals[:,0]`; otherwise 0.76 (primordial);
//! - neutral fraction of the hydrogen: `NeutralHydrogenAbundance` (GIZMO/FIRE, AREPO/TNG), or 1
//!   (all neutral) when absent; values up to 1 + 1e-6 (f32 rounding) are clamped to 1;
//! - total metallicity Z: `Metallicity` (column 0 of FIRE's N×11) or TNG's `GFM_Metallicity`;
//!   empty when the snapshot has none;
//! - size: `SmoothingLength` (the SPH kernel's support radius) or, for AREPO cells, the side of
//!   the cube of the cell's volume `(Masses / Density)^(1/3)`; empty when neither is stored.
//!
//! Units use the star reader's rules (`Header::length_to_kpc`, `Header::mass_to_msun`; a
//! density converts as mass / length³). The frame comes from the stars: [`GasParticles::to_frame`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::discover::open_h5;
use crate::error::{h5err, Result, SnapError};
use crate::fields::{open_typed, Field, Want};
use crate::frame::GalaxyFrame;
use crate::header::{read_this_file_counts, Header, Layout};
use crate::particles::ReadOptions;
use crate::snapshot::Snapshot;
use crate::validate::{ChunkCheck, Limits};

/// Hydrogen mass fraction assumed when the snapshot stores no element abundances.
pub const PRIMORDIAL_HYDROGEN_FRACTION: f64 = 0.76;

/// Rounding tolerated above 1 in a stored neutral fraction (f32 outputs), clamped to 1.
const FRACTION_TOLERANCE: f64 = 1e-6;

/// Gas particles as a struct of arrays, in physical units.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GasParticles {
    /// Positions in kpc (physical, snapshot frame unless transformed).
    pub position: Vec<[f64; 3]>,
    /// Masses in Msun.
    pub mass: Vec<f64>,
    /// Hydrogen mass fraction X_H (dimensionless).
    pub hydrogen_fraction: Vec<f64>,
    /// Neutral (HI + H2) fraction of the hydrogen, 0..1 (dimensionless).
    pub neutral_fraction: Vec<f64>,
    /// Total metal mass fraction Z (dimensionless); empty when the snapshot has none.
    pub metallicity: Vec<f64>,
    /// Size in kpc: SPH smoothing length, or the side of an AREPO cell's volume cube; empty
    /// when the snapshot has neither.
    pub smoothing_length: Vec<f64>,
}

impl GasParticles {
    /// Number of gas particles.
    pub fn len(&self) -> usize {
        self.mass.len()
    }

    /// Whether there are no gas particles.
    pub fn is_empty(&self) -> bool {
        self.mass.is_empty()
    }

    /// Moves the positions into `frame` (the galaxy frame found from the stars).
    pub fn to_frame(&mut self, frame: &GalaxyFrame) {
        for x in &mut self.position {
            *x = frame.point_to_frame(*x);
        }
    }

    /// Checks that every column has one value per particle (optional ones may be empty).
    pub fn check_lengths(&self) -> Result<()> {
        let n = self.mass.len();
        let opt = |v: &[f64]| v.is_empty() || v.len() == n;
        if self.position.len() != n
            || self.hydrogen_fraction.len() != n
            || self.neutral_fraction.len() != n
            || !opt(&self.metallicity)
            || !opt(&self.smoothing_length)
        {
            return Err(SnapError::InvalidInput(format!(
                "gas particles: {n} masses but {} positions, {} hydrogen fractions, {} neutral \
                 fractions, {} metallicities, {} smoothing lengths",
                self.position.len(),
                self.hydrogen_fraction.len(),
                self.neutral_fraction.len(),
                self.metallicity.len(),
                self.smoothing_length.len()
            )));
        }
        Ok(())
    }
}

/// What a gas read found: files, rows, drops, conventions applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GasReport {
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Gas particles read from the files (before region selection).
    pub rows_read: u64,
    /// Gas particles kept.
    pub kept: u64,
    /// Particles dropped as invalid under `on_invalid = "drop"`, per kind.
    pub invalid_dropped: BTreeMap<String, u64>,
    /// Conventions applied and defaults used, in words.
    pub notes: Vec<String>,
}

/// Where the hydrogen fraction comes from in one file.
enum HydrogenSource {
    /// FIRE's N×k `Metallicity` (k ≥ 2): X = 1 − col 0 − col 1.
    FireMetalsHelium(Field),
    /// TNG's `GFM_Metals` column 0.
    TngMetals(Field),
    /// No abundances: 0.76.
    Primordial,
}

/// Where the size comes from in one file.
enum SizeSource {
    Smoothing(Field),
    /// AREPO: (m / ρ)^(1/3).
    Density(Field),
    None,
}

/// The PartType0 datasets of one file, checked for type and shape.
struct GasFields {
    coords: Field,
    masses: Option<Field>,
    neutral: Option<Field>,
    hydrogen: HydrogenSource,
    metal: Option<Field>,
    size: SizeSource,
}

/// Opens float dataset `PartType0/name` of `n` rows: `cols` columns read (1-D when `None`,
/// else 2-D with at least `cols` columns); `None` when absent.
fn open_gas_field(
    path: &Path,
    g: &hdf5::Group,
    name: &str,
    n: u64,
    cols: Option<usize>,
    what: &str,
) -> Result<Option<Field>> {
    let Some((ds, full, elem)) = open_typed(path, g, 0, name, Want::Float, what)? else {
        return Ok(None);
    };
    let shape = ds.shape();
    let ok = shape.first().is_some_and(|&r| r as u64 == n)
        && match cols {
            None => shape.len() == 1,
            Some(c) => shape.len() == 2 && shape[1] >= c,
        };
    if !ok {
        return Err(SnapError::BadShape {
            path: path.to_path_buf(),
            dataset: full,
            expected: match cols {
                None => format!("({n},) {what}, to match Header/NumPart_ThisFile[0] = {n}"),
                Some(c) => {
                    format!("({n}, >= {c}) {what}, to match Header/NumPart_ThisFile[0] = {n}")
                }
            },
            found: shape,
        });
    }
    Ok(Some(Field {
        ds,
        name: full,
        width: cols.unwrap_or(1),
        two_d: cols.is_some(),
        elem,
    }))
}

/// A float dataset that may be 1-D or N×k (column 0 used).
fn open_column0(
    path: &Path,
    g: &hdf5::Group,
    name: &str,
    n: u64,
    what: &str,
) -> Result<Option<Field>> {
    let two_d = g
        .dataset(name)
        .map(|d| d.shape().len() == 2)
        .unwrap_or(false);
    open_gas_field(path, g, name, n, two_d.then_some(1), what)
}

impl GasFields {
    fn open(path: &Path, g: &hdf5::Group, n: u64, layout: Layout, h: &Header) -> Result<Self> {
        let coords = open_gas_field(
            path,
            g,
            "Coordinates",
            n,
            Some(3),
            "positions in code length",
        )?
        .ok_or_else(|| SnapError::MissingDataset {
            path: path.to_path_buf(),
            dataset: "PartType0/Coordinates".into(),
            expected: format!("({n}, 3) gas positions in code length units"),
        })?;
        let masses = if h.mass_table[0] != 0.0 {
            None
        } else {
            Some(
                open_gas_field(path, g, "Masses", n, None, "gas masses")?.ok_or_else(|| {
                    SnapError::MissingDataset {
                        path: path.to_path_buf(),
                        dataset: "PartType0/Masses".into(),
                        expected: format!("({n},) gas masses, since Header/MassTable[0] = 0"),
                    }
                })?,
            )
        };
        let neutral = open_gas_field(
            path,
            g,
            "NeutralHydrogenAbundance",
            n,
            None,
            "neutral fractions of the hydrogen",
        )?;
        let hydrogen = match layout {
            Layout::ArepoTng => match open_gas_field(
                path,
                g,
                "GFM_Metals",
                n,
                Some(1),
                "element mass fractions, H first",
            )? {
                Some(f) => HydrogenSource::TngMetals(f),
                None => HydrogenSource::Primordial,
            },
            _ => {
                let wide = g
                    .dataset("Metallicity")
                    .map(|d| d.shape().len() == 2 && d.shape()[1] >= 2)
                    .unwrap_or(false);
                if layout == Layout::GizmoFire && wide {
                    match open_gas_field(
                        path,
                        g,
                        "Metallicity",
                        n,
                        Some(2),
                        "metal and helium mass fractions",
                    )? {
                        Some(f) => HydrogenSource::FireMetalsHelium(f),
                        None => HydrogenSource::Primordial,
                    }
                } else {
                    HydrogenSource::Primordial
                }
            }
        };
        let metal = open_column0(
            path,
            g,
            layout.metallicity_dataset(),
            n,
            "metal mass fractions",
        )?;
        let size = if let Some(f) = open_gas_field(
            path,
            g,
            "SmoothingLength",
            n,
            None,
            "smoothing lengths in code length",
        )? {
            SizeSource::Smoothing(f)
        } else if let Some(f) = open_gas_field(
            path,
            g,
            "Density",
            n,
            None,
            "densities in code mass / code length^3",
        )? {
            SizeSource::Density(f)
        } else {
            SizeSource::None
        };
        Ok(GasFields {
            coords,
            masses,
            neutral,
            hydrogen,
            metal,
            size,
        })
    }
}

/// The PartType0 group of a file whose header counts `n` > 0 gas particles.
fn gas_group(path: &Path, file: &hdf5::File, n: u64) -> Result<hdf5::Group> {
    if !file.link_exists("PartType0") {
        return Err(SnapError::MissingGroup {
            path: path.to_path_buf(),
            group: "PartType0".into(),
            expected: format!("Header/NumPart_ThisFile[0] = {n} gas particles"),
        });
    }
    file.group("PartType0")
        .map_err(h5err(path, "PartType0", "opening group"))
}

impl Snapshot {
    /// Total gas particles (PartType0) over all files, from the header.
    pub fn gas_count(&self) -> u64 {
        self.header.num_part_total[0]
    }

    /// Opens and checks the gas datasets of every file without reading them; returns the number
    /// of gas particles. No gas at all is an error saying so (extinction from gas needs it).
    pub fn check_gas(&self) -> Result<u64> {
        if self.gas_count() == 0 {
            return Err(self.no_gas());
        }
        let mut total = 0;
        for path in &self.files {
            let file = open_h5(path)?;
            let n = read_this_file_counts(path, &file)?[0];
            if n > 0 {
                let g = gas_group(path, &file, n)?;
                GasFields::open(path, &g, n, self.layout, &self.header)?;
            }
            total += n;
        }
        self.check_gas_total(total)?;
        Ok(total)
    }

    fn no_gas(&self) -> SnapError {
        SnapError::MissingGroup {
            path: self.files[0].clone(),
            group: "PartType0".into(),
            expected: "gas particles: Header/NumPart_Total[0] = 0, this snapshot has no gas; \
                       extinction from the simulation's gas needs them"
                .into(),
        }
    }

    fn check_gas_total(&self, total: u64) -> Result<()> {
        if total != self.header.num_part_total[0] {
            return Err(SnapError::FileSet {
                path: self.files[0].clone(),
                detail: format!(
                    "sum of Header/NumPart_ThisFile[0] over {} file(s) is {total} but Header/NumPart_Total[0] (+HighWord) is {}",
                    self.files.len(),
                    self.header.num_part_total[0]
                ),
            });
        }
        Ok(())
    }

    /// Reads the gas particles (PartType0) in physical units, `opts.chunk_len` rows at a time,
    /// keeping those inside `opts.region` (snapshot physical frame). Invalid values (non-finite,
    /// mass <= 0, fractions outside [0, 1], negative size or density <= 0, position outside the
    /// box) stop the read naming file, dataset and row, or are dropped and counted, as
    /// `opts.on_invalid` says. No gas at all is an error.
    pub fn read_gas(&self, opts: &ReadOptions) -> Result<(GasParticles, GasReport)> {
        if self.gas_count() == 0 {
            return Err(self.no_gas());
        }
        let mut out = GasParticles::default();
        let mut report = GasReport {
            files: self.files.clone(),
            ..Default::default()
        };
        let mut seen = Seen::default();
        let mut total = 0;
        for path in &self.files {
            total += self.read_gas_file(path, opts, &mut out, &mut report, &mut seen)?;
        }
        self.check_gas_total(total)?;
        // Optional columns present in some files only: absent values are NaN (metals) or 0
        // (size: the deposit's minimum), said in the notes.
        let n = out.len();
        if seen.metal_some && seen.metal_none {
            report
                .notes
                .push("PartType0 metallicity present in some files only: NaN elsewhere".into());
        }
        if !seen.metal_some {
            out.metallicity.clear();
        }
        if !seen.size_some {
            out.smoothing_length.clear();
        }
        debug_assert!(out.metallicity.is_empty() || out.metallicity.len() == n);
        report.notes.extend(seen.notes(self.layout));
        report.kept = n as u64;
        Ok((out, report))
    }

    fn read_gas_file(
        &self,
        path: &Path,
        opts: &ReadOptions,
        out: &mut GasParticles,
        report: &mut GasReport,
        seen: &mut Seen,
    ) -> Result<u64> {
        let file = open_h5(path)?;
        let n = read_this_file_counts(path, &file)?[0];
        if n == 0 {
            return Ok(0);
        }
        let g = gas_group(path, &file, n)?;
        let f = GasFields::open(path, &g, n, self.layout, &self.header)?;
        seen.record(&f);
        let h = &self.header;
        let (lf, mf) = (h.length_to_kpc(), h.mass_to_msun());
        let limits = Limits::new(h);
        let chunk = opts.chunk_len.max(1);
        let n = n as usize;
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let m = end - start;
            let b = &mut 0u64;
            let pos = f.coords.read_f64(path, start, end, b)?;
            let mass = match &f.masses {
                Some(fm) => fm.read_f64(path, start, end, b)?,
                None => vec![h.mass_table[0]; m],
            };
            let neutral = match &f.neutral {
                Some(fnh) => fnh.read_f64(path, start, end, b)?,
                None => vec![1.0; m],
            };
            let (xh, xh_name) = match &f.hydrogen {
                HydrogenSource::FireMetalsHelium(fz) => {
                    let zy = fz.read_f64(path, start, end, b)?;
                    let x = zy.chunks_exact(2).map(|r| 1.0 - r[0] - r[1]).collect();
                    (x, format!("{} (1 - column 0 - column 1)", fz.name))
                }
                HydrogenSource::TngMetals(fh) => {
                    (fh.read_f64(path, start, end, b)?, fh.name.clone())
                }
                HydrogenSource::Primordial => {
                    (vec![PRIMORDIAL_HYDROGEN_FRACTION; m], String::new())
                }
            };
            let z = match &f.metal {
                Some(fz) => Some(fz.read_f64(path, start, end, b)?),
                None => None,
            };
            let size = match &f.size {
                SizeSource::Smoothing(fs) | SizeSource::Density(fs) => {
                    Some(fs.read_f64(path, start, end, b)?)
                }
                SizeSource::None => None,
            };
            report.rows_read += m as u64;
            let mut check =
                ChunkCheck::new(opts.on_invalid, path, start, m, &mut report.invalid_dropped);
            let all = |_| true;
            check.finite("nonfinite_position", &f.coords.name, &pos, 3, all)?;
            for j in 0..m {
                let x = [pos[3 * j], pos[3 * j + 1], pos[3 * j + 2]];
                if !check.is_bad(j) {
                    if let Some(problem) = limits.position_problem(x) {
                        check.invalid(
                            j,
                            "position_out_of_box",
                            &f.coords.name,
                            format!("{x:?}"),
                            problem,
                        )?;
                    }
                }
            }
            let mass_name = f
                .masses
                .as_ref()
                .map_or_else(|| "Header/MassTable[0]".to_string(), |fm| fm.name.clone());
            check.finite("nonfinite_mass", &mass_name, &mass, 1, all)?;
            check.positive("nonpositive_mass", &mass_name, &mass, all)?;
            if let Some(fnh) = &f.neutral {
                fraction_check(
                    &mut check,
                    "neutral_fraction_out_of_range",
                    &fnh.name,
                    &neutral,
                )?;
            }
            if !xh_name.is_empty() {
                fraction_check(&mut check, "hydrogen_fraction_out_of_range", &xh_name, &xh)?;
            }
            if let (Some(fz), Some(z)) = (&f.metal, &z) {
                fraction_check(&mut check, "metallicity_out_of_range", &fz.name, z)?;
            }
            if let (Some(s), SizeSource::Smoothing(fs) | SizeSource::Density(fs)) = (&size, &f.size)
            {
                let density = matches!(f.size, SizeSource::Density(_));
                for (j, &v) in s.iter().enumerate() {
                    let bad = if density {
                        !(v > 0.0 && v.is_finite())
                    } else {
                        !(v >= 0.0 && v.is_finite())
                    };
                    if bad && !check.is_bad(j) {
                        check.invalid(
                            j,
                            if density {
                                "nonpositive_density"
                            } else {
                                "negative_smoothing_length"
                            },
                            &fs.name,
                            format!("{v:e}"),
                            if density {
                                "expected a positive finite density".into()
                            } else {
                                "expected a finite smoothing length >= 0".into()
                            },
                        )?;
                    }
                }
            }
            let bad = check.bad;
            for j in 0..m {
                if bad[j] {
                    continue;
                }
                let x = [pos[3 * j] * lf, pos[3 * j + 1] * lf, pos[3 * j + 2] * lf];
                if opts.region.as_ref().is_some_and(|r| !r.contains(x)) {
                    continue;
                }
                let mj = mass[j] * mf;
                out.position.push(x);
                out.mass.push(mj);
                out.hydrogen_fraction.push(xh[j].clamp(0.0, 1.0));
                out.neutral_fraction.push(neutral[j].clamp(0.0, 1.0));
                out.metallicity
                    .push(z.as_ref().map_or(f64::NAN, |z| z[j].clamp(0.0, 1.0)));
                out.smoothing_length.push(match (&f.size, &size) {
                    (SizeSource::Smoothing(_), Some(s)) => s[j] * lf,
                    // Physical density: code mass / code length^3 × mf / lf^3.
                    (SizeSource::Density(_), Some(s)) => (mj / (s[j] * mf / (lf * lf * lf))).cbrt(),
                    _ => 0.0,
                });
            }
            start = end;
        }
        Ok(n as u64)
    }
}

/// Checks that fractions lie in [0, 1 + tolerance] (rows not yet bad).
fn fraction_check(check: &mut ChunkCheck<'_>, kind: &str, name: &str, v: &[f64]) -> Result<()> {
    check.finite(
        &kind.replace("out_of_range", "nonfinite"),
        name,
        v,
        1,
        |_| true,
    )?;
    for (j, &x) in v.iter().enumerate() {
        if !check.is_bad(j) && !(-FRACTION_TOLERANCE..=1.0 + FRACTION_TOLERANCE).contains(&x) {
            check.invalid(
                j,
                kind,
                name,
                format!("{x:e}"),
                "mass fraction outside [0, 1]".into(),
            )?;
        }
    }
    Ok(())
}

/// Which optional sources the files had, for the notes.
#[derive(Default)]
struct Seen {
    neutral_none: bool,
    hydrogen: BTreeMap<&'static str, bool>,
    metal_some: bool,
    metal_none: bool,
    size_some: bool,
    size: BTreeMap<&'static str, bool>,
}

impl Seen {
    fn record(&mut self, f: &GasFields) {
        self.neutral_none |= f.neutral.is_none();
        let h = match f.hydrogen {
            HydrogenSource::FireMetalsHelium(_) => "fire",
            HydrogenSource::TngMetals(_) => "tng",
            HydrogenSource::Primordial => "primordial",
        };
        self.hydrogen.insert(h, true);
        self.metal_some |= f.metal.is_some();
        self.metal_none |= f.metal.is_none();
        let s = match f.size {
            SizeSource::Smoothing(_) => "smoothing",
            SizeSource::Density(_) => "density",
            SizeSource::None => "none",
        };
        self.size_some |= s != "none";
        self.size.insert(s, true);
    }

    fn notes(&self, layout: Layout) -> Vec<String> {
        let mut v = Vec::new();
        for h in self.hydrogen.keys() {
            v.push(match *h {
                "fire" => "hydrogen fraction X_H = 1 - PartType0/Metallicity[:,0] - [:,1] (metals, helium)".to_string(),
                "tng" => "hydrogen fraction X_H = PartType0/GFM_Metals[:,0]".to_string(),
                _ => format!(
                    "no element abundances in PartType0 ({layout}): hydrogen fraction X_H = {PRIMORDIAL_HYDROGEN_FRACTION}"
                ),
            });
        }
        if self.neutral_none {
            v.push(
                "PartType0/NeutralHydrogenAbundance absent: all hydrogen taken as neutral".into(),
            );
        } else {
            v.push("neutral fraction of the hydrogen = PartType0/NeutralHydrogenAbundance".into());
        }
        if !self.metal_some {
            v.push(format!(
                "PartType0/{} absent: no gas metallicity",
                layout.metallicity_dataset()
            ));
        }
        for s in self.size.keys() {
            v.push(match *s {
                "smoothing" => "gas size = PartType0/SmoothingLength (kpc)".to_string(),
                "density" => {
                    "gas size = (Masses / Density)^(1/3), the side of the cell's volume cube (kpc)"
                        .to_string()
                }
                _ => "PartType0 has no SmoothingLength or Density: no gas size (0)".to_string(),
            });
        }
        v
    }
}

/// Adds `gas` (physical units) as PartType0 to the snapshot files `files` written by
/// [`crate::write_snapshot`] with the same `layout` and `header`, split over the files as the
/// stars are, and sets the header's gas counts. For tests and fixtures: writes what each layout
/// stores (GIZMO/FIRE: N×11 `Metallicity` with helium in column 1 and `SmoothingLength`;
/// AREPO/TNG: `GFM_Metals`, `GFM_Metallicity` and `Density` = m / size³; GADGET-4: `Metallicity`
/// and `SmoothingLength`), `NeutralHydrogenAbundance` and `ParticleIDs`; optional columns only
/// when `gas` has them.
pub fn write_gas(
    files: &[PathBuf],
    layout: Layout,
    header: &Header,
    gas: &GasParticles,
) -> Result<()> {
    gas.check_lengths()?;
    let n = gas.len();
    let nf = files.len().max(1);
    for (k, fp) in files.iter().enumerate() {
        let (s, e) = ((n * k) / nf, (n * (k + 1)) / nf);
        let file =
            hdf5::File::open_rw(fp).map_err(h5err(fp, "/", "opening snapshot for writing"))?;
        write_gas_rows(fp, &file, layout, header, gas, s, e)?;
        // Closed explicitly: every handle goes, so another process can open the file at once.
        file.close()
            .map_err(h5err(fp, "/", "closing snapshot after writing gas"))?;
    }
    Ok(())
}

/// Writes rows `s..e` of `gas` as the PartType0 of the open snapshot file `file`.
fn write_gas_rows(
    fp: &Path,
    file: &hdf5::File,
    layout: Layout,
    header: &Header,
    gas: &GasParticles,
    s: usize,
    e: usize,
) -> Result<()> {
    let n = gas.len();
    let (lf, mf) = (header.length_to_kpc(), header.mass_to_msun());
    set_gas_counts(fp, file, layout, (e - s) as u64, n as u64)?;
    if e == s {
        return Ok(());
    }
    let g = file
        .create_group("PartType0")
        .map_err(h5err(fp, "PartType0", "creating group"))?;
    let rows = s..e;
    let pos: Vec<f64> = gas.position[rows.clone()]
        .iter()
        .flatten()
        .map(|x| x / lf)
        .collect();
    crate::write::ds_f(fp, &g, "Coordinates", &pos, 3, true)?;
    if header.mass_table[0] == 0.0 {
        let m: Vec<f64> = gas.mass[rows.clone()].iter().map(|x| x / mf).collect();
        crate::write::ds_f(fp, &g, "Masses", &m, 1, false)?;
    }
    crate::write::ds_f(
        fp,
        &g,
        "NeutralHydrogenAbundance",
        &gas.neutral_fraction[rows.clone()],
        1,
        false,
    )?;
    let ids: Vec<u64> = (s as u64..e as u64).map(|i| i + 1).collect();
    g.new_dataset_builder()
        .with_data(&ids)
        .create("ParticleIDs")
        .map_err(h5err(fp, "PartType0/ParticleIDs", "writing dataset"))?;
    let z = |i: usize| gas.metallicity.get(i).copied().unwrap_or(0.0);
    match layout {
        Layout::GizmoFire => {
            let mut met = Vec::with_capacity((e - s) * 11);
            for i in rows.clone() {
                met.push(z(i));
                met.push(1.0 - gas.hydrogen_fraction[i] - z(i));
                met.extend(std::iter::repeat_n(z(i) / 9.0, 9));
            }
            crate::write::ds_f(fp, &g, "Metallicity", &met, 11, false)?;
        }
        Layout::ArepoTng => {
            let mut met = Vec::with_capacity((e - s) * 10);
            for i in rows.clone() {
                met.push(gas.hydrogen_fraction[i]);
                met.push(1.0 - gas.hydrogen_fraction[i] - z(i));
                met.extend(std::iter::repeat_n(z(i) / 8.0, 8));
            }
            crate::write::ds_f(fp, &g, "GFM_Metals", &met, 10, false)?;
            if !gas.metallicity.is_empty() {
                crate::write::ds_f(
                    fp,
                    &g,
                    "GFM_Metallicity",
                    &gas.metallicity[rows.clone()],
                    1,
                    false,
                )?;
            }
        }
        Layout::Gadget4 => {
            if !gas.metallicity.is_empty() {
                crate::write::ds_f(
                    fp,
                    &g,
                    "Metallicity",
                    &gas.metallicity[rows.clone()],
                    1,
                    false,
                )?;
            }
        }
    }
    if !gas.smoothing_length.is_empty() {
        if layout == Layout::ArepoTng {
            let rho: Vec<f64> = rows
                .clone()
                .map(|i| (gas.mass[i] / mf) / (gas.smoothing_length[i] / lf).powi(3))
                .collect();
            crate::write::ds_f(fp, &g, "Density", &rho, 1, true)?;
        } else {
            let h: Vec<f64> = gas.smoothing_length[rows].iter().map(|x| x / lf).collect();
            crate::write::ds_f(fp, &g, "SmoothingLength", &h, 1, false)?;
        }
    }
    Ok(())
}

/// Rewrites the gas entries of `NumPart_ThisFile` and `NumPart_Total` in the header of `file`,
/// in the element types the writer uses for each layout.
fn set_gas_counts(
    fp: &Path,
    file: &hdf5::File,
    layout: Layout,
    this: u64,
    total: u64,
) -> Result<()> {
    let hdr = file
        .group("Header")
        .map_err(h5err(fp, "Header", "opening group"))?;
    let err = |name: &str| h5err(fp, &format!("Header/{name}"), "updating the gas count");
    let update = |name: &str, value: u64| -> Result<()> {
        let a = hdr.attr(name).map_err(err(name))?;
        if layout == Layout::Gadget4 {
            let mut v: Vec<u64> = a.read_raw().map_err(err(name))?;
            v[0] = value;
            a.write_raw(&v).map_err(err(name))
        } else if name == "NumPart_ThisFile" {
            let mut v: Vec<i32> = a.read_raw().map_err(err(name))?;
            v[0] = value as i32;
            a.write_raw(&v).map_err(err(name))
        } else {
            let mut v: Vec<u32> = a.read_raw().map_err(err(name))?;
            v[0] = (value & 0xffff_ffff) as u32;
            a.write_raw(&v).map_err(err(name))
        }
    };
    update("NumPart_ThisFile", this)?;
    update("NumPart_Total", total)?;
    if layout != Layout::Gadget4 {
        let a = hdr
            .attr("NumPart_Total_HighWord")
            .map_err(err("NumPart_Total_HighWord"))?;
        let mut v: Vec<u32> = a.read_raw().map_err(err("NumPart_Total_HighWord"))?;
        v[0] = (total >> 32) as u32;
        a.write_raw(&v).map_err(err("NumPart_Total_HighWord"))?;
    }
    Ok(())
}
