//! Opening snapshots (single and multi-file), layout detection, unit rules, integer star fields.
//!
//! Streaming star reads are in `star_reader.rs`, the inventory in `inventory.rs`.

use std::path::{Path, PathBuf};

use crate::discover::{discover_files, open_h5};
use crate::error::{h5err, Result, SnapError};
use crate::fields::{open_int_column, star_group};
use crate::header::{open_header_group, read_header, read_this_file_counts, Header, Layout};

/// An opened snapshot: its files, layout and header. Particle data is read on demand.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) layout: Layout,
    pub(crate) header: Header,
    pub(crate) notes: Vec<String>,
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
}
