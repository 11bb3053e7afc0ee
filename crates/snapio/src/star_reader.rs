//! Streaming read of the star particles (PartType4): per file { open the group and its fields,
//! per chunk { read, validate, convert to physical units } }, then the identity check.

use std::path::Path;

use crate::discover::open_h5;
use crate::error::{Result, SnapError};
use crate::fields::{open_field, require, star_group, Field, Want};
use crate::header::{cosmic_time_gyr, read_this_file_counts, Header, Layout};
use crate::particles::{InvalidPolicy, ReadOptions, ReadReport, StarParticles};
use crate::snapshot::Snapshot;
use crate::validate::{ChunkCheck, Limits};

/// FIRE/GIZMO dataset of the child number of split particles (with `ParticleIDs`, the identity).
pub(crate) const CHILD_ID_DATASET: &str = "ParticleChildIDsNumber";
/// FIRE/GIZMO dataset of the generation number of split particles.
pub(crate) const GENERATION_DATASET: &str = "ParticleIDGenerationNumber";

/// The PartType4 datasets of one file, checked for type and shape.
struct StarFields {
    coords: Field,
    vels: Field,
    ids: Field,
    /// `None`: every star has `Header/MassTable[4]`.
    masses: Option<Field>,
    tform: Field,
    /// `None`: GADGET-4 file without metallicity (0).
    metal: Option<Field>,
    /// `None`: the layout stores no initial mass (= current mass).
    imass: Option<Field>,
    child: Option<Field>,
    generation: Option<Field>,
}

impl StarFields {
    /// Opens the fields of group `g` of `path`, which holds `n` star particles.
    fn open(path: &Path, g: &hdf5::Group, n: u64, layout: Layout, h: &Header) -> Result<Self> {
        let field = |name: &str, width: Option<usize>, what: &str| -> Result<Field> {
            let want = if name == "ParticleIDs" {
                Want::Integer
            } else {
                Want::Float
            };
            require(path, open_field(path, g, name, n, want, width)?, name, what)
        };
        let coords = field(
            "Coordinates",
            Some(3),
            &format!("({n}, 3) positions in code length units"),
        )?;
        let vels = field(
            "Velocities",
            Some(3),
            &format!("({n}, 3) velocities in code units"),
        )?;
        let ids = field("ParticleIDs", None, &format!("({n},) integer particle IDs"))?;
        let masses = if h.mass_table[4] != 0.0 {
            None
        } else {
            Some(field(
                "Masses",
                None,
                &format!("({n},) masses, since Header/MassTable[4] = 0"),
            )?)
        };
        let tname = layout.formation_time_dataset();
        let tform = field(
            tname,
            None,
            &format!("({n},) formation times (scale factor if cosmological)"),
        )?;
        let mname = layout.metallicity_dataset();
        let metal = match (open_field(path, g, mname, n, Want::Float, None)?, layout) {
            (Some(m), _) => Some(m),
            (None, Layout::Gadget4) => None,
            (None, _) => {
                return Err(SnapError::MissingDataset {
                    path: path.to_path_buf(),
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
            Some(iname) => Some(field(iname, None, &format!("({n},) initial masses"))?),
            None => None,
        };
        let child = open_field(path, g, CHILD_ID_DATASET, n, Want::Integer, None)?;
        let generation = open_field(path, g, GENERATION_DATASET, n, Want::Integer, None)?;
        Ok(StarFields {
            coords,
            vels,
            ids,
            masses,
            tform,
            metal,
            imass,
            child,
            generation,
        })
    }
}

/// Everything a streaming read accumulates over the files.
struct Accumulator {
    out: StarParticles,
    report: ReadReport,
    /// Global row (over all files, in order) of every kept star, for duplicate messages.
    origin: Vec<u64>,
    /// Stars formed after the snapshot within the rounding tolerance (age set to 0).
    negative_ages: u64,
    metal_missing: bool,
    any_identity: bool,
}

/// Constants of the unit conversion and validation, from the header.
struct Conversion {
    lf: f64,
    vf: f64,
    mf: f64,
    t_snap: f64,
    limits: Limits,
}

/// Raw values of one chunk of rows, in code units.
struct RawChunk {
    pos: Vec<f64>,
    vel: Vec<f64>,
    id: Vec<u64>,
    mass: Vec<f64>,
    tf: Vec<f64>,
    z: Vec<f64>,
    im: Vec<f64>,
    child: Option<Vec<i64>>,
    generation: Option<Vec<i64>>,
}

impl Snapshot {
    /// Reads the star particles (PartType4) in physical units, streaming `opts.chunk_len` rows at a time.
    ///
    /// Region selection, wind filtering and validation (see `docs/UNITS.md`, "Validation") happen
    /// per chunk, so memory stays at the kept stars plus one chunk. Invalid particles stop the
    /// read with an error naming file, dataset, row and value, or are dropped and counted in
    /// [`ReadReport::invalid_dropped`], as `opts.on_invalid` says; so are duplicated identities.
    pub fn read_stars(&self, opts: &ReadOptions) -> Result<(StarParticles, ReadReport)> {
        let h = &self.header;
        let conv = Conversion {
            lf: h.length_to_kpc(),
            vf: h.velocity_to_kms(),
            mf: h.mass_to_msun(),
            t_snap: h.time_gyr(),
            limits: Limits::new(h),
        };
        let mut acc = Accumulator {
            out: StarParticles::default(),
            report: ReadReport {
                files: self.files.clone(),
                notes: self.notes.clone(),
                ..Default::default()
            },
            origin: Vec::new(),
            negative_ages: 0,
            metal_missing: false,
            any_identity: false,
        };
        let mut file_rows: Vec<u64> = Vec::with_capacity(self.files.len());
        let mut total_this_file = 0u64;
        for path in &self.files {
            let n = self.read_star_file(path, total_this_file, opts, &conv, &mut acc)?;
            file_rows.push(total_this_file);
            total_this_file += n;
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
        self.check_unique_identities(&file_rows, opts.on_invalid, &mut acc)?;
        self.add_read_notes(&mut acc);
        let Accumulator {
            out, mut report, ..
        } = acc;
        report.stars_kept = out.len() as u64;
        if out.is_empty() {
            return Err(self.no_stars(total_this_file, &report, opts));
        }
        Ok((out, report))
    }

    /// Reads the stars of one file whose first row is global row `row_base`; returns its row count.
    fn read_star_file(
        &self,
        path: &Path,
        row_base: u64,
        opts: &ReadOptions,
        conv: &Conversion,
        acc: &mut Accumulator,
    ) -> Result<u64> {
        let file = open_h5(path)?;
        let n = read_this_file_counts(path, &file)?[4];
        if n == 0 {
            return Ok(0);
        }
        let g = star_group(path, &file, n)?;
        let fields = StarFields::open(path, &g, n, self.layout, &self.header)?;
        if opts.region.is_none() {
            // Every non-wind star of the file is kept: reserve once per file, for a count the
            // dataset shapes have just confirmed (a header count alone could be anything).
            reserve(&mut acc.out, n as usize);
        }
        acc.metal_missing |= fields.metal.is_none();
        acc.any_identity |= fields.child.is_some() || fields.generation.is_some();
        let chunk = opts.chunk_len.max(1);
        let n = n as usize;
        let mut start = 0usize;
        while start < n {
            let end = (start + chunk).min(n);
            self.read_star_chunk(path, &fields, start, end, row_base, opts, conv, acc)?;
            start = end;
        }
        Ok(n as u64)
    }

    /// Reads, validates, filters and converts rows `start..end` of one file.
    #[allow(clippy::too_many_arguments)]
    fn read_star_chunk(
        &self,
        path: &Path,
        f: &StarFields,
        start: usize,
        end: usize,
        row_base: u64,
        opts: &ReadOptions,
        conv: &Conversion,
        acc: &mut Accumulator,
    ) -> Result<()> {
        let m = end - start;
        let report = &mut acc.report;
        let b = &mut report.bytes_read;
        let pos = f.coords.read_f64(path, start, end, b)?;
        report.rows_read += m as u64;
        let mut check =
            ChunkCheck::new(opts.on_invalid, path, start, m, &mut report.invalid_dropped);
        // Positions: every row, in or out of the region.
        check.finite("nonfinite_position", &f.coords.name, &pos, 3, |_| true)?;
        for j in 0..m {
            let x = [pos[3 * j], pos[3 * j + 1], pos[3 * j + 2]];
            if !check.is_bad(j) {
                if let Some(problem) = conv.limits.position_problem(x) {
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
        let lf = conv.lf;
        let keep: Vec<bool> = match &opts.region {
            Some(region) => (0..m)
                .map(|j| {
                    region.contains([pos[3 * j] * lf, pos[3 * j + 1] * lf, pos[3 * j + 2] * lf])
                })
                .collect(),
            None => vec![true; m],
        };
        if !(0..m).any(|j| keep[j] && !check.is_bad(j)) {
            return Ok(());
        }
        let b = &mut 0u64;
        let raw = self.read_raw_chunk(path, f, start, end, pos, b)?;
        let in_region = |j: usize| keep[j];
        check.finite("nonfinite_velocity", &f.vels.name, &raw.vel, 3, in_region)?;
        if let Some(mf) = &f.masses {
            check.finite("nonfinite_mass", &mf.name, &raw.mass, 1, in_region)?;
        }
        check.finite(
            "nonfinite_formation_time",
            &f.tform.name,
            &raw.tf,
            1,
            in_region,
        )?;
        if let Some(imf) = &f.imass {
            check.finite("nonfinite_initial_mass", &imf.name, &raw.im, 1, in_region)?;
        }
        let wind: Vec<bool> = raw
            .tf
            .iter()
            .map(|&t| self.layout == Layout::ArepoTng && t <= 0.0)
            .collect();
        let star = |j: usize| keep[j] && !wind[j];
        self.check_star_values(f, &raw, conv, &star, &mut check)?;
        let bad = check.bad;
        acc.report.bytes_read += *b;
        for j in 0..m {
            if bad[j] {
                continue;
            }
            if wind[j] {
                acc.report.winds_dropped += 1;
                continue;
            }
            if !keep[j] {
                continue;
            }
            push_star(&self.header, conv, &raw, j, acc);
            acc.origin.push(row_base + (start + j) as u64);
        }
        Ok(())
    }

    /// Reads every field but the positions (already read) of rows `start..end`.
    fn read_raw_chunk(
        &self,
        path: &Path,
        f: &StarFields,
        start: usize,
        end: usize,
        pos: Vec<f64>,
        b: &mut u64,
    ) -> Result<RawChunk> {
        let m = end - start;
        let vel = f.vels.read_f64(path, start, end, b)?;
        let id = f.ids.read_u64(path, start, end, b)?;
        let mass = match &f.masses {
            Some(fm) => fm.read_f64(path, start, end, b)?,
            None => vec![self.header.mass_table[4]; m],
        };
        let tf = f.tform.read_f64(path, start, end, b)?;
        let z = match &f.metal {
            Some(fz) => fz.read_f64(path, start, end, b)?,
            None => vec![0.0; m],
        };
        let im = match &f.imass {
            Some(fi) => fi.read_f64(path, start, end, b)?,
            None => mass.clone(),
        };
        let child = match &f.child {
            Some(fc) => Some(fc.read_i64(path, start, end, b)?),
            None => None,
        };
        let generation = match &f.generation {
            Some(fg) => Some(fg.read_i64(path, start, end, b)?),
            None => None,
        };
        Ok(RawChunk {
            pos,
            vel,
            id,
            mass,
            tf,
            z,
            im,
            child,
            generation,
        })
    }

    /// Range checks of the rows `star(j)` (non-wind, inside the region): masses, metallicity,
    /// age, child/generation numbers.
    fn check_star_values(
        &self,
        f: &StarFields,
        raw: &RawChunk,
        conv: &Conversion,
        star: &dyn Fn(usize) -> bool,
        check: &mut ChunkCheck<'_>,
    ) -> Result<()> {
        let mass_name = match &f.masses {
            Some(fm) => fm.name.clone(),
            None => "Header/MassTable[4]".to_string(),
        };
        check.positive("nonpositive_mass", &mass_name, &raw.mass, star)?;
        if let Some(fi) = &f.imass {
            check.positive("nonpositive_initial_mass", &fi.name, &raw.im, star)?;
        }
        if let Some(fz) = &f.metal {
            check.finite("nonfinite_metallicity", &fz.name, &raw.z, 1, star)?;
            for (j, &z) in raw.z.iter().enumerate() {
                if star(j) && !check.is_bad(j) && !(0.0..=1.0).contains(&z) {
                    check.invalid(
                        j,
                        "metallicity_out_of_range",
                        &fz.name,
                        format!("{z:e}"),
                        "metal mass fraction outside [0, 1]".into(),
                    )?;
                }
            }
        }
        for (j, &tf) in raw.tf.iter().enumerate() {
            if star(j) && !check.is_bad(j) {
                let age = star_age(&self.header, conv.t_snap, tf);
                if let Some(problem) = conv.limits.age_problem(tf, age) {
                    check.invalid(
                        j,
                        "age_out_of_range",
                        &f.tform.name,
                        format!("{tf:e}"),
                        problem,
                    )?;
                }
            }
        }
        for (fd, values) in [(&f.child, &raw.child), (&f.generation, &raw.generation)] {
            if let (Some(fd), Some(values)) = (fd, values) {
                for (j, &v) in values.iter().enumerate() {
                    if star(j) && !check.is_bad(j) && u32::try_from(v).is_err() {
                        check.invalid(
                            j,
                            "child_id_out_of_range",
                            &fd.name,
                            format!("{v}"),
                            "expected an integer in [0, 2^32 - 1]".into(),
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks that the identities of the kept stars are unique: an error naming both files and
    /// rows, or (drop) keeps the first of each identity and counts the others as `duplicate_id`.
    fn check_unique_identities(
        &self,
        file_rows: &[u64],
        policy: InvalidPolicy,
        acc: &mut Accumulator,
    ) -> Result<()> {
        let out = &acc.out;
        let uids = out.uids();
        let mut order: Vec<usize> = (0..uids.len()).collect();
        order.sort_unstable_by_key(|&i| (uids[i], i));
        let mut dup = vec![false; uids.len()];
        let mut n_dup = 0u64;
        for w in order.windows(2) {
            let (first, second) = (w[0], w[1]);
            if uids[first] != uids[second] {
                continue;
            }
            if policy == InvalidPolicy::Error {
                let locate = |i: usize| {
                    let g = acc.origin[i];
                    let k = file_rows.partition_point(|&s| s <= g) - 1;
                    (self.files[k].clone(), g - file_rows[k])
                };
                // Name the earliest first occurrence of the smallest duplicated identity.
                let first = order[order.partition_point(|&i| uids[i] < uids[first])];
                let (path, row) = locate(first);
                let (other_path, other_row) = locate(second);
                return Err(SnapError::DuplicateId {
                    path,
                    row,
                    other_path,
                    other_row,
                    uid: uids[first],
                    id: out.id[first],
                    child: out.child(first),
                    generation: out.generation_of(first),
                });
            }
            dup[second] = true;
            n_dup += 1;
        }
        if n_dup > 0 {
            acc.out.retain(|_, i| !dup[i]);
            *acc.report
                .invalid_dropped
                .entry("duplicate_id".into())
                .or_insert(0) += n_dup;
        }
        acc.origin = Vec::new();
        Ok(())
    }

    /// Notes on the conventions the read applied (winds, clamped ages, defaults, drops).
    fn add_read_notes(&self, acc: &mut Accumulator) {
        let layout = self.layout;
        let report = &mut acc.report;
        if layout == Layout::ArepoTng && report.winds_dropped > 0 {
            report.notes.push(format!(
                "{} wind particles (GFM_StellarFormationTime <= 0) dropped",
                report.winds_dropped
            ));
        }
        if acc.negative_ages > 0 {
            report.notes.push(format!(
                "{} stars formed after the snapshot time within rounding (negative age above -{:.2e} Gyr): age set to 0",
                acc.negative_ages,
                crate::validate::age_tolerance_gyr(self.header.time_gyr())
            ));
        }
        if acc.metal_missing {
            report
                .notes
                .push("PartType4/Metallicity absent: metallicity set to 0".into());
        }
        if layout.initial_mass_dataset().is_none() {
            report.notes.push(format!(
                "{layout} stores no initial stellar mass: initial_mass = current mass"
            ));
        }
        if self.header.mass_table[4] != 0.0 {
            report.notes.push(format!(
                "Header/MassTable[4] = {} (code units): all stars have that mass",
                self.header.mass_table[4]
            ));
        }
        if acc.any_identity {
            report.notes.push(format!(
                "PartType4/{CHILD_ID_DATASET} and/or {GENERATION_DATASET} present: identity = \
                 snapio::particle_uid(ParticleIDs, child, generation), ParticleIDs itself when both are 0"
            ));
        }
        let dropped = report.invalid_dropped_total();
        if dropped > 0 {
            let kinds: Vec<String> = report
                .invalid_dropped
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            report.notes.push(format!(
                "{dropped} invalid star particles dropped (on_invalid = \"drop\"): {}",
                kinds.join(", ")
            ));
        }
    }

    /// The error of a read that kept no star, saying why.
    fn no_stars(&self, total: u64, report: &ReadReport, opts: &ReadOptions) -> SnapError {
        let dropped = report.invalid_dropped_total();
        let detail = if total == 0 {
            "Header/NumPart_Total[4] = 0: no PartType4 in any file".to_string()
        } else if report.winds_dropped == total {
            format!("all {total} PartType4 particles are wind particles")
        } else if dropped > 0 && report.winds_dropped + dropped == total {
            format!(
                "all {total} PartType4 particles are invalid or winds ({dropped} dropped: {:?})",
                report.invalid_dropped
            )
        } else if let Some(r) = &opts.region {
            format!(
                "none of the {total} star particles lies inside the region centre {:?} kpc, radius {} kpc",
                r.center, r.radius
            )
        } else {
            "nothing kept".into()
        };
        SnapError::NoStars {
            path: self.files[0].clone(),
            detail,
        }
    }
}

/// Room for `n` more stars in every column that is filled.
fn reserve(out: &mut StarParticles, n: usize) {
    out.position.reserve(n);
    out.velocity.reserve(n);
    out.mass.reserve(n);
    out.initial_mass.reserve(n);
    out.id.reserve(n);
    out.age.reserve(n);
    out.metallicity.reserve(n);
}

/// Age in Gyr at the snapshot of a star formed at stored time `tf` (the reader's one formula).
fn star_age(h: &Header, t_snap: f64, tf: f64) -> f64 {
    if h.cosmological {
        t_snap - cosmic_time_gyr(tf, h.hubble_param, h.omega0, h.omega_lambda)
    } else {
        h.age_gyr(tf)
    }
}

/// Appends row `j` of `raw`, converted to physical units, to the accumulated stars.
fn push_star(h: &Header, conv: &Conversion, raw: &RawChunk, j: usize, acc: &mut Accumulator) {
    let (lf, vf, mf) = (conv.lf, conv.vf, conv.mf);
    let out = &mut acc.out;
    let n = out.len();
    for (col, values) in [
        (&mut out.child_id, &raw.child),
        (&mut out.generation, &raw.generation),
    ] {
        if values.is_some() || !col.is_empty() {
            col.resize(n, 0);
            // Range checked in check_star_values.
            col.push(values.as_ref().map_or(0, |v| v[j] as u32));
        }
    }
    let (pos, vel) = (&raw.pos, &raw.vel);
    out.position
        .push([pos[3 * j] * lf, pos[3 * j + 1] * lf, pos[3 * j + 2] * lf]);
    out.velocity
        .push([vel[3 * j] * vf, vel[3 * j + 1] * vf, vel[3 * j + 2] * vf]);
    out.mass.push(raw.mass[j] * mf);
    out.initial_mass.push(raw.im[j] * mf);
    out.id.push(raw.id[j]);
    let age = star_age(h, conv.t_snap, raw.tf[j]);
    if age < 0.0 {
        acc.negative_ages += 1;
    }
    out.age.push(age.max(0.0));
    out.metallicity.push(raw.z[j]);
}
