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

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;

use snapio::{
    particle_uid, AttrValue, CatalogMeta, CatalogWriter, StarBatch, TableColumn, TableValues,
};
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

/// The catalogue's `lifetime_relation` attribute when isochrones decide which stars are alive.
pub(crate) const ISOCHRONE_LIFETIME: &str =
    "stars heavier than the most massive star still alive on the \
     [survey] isochrones at the parent's age and metallicity are remnants and are removed";

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
    /// Root attributes shared by every observer's catalogue.
    attributes: Vec<(String, AttrValue)>,
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
        };
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
        Ok(Some(MockSurvey {
            iso,
            bands,
            projectors: observers.iter().map(SkyProjector::new).collect(),
            observers,
            settings,
            keep_remnants: s.keep_remnants,
            dust: s.dust_model(),
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
    ) -> Result<Vec<CatalogWriter>> {
        let columns: Vec<TableColumn> = survey_columns()
            .into_iter()
            .map(|(name, units, values)| TableColumn {
                name: name.into(),
                units: units.into(),
                description: String::new(),
                values,
            })
            .collect();
        let mut out = Vec::with_capacity(self.observers.len());
        for (j, o) in self.observers.iter().enumerate() {
            let mut m = meta.clone();
            m.attributes.extend(self.attributes.iter().cloned());
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
    counts: Vec<SurveyCounts>,
    paths: Vec<PathBuf>,
}

impl<'a> CatalogSink<'a> {
    /// Wraps `catalog`; with `survey`, starts its catalogues in `paths` with the root
    /// attributes `meta` of the catalogue.
    pub(crate) fn new(
        catalog: CatalogWriter,
        survey: Option<&'a MockSurvey>,
        paths: &RunPaths,
        meta: &CatalogMeta,
        parent_identity: bool,
    ) -> Result<Self> {
        let (survey, counts, files) = match survey {
            None => (None, Vec::new(), Vec::new()),
            Some(s) => {
                let w = s.create_writers(paths, meta, parent_identity)?;
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
            let sun = s.observers[j].position_galaxy_kpc();
            let faint = s.settings[j].cut.faint + PRECUT_MARGIN_MAG;
            let cand: Vec<usize> = (0..n)
                .filter(|&i| {
                    if flags[i] & FLAG_REMNANT != 0 {
                        return s.keep_remnants;
                    }
                    let x = batch.position[i];
                    let d2: f64 = (0..3).map(|k| (x[k] - sun[k]).powi(2)).sum();
                    let g0 = abs_g[i] + 2.5 * d2.log10() + 10.0;
                    g0 <= faint && g0 + a_g_lower_bound(s.dust.a0(d2.sqrt())) <= faint
                })
                .collect();
            if cand.is_empty() {
                continue;
            }
            let sub = take_rows(batch, &cand);
            let sub_ids: Vec<u64> = cand.iter().map(|&i| ids[i]).collect();
            let m = cand.len();
            let (sky, settings) = (&s.projectors[j], &s.settings[j]);
            let parts: Vec<MockColumns> = (0..m)
                .step_by(STARS_PER_TASK)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|a| {
                    let e = (a + STARS_PER_TASK).min(m);
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
