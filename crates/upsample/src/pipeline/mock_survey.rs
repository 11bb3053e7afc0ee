//! The mock survey composed into the star stream (issue 13): every batch written to
//! `catalog.hdf5` is also observed by each observer (`survey::mock_observe`: isochrone
//! photometry, astrometry, dust, Gaia errors, the cut on observed G), and the stars that pass
//! go to `DIR/survey_obsN.hdf5` with every catalogue column plus the survey columns.
//!
//! Noise seeds: star `k` (catalogue order) among the stars of parent particle `uid` drawn in
//! cluster `c` gets the stream `star_rng(survey_seed(seed, observer), survey_star_id(uid, c, k))`.
//! The count `k` restarts with every call of [`StarSink::append`], which holds all the stars of
//! each of its parents in that cluster: a kernel-method batch holds whole parents, the merge
//! appends a cluster's part at once. So the draws depend on neither batch sizes nor threads.
//!
//! Dust from gas (`dust = "gas"`): when the sink starts, the snapshot's PartType0 inside the
//! sphere circumscribing the grid cube is read (`snapio::Snapshot::read_gas`), moved into the
//! catalogue's galaxy frame (its root attributes) and deposited on a `gas_grid`³ cube of side
//! `gas_box_kpc` centred on the galaxy (`survey::gas_column::ColumnGrid`: m X_H f_neutral / m_p
//! atoms per particle, × Z / z_sun with `metal_scaling`). Memory: 8 gas_grid³ bytes for the
//! grid (134 MB at 256) plus about 72 bytes per gas particle while depositing. Per batch, only
//! the stars whose unreddened G can pass the cut get a column (exact ray integral observer →
//! star, rayon tasks of 4096 stars); A0 = N_H / nh_per_av.

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;

use snapio::{
    particle_uid, AttrValue, CatalogMeta, CatalogWriter, GalaxyFrame, InvalidPolicy, ReadOptions,
    Snapshot, Sphere, StarBatch, TableColumn, TableValues,
};
use survey::gas_column::ColumnGrid;
use survey::isochrone_interp::FLAG_REMNANT;
use survey::{
    builtin_gaia_edr3, mock_observe, read_isochrone_dir, Dust, IsochroneGrid, MockColumns,
    MockSettings, Observer, SkyProjector,
};

use super::run_dir::{RunPaths, SurveyCounts};
use crate::config::{Config, DustKind};
use crate::seed::{survey_seed, survey_star_id};
use crate::stars::{Lifetime, StarSink};

/// Stars per `mock_observe` call (a rayon task).
const STARS_PER_TASK: usize = 4096;

/// The isochrones' lifetime rule, which replaces the main-sequence scaling when a survey is
/// configured: a star heavier than the most massive star still alive on the isochrone of its
/// parent's age and metallicity is a remnant.
pub(crate) struct IsochroneLifetime<'a>(&'a IsochroneGrid);

impl Lifetime for IsochroneLifetime<'_> {
    fn alive(&self, m: f64, age_gyr: f64, z: f64) -> bool {
        m <= self.0.max_alive_mass(age_gyr, z)
    }
}

/// A configured survey: isochrones and observers, loaded once per run.
pub(crate) struct MockSurvey {
    iso: IsochroneGrid,
    /// Indices of G, G_BP, G_RP in the isochrones' bands.
    bands: [usize; 3],
    observers: Vec<Observer>,
    projectors: Vec<SkyProjector>,
    settings: Vec<MockSettings<'static>>,
    keep_remnants: bool,
    /// The dust screen (a lower bound of A_G prunes the candidates).
    dust: survey::extinction::DustModel,
    /// Dust from the snapshot's gas, when configured: how to build the grid.
    gas: Option<GasDust>,
    /// Root attributes shared by every observer's catalogue.
    attributes: Vec<(String, AttrValue)>,
}

/// How the gas grid of `dust = "gas"` is built and converted.
#[derive(Debug, Clone, Copy)]
struct GasDust {
    /// Cells per side.
    cells: usize,
    /// Side of the cube (kpc), centred on the galaxy.
    box_kpc: f64,
    /// N_H / A_V (atoms cm⁻² mag⁻¹).
    nh_per_av: f64,
    /// Solar metallicity of the Z / Z_sun dust scaling; None: no scaling.
    z_sun: Option<f64>,
    /// What the gas reader does with invalid particles (`[input] on_invalid`).
    on_invalid: InvalidPolicy,
}

/// The catalogue's galaxy frame, from its root attributes (`frame_center_kpc`,
/// `frame_bulk_velocity_kms`, `frame_rotation`).
fn frame_of(meta: &CatalogMeta) -> Result<GalaxyFrame> {
    let get = |name: &str, len: usize| -> Result<Vec<f64>> {
        match meta.attributes.iter().find(|(n, _)| n == name) {
            Some((_, AttrValue::FloatArray(v))) if v.len() == len => Ok(v.clone()),
            _ => bail!("catalogue attributes lack `{name}` ({len} floats): the gas cannot be put in the galaxy frame"),
        }
    };
    let (c, v, r) = (
        get("frame_center_kpc", 3)?,
        get("frame_bulk_velocity_kms", 3)?,
        get("frame_rotation", 9)?,
    );
    Ok(GalaxyFrame {
        center: [c[0], c[1], c[2]],
        bulk_velocity: [v[0], v[1], v[2]],
        rotation: [[r[0], r[1], r[2]], [r[3], r[4], r[5]], [r[6], r[7], r[8]]],
    })
}

impl GasDust {
    /// Reads the gas of `snapshot` around the galaxy, moves it into `frame` and deposits it;
    /// returns the grid and the root attributes that describe what was deposited.
    fn deposit(
        &self,
        snapshot: &std::path::Path,
        frame: &GalaxyFrame,
    ) -> Result<(ColumnGrid, Vec<(String, AttrValue)>)> {
        let t = std::time::Instant::now();
        let ctx = || format!("survey.dust = \"gas\": the gas of {}", snapshot.display());
        let snap = Snapshot::open(snapshot).with_context(ctx)?;
        let opts = ReadOptions {
            region: Some(Sphere {
                center: frame.center,
                radius: 0.5 * 3f64.sqrt() * self.box_kpc,
            }),
            on_invalid: self.on_invalid,
            ..ReadOptions::default()
        };
        let (mut gas, report) = snap.read_gas(&opts).with_context(ctx)?;
        gas.to_frame(frame);
        let weight: Vec<f64> = match self.z_sun {
            None => Vec::new(),
            Some(z_sun) => {
                if gas.metallicity.is_empty() && !gas.is_empty() {
                    bail!(
                        "survey.metal_scaling = true but the gas of {} has no metallicity dataset: set metal_scaling = false",
                        snapshot.display()
                    );
                }
                gas.metallicity.iter().map(|z| z / z_sun).collect()
            }
        };
        let grid = ColumnGrid::deposit(
            &survey::gas_column::GasParticles {
                pos_kpc: &gas.position,
                mass_msun: &gas.mass,
                hydrogen_fraction: &gas.hydrogen_fraction,
                neutral_fraction: &gas.neutral_fraction,
                smoothing_kpc: &gas.smoothing_length,
                weight: &weight,
            },
            [0.0; 3],
            self.box_kpc,
            self.cells,
        )
        .with_context(ctx)?;
        tracing::info!(
            "gas for extinction: {} particles within {:.1} kpc deposited on a {}^3 grid of {} kpc in {:.2} s",
            gas.len(),
            0.5 * 3f64.sqrt() * self.box_kpc,
            self.cells,
            self.box_kpc,
            t.elapsed().as_secs_f64()
        );
        let attrs = vec![
            (
                "dust_gas_particles".into(),
                AttrValue::Int(gas.len() as i64),
            ),
            (
                "dust_gas_atoms".into(),
                AttrValue::Float(grid.total_atoms()),
            ),
            (
                "dust_gas_reader".into(),
                AttrValue::Str(report.notes.join("; ")),
            ),
        ];
        Ok((grid, attrs))
    }
}

impl MockSurvey {
    /// The lifetime rule of these isochrones.
    pub(crate) fn lifetime(&self) -> IsochroneLifetime<'_> {
        IsochroneLifetime(&self.iso)
    }

    /// The survey of `cfg` (validated), or None when it is off. Reads the isochrones (the
    /// shipped ones when `survey.isochrones` is absent), naming the folder on failure.
    pub(crate) fn load(cfg: &Config) -> Result<Option<MockSurvey>> {
        let s = &cfg.survey;
        if !s.enabled {
            return Ok(None);
        }
        s.validate()?;
        let (set, source) = match &s.isochrones {
            None => (
                builtin_gaia_edr3().context("reading the builtin isochrones")?,
                "builtin PARSEC Gaia EDR3 tables (data/isochrones/parsec_gaiaedr3)".to_string(),
            ),
            Some(dir) => (
                read_isochrone_dir(dir)
                    .with_context(|| format!("survey.isochrones: reading {}", dir.display()))?,
                dir.display().to_string(),
            ),
        };
        let iso = IsochroneGrid::new(set)
            .with_context(|| format!("survey.isochrones: the tables of {source}"))?;
        let band = |name: &str| {
            iso.band_index(name).with_context(|| {
                format!(
                    "survey.isochrones: {source} has no {name} band (bands: {:?}); a Gaia mock needs G, G_BP and G_RP",
                    iso.bands()
                )
            })
        };
        let bands = [band("G")?, band("G_BP")?, band("G_RP")?];
        let observers = s.observers();
        let cut = survey::selection::MagnitudeCut {
            bright: f64::NEG_INFINITY,
            faint: s.g_max,
        };
        let settings = (0..observers.len())
            .map(|j| MockSettings {
                release: s.gaia_release(),
                dust: Dust::Model(s.dust_model()),
                cut,
                seed: survey_seed(cfg.seed, j),
            })
            .collect();
        let dust = match s.dust {
            DustKind::None => "none".to_string(),
            DustKind::Constant => format!("constant A0 = {} mag", s.a0),
            DustKind::PerKpc => format!("uniform screen A0 = {} mag/kpc x distance", s.a0),
            DustKind::Gas => format!(
                "gas: neutral hydrogen column N_H between observer and star through the snapshot's \
                 PartType0 (m X_H f_neutral / m_p atoms per particle{}, deposited on a {}^3 grid of \
                 side {} kpc centred on the galaxy; exact ray integral), A0 = N_H / {:e} cm^-2 mag^-1 \
                 (N_H/A_V of Guver & Ozel 2009: 2.21e21)",
                if s.metal_scaling {
                    format!(" x Z / {}", s.z_sun)
                } else {
                    String::new()
                },
                s.gas_grid,
                s.gas_box_kpc,
                s.nh_per_av
            ),
        };
        let gas = (s.dust == DustKind::Gas).then_some(GasDust {
            cells: s.gas_grid,
            box_kpc: s.gas_box_kpc,
            nh_per_av: s.nh_per_av,
            z_sun: s.metal_scaling.then_some(s.z_sun),
            on_invalid: cfg.input.on_invalid,
        });
        let attributes = vec![
            (
                "gaia_release".into(),
                AttrValue::Str(format!("{:?}", s.release).to_lowercase()),
            ),
            ("dust_model".into(), AttrValue::Str(dust)),
            (
                "extinction_law".into(),
                AttrValue::Str(
                    "Gaia EDR3 colour-dependent A_X/A0 (Riello et al. 2021); A0 = A_V at 550 nm"
                        .into(),
                ),
            ),
            (
                "magnitude_cut".into(),
                AttrValue::Str(format!("observed G <= {}", s.g_max)),
            ),
            ("g_max".into(), AttrValue::Float(s.g_max)),
            ("isochrones".into(), AttrValue::Str(source)),
            (
                "remnants".into(),
                AttrValue::Str(if s.keep_remnants {
                    "kept (flag 8, NaN magnitudes)".into()
                } else {
                    "dropped".into()
                }),
            ),
            (
                "noise_seeds".into(),
                AttrValue::Str(
                    "per star: star_rng(survey_seed(seed, observer), survey_star_id(parent uid, cluster, index among the parent's stars in the cluster))"
                        .into(),
                ),
            ),
        ];
        let mut attributes = attributes;
        if let Some(g) = &gas {
            attributes.extend([
                ("dust_nh_per_av".into(), AttrValue::Float(g.nh_per_av)),
                ("dust_gas_grid".into(), AttrValue::Int(g.cells as i64)),
                ("dust_gas_box_kpc".into(), AttrValue::Float(g.box_kpc)),
                (
                    "dust_z_sun".into(),
                    AttrValue::Float(g.z_sun.unwrap_or(0.0)),
                ),
            ]);
        }
        Ok(Some(MockSurvey {
            iso,
            bands,
            projectors: observers.iter().map(SkyProjector::new).collect(),
            observers,
            settings,
            keep_remnants: s.keep_remnants,
            dust: s.dust_model(),
            gas,
            attributes,
        }))
    }

    /// Number of observers (survey catalogues).
    pub(crate) fn observers(&self) -> usize {
        self.observers.len()
    }

    /// Starts the survey catalogues of `paths` (temporary names): the catalogue's root
    /// attributes `meta`, the survey's and the observer's.
    fn create_writers(
        &self,
        paths: &RunPaths,
        meta: &CatalogMeta,
        parent_identity: bool,
        extra: &[(String, AttrValue)],
    ) -> Result<Vec<CatalogWriter>> {
        let columns: Vec<TableColumn> = survey_columns()
            .into_iter()
            .map(|(name, units, values)| TableColumn::new(name, units, "", values))
            .collect();
        let mut out = Vec::with_capacity(self.observers.len());
        for (j, o) in self.observers.iter().enumerate() {
            let mut m = meta.clone();
            m.attributes.extend(self.attributes.iter().cloned());
            m.attributes.extend(extra.iter().cloned());
            m.attributes.extend([
                ("observer_index".into(), AttrValue::Int(j as i64)),
                (
                    "observer_position_kpc".into(),
                    AttrValue::FloatArray(o.position_galaxy_kpc().to_vec()),
                ),
                (
                    "observer_velocity_kms".into(),
                    AttrValue::FloatArray(o.velocity_galaxy_kms().to_vec()),
                ),
                (
                    "observer_azimuth_deg".into(),
                    AttrValue::Float(o.azimuth_deg),
                ),
                ("observer_r0_kpc".into(), AttrValue::Float(o.r0_kpc)),
                ("observer_z_sun_kpc".into(), AttrValue::Float(o.z_sun_kpc)),
                (
                    "observer_v_sun_kms".into(),
                    AttrValue::FloatArray(o.v_sun_kms.to_vec()),
                ),
            ]);
            let path = paths.survey(j);
            out.push(
                CatalogWriter::create_with_columns(&path, &m, parent_identity, &columns)
                    .with_context(|| format!("creating survey catalogue {}", path.display()))?,
            );
        }
        Ok(out)
    }
}

/// The survey columns: name, units, and the element type (the variant; values empty).
fn survey_columns() -> Vec<(&'static str, &'static str, TableValues)> {
    let mut v: Vec<(&'static str, &'static str, TableValues)> = F64_COLUMNS
        .iter()
        .map(|(n, u, _)| (*n, *u, TableValues::Float(Vec::new())))
        .collect();
    v.push((
        "phase_label",
        "dimensionless (PARSEC label: 0 PMS, 1 MS, 2 SGB, 3 RGB, 4-6 CHeB, 7 EAGB, 8 TP-AGB, 9 post-AGB/WD)",
        TableValues::Byte(Vec::new()),
    ));
    v.push((
        "survey_flags",
        "dimensionless (bits: 1 mass below grid, 2 age clamped, 4 Z clamped, 8 remnant, 16 bad input)",
        TableValues::Byte(Vec::new()),
    ));
    v
}

/// A getter of one f64 column of a batch's mock columns (`bands`: G, BP, RP indices).
type Getter = fn(&MockColumns, [usize; 3]) -> &[f64];

/// Every f64 survey column: name, units, where its values are.
const F64_COLUMNS: &[(&str, &str, Getter)] = &[
    ("distance", "kpc (heliocentric)", |c, _| {
        &c.astrometry.distance_kpc
    }),
    ("ra", "deg (ICRS)", |c, _| &c.astrometry.ra_deg),
    ("dec", "deg (ICRS)", |c, _| &c.astrometry.dec_deg),
    ("l", "deg (Galactic)", |c, _| &c.astrometry.l_deg),
    ("b", "deg (Galactic)", |c, _| &c.astrometry.b_deg),
    ("parallax", "mas", |c, _| &c.astrometry.parallax_mas),
    ("pmra", "mas/yr (includes cos dec)", |c, _| {
        &c.astrometry.pmra_cosdec_masyr
    }),
    ("pmdec", "mas/yr", |c, _| &c.astrometry.pmdec_masyr),
    ("pml", "mas/yr (includes cos b)", |c, _| {
        &c.astrometry.pml_cosb_masyr
    }),
    ("pmb", "mas/yr", |c, _| &c.astrometry.pmb_masyr),
    ("radial_velocity", "km/s (heliocentric)", |c, _| {
        &c.astrometry.radial_velocity_kms
    }),
    ("distance_modulus", "mag", |c, _| {
        &c.astrometry.distance_modulus
    }),
    ("current_mass", "Msun", |c, _| &c.photometry.mass),
    ("log_l", "log10(L / Lsun)", |c, _| &c.photometry.log_l),
    ("log_teff", "log10(Teff / K)", |c, _| &c.photometry.log_teff),
    ("log_g", "log10(g / (cm s^-2))", |c, _| &c.photometry.log_g),
    ("abs_g", "mag (Vega, absolute)", |c, b| {
        &c.photometry.abs_mag[b[0]]
    }),
    ("abs_bp", "mag (Vega, absolute)", |c, b| {
        &c.photometry.abs_mag[b[1]]
    }),
    ("abs_rp", "mag (Vega, absolute)", |c, b| {
        &c.photometry.abs_mag[b[2]]
    }),
    (
        "g_intrinsic",
        "mag (Vega, apparent, no extinction)",
        |c, _| &c.intrinsic_g,
    ),
    (
        "bp_intrinsic",
        "mag (Vega, apparent, no extinction)",
        |c, _| &c.intrinsic_bp,
    ),
    (
        "rp_intrinsic",
        "mag (Vega, apparent, no extinction)",
        |c, _| &c.intrinsic_rp,
    ),
    ("a0", "mag (A_V at 550 nm)", |c, _| &c.reddened.a0),
    ("a_g", "mag", |c, _| &c.reddened.a_g),
    ("a_bp", "mag", |c, _| &c.reddened.a_bp),
    ("a_rp", "mag", |c, _| &c.reddened.a_rp),
    ("g", "mag (Vega, apparent, reddened, true)", |c, _| {
        &c.reddened.g
    }),
    ("bp", "mag (Vega, apparent, reddened, true)", |c, _| {
        &c.reddened.bp
    }),
    ("rp", "mag (Vega, apparent, reddened, true)", |c, _| {
        &c.reddened.rp
    }),
    ("obs_ra", "deg (ICRS, observed)", |c, _| &c.observed.ra_deg),
    ("ra_error", "mas (includes cos dec)", |c, _| {
        &c.observed.ra_cosdec_error_mas
    }),
    ("obs_dec", "deg (ICRS, observed)", |c, _| {
        &c.observed.dec_deg
    }),
    ("dec_error", "mas", |c, _| &c.observed.dec_error_mas),
    ("obs_parallax", "mas (observed)", |c, _| {
        &c.observed.parallax_mas
    }),
    ("parallax_error", "mas", |c, _| {
        &c.observed.parallax_error_mas
    }),
    ("obs_pmra", "mas/yr (includes cos dec, observed)", |c, _| {
        &c.observed.pmra_cosdec_masyr
    }),
    ("pmra_error", "mas/yr", |c, _| &c.observed.pmra_error_masyr),
    ("obs_pmdec", "mas/yr (observed)", |c, _| {
        &c.observed.pmdec_masyr
    }),
    ("pmdec_error", "mas/yr", |c, _| {
        &c.observed.pmdec_error_masyr
    }),
    (
        "obs_radial_velocity",
        "km/s (observed; NaN beyond the RVS limit)",
        |c, _| &c.observed.radial_velocity_kms,
    ),
    (
        "radial_velocity_error",
        "km/s (NaN beyond the RVS limit)",
        |c, _| &c.observed.radial_velocity_error_kms,
    ),
    ("grvs", "mag (Vega, G_RVS from G - G_RP)", |c, _| {
        &c.observed.grvs_mag
    }),
    ("obs_g", "mag (Vega, observed)", |c, _| &c.observed.g_mag),
    ("g_error", "mag", |c, _| &c.observed.g_mag_error),
    ("obs_bp", "mag (Vega, observed)", |c, _| &c.observed.bp_mag),
    ("bp_error", "mag", |c, _| &c.observed.bp_mag_error),
    ("obs_rp", "mag (Vega, observed)", |c, _| &c.observed.rp_mag),
    ("rp_error", "mag", |c, _| &c.observed.rp_mag_error),
];

/// Rows `keep` of `b`.
fn take_rows(b: &StarBatch, keep: &[usize]) -> StarBatch {
    let pick = |v: &Vec<u32>| -> Vec<u32> {
        if v.is_empty() {
            Vec::new()
        } else {
            keep.iter().map(|&i| v[i]).collect()
        }
    };
    StarBatch {
        position: keep.iter().map(|&i| b.position[i]).collect(),
        velocity: keep.iter().map(|&i| b.velocity[i]).collect(),
        mass: keep.iter().map(|&i| b.mass[i]).collect(),
        initial_mass: keep.iter().map(|&i| b.initial_mass[i]).collect(),
        age: keep.iter().map(|&i| b.age[i]).collect(),
        metallicity: keep.iter().map(|&i| b.metallicity[i]).collect(),
        parent_id: keep.iter().map(|&i| b.parent_id[i]).collect(),
        cluster: keep.iter().map(|&i| b.cluster[i]).collect(),
        parent_child_id: pick(&b.parent_child_id),
        parent_generation: pick(&b.parent_generation),
    }
}

/// The survey's noise identity of every star of a batch that holds all the stars of each of
/// its parents per cluster (see the module docs).
fn star_ids(b: &StarBatch) -> Vec<u64> {
    let mut seen: HashMap<(u64, u32), u32> = HashMap::new();
    (0..b.len())
        .map(|i| {
            let uid = particle_uid(
                b.parent_id[i],
                b.parent_child_id.get(i).copied().unwrap_or(0),
                b.parent_generation.get(i).copied().unwrap_or(0),
            );
            let k = seen.entry((uid, b.cluster[i])).or_insert(0);
            let id = survey_star_id(uid, b.cluster[i], *k);
            *k += 1;
            id
        })
        .collect()
}

/// The catalogue writer and, when a survey is on, each observer's survey writer: what the
/// star stream is written into.
pub(crate) struct CatalogSink<'a> {
    catalog: CatalogWriter,
    survey: Option<(&'a MockSurvey, Vec<CatalogWriter>)>,
    /// The deposited gas and N_H / A_V, with `dust = "gas"`.
    gas: Option<(ColumnGrid, f64)>,
    counts: Vec<SurveyCounts>,
    paths: Vec<PathBuf>,
}

impl<'a> CatalogSink<'a> {
    /// Wraps `catalog`; with `survey`, starts its catalogues in `paths` with the root
    /// attributes `meta` of the catalogue (with dust from gas, after depositing the gas of
    /// `paths.snapshot` in the frame that `meta` records).
    pub(crate) fn new(
        catalog: CatalogWriter,
        survey: Option<&'a MockSurvey>,
        paths: &RunPaths,
        meta: &CatalogMeta,
        parent_identity: bool,
    ) -> Result<Self> {
        let mut gas = None;
        let (survey, counts, files) = match survey {
            None => (None, Vec::new(), Vec::new()),
            Some(s) => {
                let mut extra = Vec::new();
                if let Some(g) = &s.gas {
                    let (grid, attrs) = g.deposit(&paths.snapshot, &frame_of(meta)?)?;
                    gas = Some((grid, g.nh_per_av));
                    extra = attrs;
                }
                let w = s.create_writers(paths, meta, parent_identity, &extra)?;
                let counts = (0..s.observers())
                    .map(|j| SurveyCounts {
                        observer: j,
                        file: paths
                            .survey(j)
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        observer_position_kpc: s.observers[j].position_galaxy_kpc(),
                        ..Default::default()
                    })
                    .collect();
                let files = (0..s.observers()).map(|j| paths.survey(j)).collect();
                (Some((s, w)), counts, files)
            }
        };
        Ok(CatalogSink {
            catalog,
            survey,
            gas,
            counts,
            paths: files,
        })
    }

    /// Finishes the survey catalogues, then the catalogue (renaming each into place); returns
    /// the catalogue's rows and the survey's counts. A failure leaves none of them.
    pub(crate) fn finish(self) -> Result<(u64, Vec<SurveyCounts>)> {
        let CatalogSink {
            catalog,
            survey,
            counts,
            gas: _,
            paths,
        } = self;
        let result = (|| -> Result<u64> {
            if let Some((_, writers)) = survey {
                for (w, c) in writers.into_iter().zip(&counts) {
                    let rows = w.finish()?;
                    if rows != c.selected + c.remnants_written {
                        bail!(
                            "survey catalogue {}: {rows} rows written but {} counted",
                            c.file,
                            c.selected + c.remnants_written
                        );
                    }
                }
            }
            Ok(catalog.finish()?)
        })();
        match result {
            Ok(rows) => Ok((rows, counts)),
            Err(e) => {
                for p in &paths {
                    let _ = std::fs::remove_file(p);
                }
                Err(e)
            }
        }
    }
}

impl StarSink for CatalogSink<'_> {
    fn append(&mut self, batch: &StarBatch) -> Result<()> {
        self.catalog.append(batch)?;
        let Some((s, writers)) = &mut self.survey else {
            return Ok(());
        };
        let n = batch.len();
        if n == 0 {
            return Ok(());
        }
        let ids = star_ids(batch);
        // Isochrones once per batch (they do not depend on the observer): absolute G and flags.
        let tasks: Vec<usize> = (0..n).step_by(STARS_PER_TASK).collect();
        let phot: Vec<(Vec<f64>, Vec<u8>)> = tasks
            .par_iter()
            .map(|&a| {
                let e = (a + STARS_PER_TASK).min(n);
                let p = s.iso.photometry(
                    &batch.initial_mass[a..e],
                    &batch.age[a..e],
                    &batch.metallicity[a..e],
                )?;
                let g = p.abs_mag.into_iter().nth(s.bands[0]).unwrap_or_default();
                Ok((g, p.flags))
            })
            .collect::<survey::Result<_>>()
            .context("mock survey: isochrone photometry of a batch")?;
        let abs_g: Vec<f64> = phot.iter().flat_map(|p| p.0.iter().copied()).collect();
        let flags: Vec<u8> = phot.iter().flat_map(|p| p.1.iter().copied()).collect();
        let remnants = flags.iter().filter(|&&f| f & FLAG_REMNANT != 0).count() as u64;
        for (j, w) in writers.iter_mut().enumerate() {
            let c = &mut self.counts[j];
            c.drawn += n as u64;
            c.alive += n as u64 - remnants;
            // Candidates: remnants when kept, and stars whose unreddened apparent G is within
            // PRECUT_MARGIN_MAG of the cut (dust only dims; the margin is > 30 sigma of the
            // G noise); only they go through the full chain, with the same per-star draws.
            // With gas, the column (the costly part) is computed only for the stars that pass
            // unreddened, then its A_G lower bound prunes again.
            let sun = s.observers[j].position_galaxy_kpc();
            let faint = s.settings[j].cut.faint + PRECUT_MARGIN_MAG;
            let remnant = |i: usize| flags[i] & FLAG_REMNANT != 0;
            let g0_of = |i: usize| {
                let x = batch.position[i];
                let d2: f64 = (0..3).map(|k| (x[k] - sun[k]).powi(2)).sum();
                (abs_g[i] + 2.5 * d2.log10() + 10.0, d2.sqrt())
            };
            let (cand, cand_a0): (Vec<usize>, Vec<f64>) = match &self.gas {
                None => (
                    (0..n)
                        .filter(|&i| {
                            if remnant(i) {
                                return s.keep_remnants;
                            }
                            let (g0, d) = g0_of(i);
                            g0 <= faint && g0 + a_g_lower_bound(s.dust.a0(d)) <= faint
                        })
                        .collect(),
                    Vec::new(),
                ),
                Some((grid, nh_per_av)) => {
                    let bright: Vec<usize> = (0..n)
                        .filter(|&i| {
                            if remnant(i) {
                                s.keep_remnants
                            } else {
                                g0_of(i).0 <= faint
                            }
                        })
                        .collect();
                    let a0 = gas_a0(grid, *nh_per_av, sun, &batch.position, &bright);
                    bright
                        .iter()
                        .zip(a0)
                        .filter(|&(&i, a0)| remnant(i) || g0_of(i).0 + a_g_lower_bound(a0) <= faint)
                        .map(|(&i, a0)| (i, a0))
                        .unzip()
                }
            };
            if cand.is_empty() {
                continue;
            }
            let sub = take_rows(batch, &cand);
            let sub_ids: Vec<u64> = cand.iter().map(|&i| ids[i]).collect();
            let m = cand.len();
            let (sky, settings) = (&s.projectors[j], &s.settings[j]);
            let gas_dust = self.gas.is_some();
            let parts: Vec<MockColumns> = (0..m)
                .step_by(STARS_PER_TASK)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|a| {
                    let e = (a + STARS_PER_TASK).min(m);
                    let per_star;
                    let settings = if gas_dust {
                        per_star = MockSettings {
                            dust: Dust::PerStar(&cand_a0[a..e]),
                            ..*settings
                        };
                        &per_star
                    } else {
                        settings
                    };
                    mock_observe(
                        &s.iso,
                        sky,
                        settings,
                        &survey::StarBatch {
                            pos_kpc: &sub.position[a..e],
                            vel_kms: &sub.velocity[a..e],
                            initial_mass_msun: &sub.initial_mass[a..e],
                            age_gyr: &sub.age[a..e],
                            metallicity: &sub.metallicity[a..e],
                            ids: &sub_ids[a..e],
                        },
                    )
                })
                .collect::<survey::Result<_>>()
                .context("mock survey: observing a batch of stars")?;
            for (p, cols) in parts.iter().enumerate() {
                let offset = p * STARS_PER_TASK;
                let mut keep = Vec::new();
                for (i, (&sel, &flag)) in
                    cols.selected.iter().zip(&cols.photometry.flags).enumerate()
                {
                    if sel {
                        c.selected += 1;
                        keep.push(i);
                    } else if flag & FLAG_REMNANT != 0 && s.keep_remnants {
                        c.remnants_written += 1;
                        keep.push(i);
                    }
                }
                if keep.is_empty() {
                    continue;
                }
                let rows: Vec<usize> = keep.iter().map(|&i| offset + i).collect();
                w.append_with_columns(
                    &take_rows(&sub, &rows),
                    &survey_values(cols, s.bands, &keep),
                )?;
            }
        }
        Ok(())
    }
}

/// A0 (mag) from the gas columns between `sun` and the stars `rows` of `position` (galaxy
/// frame, kpc), in rayon tasks of [`STARS_PER_TASK`] stars; in the order of `rows`.
fn gas_a0(
    grid: &ColumnGrid,
    nh_per_av: f64,
    sun: [f64; 3],
    position: &[[f64; 3]],
    rows: &[usize],
) -> Vec<f64> {
    let parts: Vec<Vec<f64>> = rows
        .par_chunks(STARS_PER_TASK)
        .map(|c| {
            c.iter()
                .map(|&i| {
                    survey::extinction::av_from_column(
                        grid.column(sun, position[i]),
                        nh_per_av,
                        1.0,
                    )
                })
                .collect()
        })
        .collect();
    parts.concat()
}

/// Magnitudes beyond the cut within which a star's unreddened apparent G makes it a candidate
/// of the full chain: more than 30 sigma of the G noise of every release (a test checks).
pub(crate) const PRECUT_MARGIN_MAG: f64 = 1.0;

/// A lower bound of A_G (mag) for A0 (mag), whatever the star's colour: 0.9 × the least of the
/// EDR3 law over 27 colours spanning its range (the law is a smooth cubic; the 1 mag margin
/// absorbs any overestimate).
fn a_g_lower_bound(a0: f64) -> f64 {
    if a0 <= 0.0 {
        return 0.0;
    }
    let (lo, hi) = survey::extinction::EDR3_LAW_COLOUR_RANGE;
    let least = (0..27)
        .map(|k| {
            let x = lo + (hi - lo) * k as f64 / 26.0;
            survey::extinction::gaia_band_extinction(a0, x)[0]
        })
        .fold(f64::INFINITY, f64::min);
    (0.9 * least).max(0.0)
}

/// The survey columns' values of rows `keep` of one batch's mock columns (order of
/// [`survey_columns`]).
fn survey_values(cols: &MockColumns, bands: [usize; 3], keep: &[usize]) -> Vec<TableValues> {
    let mut extra: Vec<TableValues> = F64_COLUMNS
        .iter()
        .map(|(_, _, get)| {
            let v = get(cols, bands);
            TableValues::Float(keep.iter().map(|&i| v[i]).collect())
        })
        .collect();
    extra.push(TableValues::Byte(
        keep.iter().map(|&i| cols.photometry.label[i]).collect(),
    ));
    extra.push(TableValues::Byte(
        keep.iter().map(|&i| cols.photometry.flags[i]).collect(),
    ));
    extra
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(parents: &[(u64, u32)]) -> StarBatch {
        let n = parents.len();
        StarBatch {
            position: vec![[0.0; 3]; n],
            velocity: vec![[0.0; 3]; n],
            mass: vec![1.0; n],
            initial_mass: vec![1.0; n],
            age: vec![1.0; n],
            metallicity: vec![0.01; n],
            parent_id: parents.iter().map(|p| p.0).collect(),
            cluster: parents.iter().map(|p| p.1).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn star_ids_are_distinct_and_do_not_depend_on_how_whole_parents_are_batched() {
        // Parent 5 has three stars in cluster 0 (not contiguous) and one in cluster 1.
        let rows = [(5, 0), (7, 0), (5, 0), (5, 1), (9, 0), (5, 0)];
        let all = star_ids(&batch(&rows));
        let set: std::collections::BTreeSet<u64> = all.iter().copied().collect();
        assert_eq!(set.len(), rows.len(), "ids collide: {all:?}");
        // The same stars in two calls, each holding whole parents per cluster.
        let first = [(5, 0), (5, 0), (5, 0)];
        let second = [(7, 0), (5, 1), (9, 0)];
        let mut split = star_ids(&batch(&first));
        split.extend(star_ids(&batch(&second)));
        let by_star = |ids: &[u64], rows: &[(u64, u32)]| {
            let mut v: Vec<(u64, u32, u64)> =
                rows.iter().zip(ids).map(|(r, &i)| (r.0, r.1, i)).collect();
            v.sort();
            v
        };
        let rows2: Vec<(u64, u32)> = first.iter().chain(&second).copied().collect();
        assert_eq!(by_star(&all, &rows), by_star(&split, &rows2));
        assert_eq!(all[0], survey_star_id(5, 0, 0));
        assert_eq!(all[5], survey_star_id(5, 0, 2));
    }

    #[test]
    fn the_gas_frame_is_the_one_the_catalogue_records() {
        // A rotated, shifted frame survives the catalogue's root attributes exactly, so the
        // merge of a flow run puts the gas where the kernel pass did.
        let c = std::f64::consts::FRAC_1_SQRT_2;
        let frame = GalaxyFrame {
            center: [1.5, -2.0, 30.25],
            bulk_velocity: [10.0, -20.0, 5.0],
            rotation: [[c, c, 0.0], [0.0, 0.0, 1.0], [c, -c, 0.0]],
        };
        let meta = super::super::catalog::catalog_meta(
            std::path::Path::new("snap.hdf5"),
            &Config::default(),
            &frame,
        );
        let back = frame_of(&meta).unwrap();
        assert_eq!(back, frame);
        let x = [3.0, 4.0, 5.0];
        assert_eq!(back.point_to_frame(x), frame.point_to_frame(x));
        let e = frame_of(&CatalogMeta::default()).unwrap_err().to_string();
        assert!(e.contains("frame_center_kpc"), "{e}");
    }

    #[test]
    fn the_extinction_bound_is_below_the_law_at_every_colour() {
        use survey::extinction::{gaia_band_extinction, EDR3_LAW_COLOUR_RANGE};
        assert_eq!(a_g_lower_bound(0.0), 0.0);
        for a0 in [0.01, 0.3, 1.0, 3.0, 6.0, 10.0] {
            let bound = a_g_lower_bound(a0);
            assert!(bound > 0.5 * a0, "A0 {a0}: bound {bound} is uselessly low");
            for k in 0..=2000 {
                let (lo, hi) = EDR3_LAW_COLOUR_RANGE;
                let x = lo - 0.5 + (hi - lo + 1.0) * k as f64 / 2000.0;
                let a_g = gaia_band_extinction(a0, x)[0];
                assert!(
                    bound <= a_g,
                    "A0 {a0}, colour {x}: bound {bound} > A_G {a_g}"
                );
            }
        }
    }

    #[test]
    fn the_precut_margin_exceeds_thirty_sigma_of_the_g_noise() {
        use survey::errors::{photometric_sigma_mag, GaiaBand, GaiaRelease};
        for r in [GaiaRelease::Dr3, GaiaRelease::Dr4, GaiaRelease::Dr5] {
            for k in 0..=60 {
                let g = 5.0 + 0.5 * k as f64;
                let sigma = photometric_sigma_mag(GaiaBand::G, g, r);
                assert!(
                    30.0 * sigma < PRECUT_MARGIN_MAG,
                    "{r:?} G {g}: sigma {sigma}"
                );
            }
        }
    }
}
