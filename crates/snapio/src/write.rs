//! Writing snapshots in each layout's conventions (test fixtures, sample data cross-checks).

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;

use crate::error::{h5err, Result, SnapError};
use crate::header::{Header, Layout};
use crate::particles::StarParticles;

/// Options of [`write_snapshot_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    /// Number of files (>1: `<stem>.0.hdf5`, `<stem>.1.hdf5`, ... next to `path`).
    pub n_files: usize,
    /// Write every float dataset as f64 (otherwise the codes' usual mix of f32 and f64).
    pub double_precision: bool,
    /// Write the `ComovingIntegrationOn` flag (GIZMO/FIRE public files often lack it).
    pub comoving_flag: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            n_files: 1,
            double_precision: false,
            comoving_flag: true,
        }
    }
}

/// Writes a snapshot holding `stars` (physical units) and, for AREPO/TNG, `winds` as wind particles.
///
/// Converts to the layout's code units with `header` (a, h, units); returns the files written.
pub fn write_snapshot(
    path: &Path,
    layout: Layout,
    header: &Header,
    stars: &StarParticles,
    winds: Option<&StarParticles>,
    n_files: usize,
) -> Result<Vec<PathBuf>> {
    write_snapshot_with(
        path,
        layout,
        header,
        stars,
        winds,
        &WriteOptions {
            n_files,
            ..WriteOptions::default()
        },
    )
}

/// Paths of the files of a snapshot written to `path` in `n_files` pieces.
pub fn snapshot_file_names(path: &Path, n_files: usize) -> Vec<PathBuf> {
    if n_files <= 1 {
        return vec![path.to_path_buf()];
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snap".into());
    let ext = path
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "hdf5".into());
    (0..n_files)
        .map(|i| path.with_file_name(format!("{stem}.{i}.{ext}")))
        .collect()
}

fn attr_f64(p: &Path, loc: &hdf5::Location, name: &str, v: f64) -> Result<()> {
    loc.new_attr::<f64>()
        .create(name)
        .and_then(|a| a.write_scalar(&v))
        .map_err(h5err(p, name, "writing attribute"))
}

fn attr_i32(p: &Path, loc: &hdf5::Location, name: &str, v: i32) -> Result<()> {
    loc.new_attr::<i32>()
        .create(name)
        .and_then(|a| a.write_scalar(&v))
        .map_err(h5err(p, name, "writing attribute"))
}

fn attr_arr<T: hdf5::H5Type>(p: &Path, loc: &hdf5::Location, name: &str, v: &[T]) -> Result<()> {
    loc.new_attr::<T>()
        .shape(v.len())
        .create(name)
        .and_then(|a| a.write_raw(v))
        .map_err(h5err(p, name, "writing attribute"))
}

pub(crate) fn ds_f(
    p: &Path,
    g: &hdf5::Group,
    name: &str,
    v: &[f64],
    width: usize,
    double: bool,
) -> Result<()> {
    let n = v.len() / width;
    let err = h5err(p, name, "writing dataset");
    let r = if double {
        if width == 1 {
            g.new_dataset_builder()
                .with_data(v)
                .create(name)
                .map(|_| ())
        } else {
            let a = ndarray::ArrayView2::from_shape((n, width), v)
                .map_err(|e| SnapError::InvalidInput(format!("{name}: {e}")))?;
            g.new_dataset_builder()
                .with_data(a)
                .create(name)
                .map(|_| ())
        }
    } else {
        let w: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        if width == 1 {
            g.new_dataset_builder()
                .with_data(&w)
                .create(name)
                .map(|_| ())
        } else {
            let a = ndarray::ArrayView2::from_shape((n, width), &w)
                .map_err(|e| SnapError::InvalidInput(format!("{name}: {e}")))?;
            g.new_dataset_builder()
                .with_data(a)
                .create(name)
                .map(|_| ())
        }
    };
    r.map_err(err)
}

/// Writes a snapshot with explicit [`WriteOptions`]. See [`write_snapshot`].
///
/// Child and generation numbers (`stars.child_id`, `stars.generation`), when present, are written
/// as u32 `PartType4/ParticleChildIDsNumber` and `PartType4/ParticleIDGenerationNumber`.
pub fn write_snapshot_with(
    path: &Path,
    layout: Layout,
    header: &Header,
    stars: &StarParticles,
    winds: Option<&StarParticles>,
    opts: &WriteOptions,
) -> Result<Vec<PathBuf>> {
    stars.check_lengths()?;
    if winds.is_some() && layout != Layout::ArepoTng {
        return Err(SnapError::InvalidInput(format!(
            "wind particles exist only in AREPO/TNG PartType4, not in {layout}"
        )));
    }
    let n_files = opts.n_files.max(1);
    // All PartType4 rows (stars then winds) with a wind flag.
    let mut is_wind = vec![false; stars.len()];
    let all: std::borrow::Cow<'_, StarParticles> = match winds {
        Some(w) => {
            w.check_lengths()?;
            let mut all = stars.clone();
            all.extend(w);
            is_wind.extend(std::iter::repeat_n(true, w.len()));
            std::borrow::Cow::Owned(all)
        }
        None => std::borrow::Cow::Borrowed(stars),
    };
    let n = all.len() as u64;
    let files = snapshot_file_names(path, n_files);
    let mut num_total = header.num_part_total;
    num_total[4] = n;
    for (k, fp) in files.iter().enumerate() {
        let s = (n as usize * k) / n_files;
        let e = (n as usize * (k + 1)) / n_files;
        let file = hdf5::File::create(fp).map_err(h5err(fp, "/", "creating snapshot file"))?;
        let mut this = [0u64; 6];
        this[4] = (e - s) as u64;
        write_header(fp, &file, layout, header, opts, n_files, this, num_total)?;
        if e > s {
            write_star_rows(fp, &file, layout, header, &all, &is_wind, s..e, opts)?;
        }
        // Closed explicitly, not left to drop order: the next reader is often another process,
        // and HDF5's file lock refuses it (EAGAIN) while any handle of ours is open.
        file.close()
            .map_err(h5err(fp, "/", "closing snapshot file after writing"))?;
    }
    Ok(files)
}

/// Writes `Header` (and the `Parameters`/`Config` groups of the layout) of one file.
#[allow(clippy::too_many_arguments)]
fn write_header(
    fp: &Path,
    file: &hdf5::File,
    layout: Layout,
    header: &Header,
    opts: &WriteOptions,
    n_files: usize,
    this: [u64; 6],
    num_total: [u64; 6],
) -> Result<()> {
    let hdr = file
        .create_group("Header")
        .map_err(h5err(fp, "Header", "creating group"))?;
    let low: Vec<u32> = num_total
        .iter()
        .map(|&x| (x & 0xffff_ffff) as u32)
        .collect();
    let high: Vec<u32> = num_total.iter().map(|&x| (x >> 32) as u32).collect();
    match layout {
        Layout::Gadget4 => {
            attr_arr(fp, &hdr, "NumPart_ThisFile", &this)?;
            attr_arr(fp, &hdr, "NumPart_Total", &num_total)?;
        }
        _ => {
            let this32: Vec<i32> = this.iter().map(|&x| x as i32).collect();
            attr_arr(fp, &hdr, "NumPart_ThisFile", &this32)?;
            attr_arr(fp, &hdr, "NumPart_Total", &low)?;
            attr_arr(fp, &hdr, "NumPart_Total_HighWord", &high)?;
        }
    }
    attr_arr(fp, &hdr, "MassTable", &header.mass_table)?;
    attr_f64(fp, &hdr, "Time", header.time)?;
    attr_f64(fp, &hdr, "Redshift", header.redshift)?;
    attr_f64(fp, &hdr, "BoxSize", header.box_size)?;
    attr_i32(fp, &hdr, "NumFilesPerSnapshot", n_files as i32)?;
    let cosmo_params = |loc: &hdf5::Location| -> Result<()> {
        attr_f64(fp, loc, "HubbleParam", header.hubble_param)?;
        attr_f64(fp, loc, "Omega0", header.omega0)?;
        attr_f64(fp, loc, "OmegaLambda", header.omega_lambda)
    };
    let units = |loc: &hdf5::Location| -> Result<()> {
        attr_f64(fp, loc, "UnitLength_in_cm", header.unit_length_cm)?;
        attr_f64(fp, loc, "UnitMass_in_g", header.unit_mass_g)?;
        attr_f64(
            fp,
            loc,
            "UnitVelocity_in_cm_per_s",
            header.unit_velocity_cm_s,
        )
    };
    let group = |name: &str| {
        file.create_group(name)
            .map_err(h5err(fp, name, "creating group"))
    };
    match layout {
        Layout::Gadget4 => {
            let p = group("Parameters")?;
            cosmo_params(&p)?;
            units(&p)?;
            attr_i32(fp, &p, "ComovingIntegrationOn", header.cosmological as i32)?;
            let c = group("Config")?;
            attr_i32(fp, &c, "STARFORMATION", 1)?;
            attr_i32(fp, &c, "NTYPES", 6)?;
        }
        Layout::ArepoTng => {
            cosmo_params(&hdr)?;
            units(&hdr)?;
            attr_i32(fp, &hdr, "Flag_StellarAge", 1)?;
            attr_i32(fp, &hdr, "Flag_Metals", 10)?;
            let p = group("Parameters")?;
            cosmo_params(&p)?;
            attr_i32(fp, &p, "ComovingIntegrationOn", header.cosmological as i32)?;
            let c = group("Config")?;
            let v: VarLenUnicode = "1"
                .parse()
                .map_err(|e| SnapError::InvalidInput(format!("{e}")))?;
            c.new_attr::<VarLenUnicode>()
                .create("GFM_STELLAR_EVOLUTION")
                .and_then(|a| a.write_scalar(&v))
                .map_err(h5err(
                    fp,
                    "Config/GFM_STELLAR_EVOLUTION",
                    "writing attribute",
                ))?;
        }
        Layout::GizmoFire => {
            cosmo_params(&hdr)?;
            attr_f64(fp, &hdr, "UnitLength_In_CGS", header.unit_length_cm)?;
            attr_f64(fp, &hdr, "UnitMass_In_CGS", header.unit_mass_g)?;
            attr_f64(fp, &hdr, "UnitVelocity_In_CGS", header.unit_velocity_cm_s)?;
            if opts.comoving_flag {
                attr_i32(
                    fp,
                    &hdr,
                    "ComovingIntegrationOn",
                    header.cosmological as i32,
                )?;
            }
            attr_i32(fp, &hdr, "Flag_StellarAge", 1)?;
            attr_i32(fp, &hdr, "Flag_Metals", 11)?;
        }
    }
    Ok(())
}

/// Writes rows `rows` of `all` (physical units, winds flagged) as the `PartType4` group of one
/// file, in the layout's code units and dataset names.
#[allow(clippy::too_many_arguments)]
fn write_star_rows(
    fp: &Path,
    file: &hdf5::File,
    layout: Layout,
    header: &Header,
    all: &StarParticles,
    is_wind: &[bool],
    rows: std::ops::Range<usize>,
    opts: &WriteOptions,
) -> Result<()> {
    let (lf, vf, mf) = (
        header.length_to_kpc(),
        header.velocity_to_kms(),
        header.mass_to_msun(),
    );
    let dp = opts.double_precision;
    let m = rows.len();
    let g = file
        .create_group("PartType4")
        .map_err(h5err(fp, "PartType4", "creating group"))?;
    let pos: Vec<f64> = all.position[rows.clone()]
        .iter()
        .flatten()
        .map(|x| x / lf)
        .collect();
    let vel: Vec<f64> = all.velocity[rows.clone()]
        .iter()
        .flatten()
        .map(|x| x / vf)
        .collect();
    let mass: Vec<f64> = all.mass[rows.clone()].iter().map(|x| x / mf).collect();
    let imass: Vec<f64> = all.initial_mass[rows.clone()]
        .iter()
        .map(|x| x / mf)
        .collect();
    let tform: Vec<f64> = rows
        .clone()
        .map(|i| {
            if is_wind[i] {
                -0.5
            } else {
                header.formation_time_for_age(all.age[i])
            }
        })
        .collect();
    let z = &all.metallicity[rows.clone()];
    // Coordinates: f64 in GADGET-4/AREPO/GIZMO outputs of this kind; the rest single precision.
    ds_f(fp, &g, "Coordinates", &pos, 3, true)?;
    ds_f(fp, &g, "Velocities", &vel, 3, dp)?;
    if header.mass_table[4] == 0.0 {
        ds_f(fp, &g, "Masses", &mass, 1, dp)?;
    }
    let ids = &all.id[rows.clone()];
    let ints = |name: &str, v: &[u32]| {
        g.new_dataset_builder()
            .with_data(v)
            .create(name)
            .map(|_| ())
            .map_err(h5err(fp, &format!("PartType4/{name}"), "writing dataset"))
    };
    match layout {
        Layout::GizmoFire => {
            let ids32: Vec<u32> = ids.iter().map(|&x| x as u32).collect();
            ints("ParticleIDs", &ids32)?;
            ds_f(fp, &g, "StellarFormationTime", &tform, 1, dp)?;
            let mut met = Vec::with_capacity(m * 11);
            for &zi in z {
                met.push(zi);
                met.push(0.25 + 0.0 * zi);
                for _ in 2..11 {
                    met.push(zi / 9.0);
                }
            }
            ds_f(fp, &g, "Metallicity", &met, 11, dp)?;
        }
        Layout::Gadget4 | Layout::ArepoTng => {
            g.new_dataset_builder()
                .with_data(ids)
                .create("ParticleIDs")
                .map_err(h5err(fp, "PartType4/ParticleIDs", "writing dataset"))?;
            if layout == Layout::Gadget4 {
                ds_f(fp, &g, "StellarFormationTime", &tform, 1, dp)?;
                ds_f(fp, &g, "Metallicity", z, 1, dp)?;
            } else {
                ds_f(fp, &g, "GFM_StellarFormationTime", &tform, 1, dp)?;
                ds_f(fp, &g, "GFM_InitialMass", &imass, 1, dp)?;
                ds_f(fp, &g, "GFM_Metallicity", z, 1, dp)?;
            }
        }
    }
    if !all.child_id.is_empty() {
        ints(
            crate::star_reader::CHILD_ID_DATASET,
            &all.child_id[rows.clone()],
        )?;
    }
    if !all.generation.is_empty() {
        ints(
            crate::star_reader::GENERATION_DATASET,
            &all.generation[rows],
        )?;
    }
    Ok(())
}

/// Writes a side file of per-particle integers: root datasets `ParticleIDs` (u64) and `name`
/// (i64), the format `read_side_field_i64` and the `field:NAME` decomposition read.
pub fn write_side_field_i64(path: &Path, name: &str, ids: &[u64], values: &[i64]) -> Result<()> {
    if ids.len() != values.len() {
        return Err(SnapError::InvalidInput(format!(
            "side file {}: {} IDs but {} values of {name}",
            path.display(),
            ids.len(),
            values.len()
        )));
    }
    let file = hdf5::File::create(path).map_err(h5err(path, "/", "creating the side file"))?;
    file.new_dataset_builder()
        .with_data(ids)
        .create("ParticleIDs")
        .map_err(h5err(path, "ParticleIDs", "writing"))?;
    file.new_dataset_builder()
        .with_data(values)
        .create(name)
        .map_err(h5err(path, name, "writing"))?;
    file.close()
        .map_err(h5err(path, "/", "closing the side file after writing"))?;
    Ok(())
}
