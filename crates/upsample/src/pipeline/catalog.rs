//! The root attributes of `catalog.hdf5` (the output contract): provenance, frame transform,
//! configuration, IMF and lifetime relation. Every writer of a catalogue or part uses these.

use std::path::Path;

use anyhow::Result;

use crate::config::Config;
use snapio::{AttrValue, CatalogMeta, CatalogWriter, GalaxyFrame};

/// Starts a catalogue (or a cluster's part) at `path`: with the parents' FIRE child and
/// generation columns when the particles carry them (`parent_identity`).
pub(crate) fn create_catalog(
    path: &Path,
    meta: &CatalogMeta,
    parent_identity: bool,
) -> Result<CatalogWriter> {
    Ok(if parent_identity {
        CatalogWriter::create_with_parent_identity(path, meta)?
    } else {
        CatalogWriter::create(path, meta)?
    })
}

/// The catalogue's `lifetime_relation` attribute when isochrones decide which stars are alive.
pub(crate) const ISOCHRONE_LIFETIME: &str =
    "stars heavier than the most massive star still alive on the \
     [survey] isochrones at the parent's age and metallicity are remnants and are removed";

/// Root attributes of the catalogue: provenance, frame transform, configuration.
pub(crate) fn catalog_meta(snapshot: &Path, cfg: &Config, frame: &GalaxyFrame) -> CatalogMeta {
    let attributes = vec![
        ("program".into(), AttrValue::Str(format!("upsample {}", crate::VERSION))),
        ("snapshot".into(), AttrValue::Str(snapshot.display().to_string())),
        ("seed".into(), AttrValue::Int(cfg.seed as i64)),
        ("method".into(), AttrValue::Str(format!("{:?}", cfg.method).to_lowercase())),
        ("star_fraction".into(), AttrValue::Float(cfg.stars.fraction)),
        ("configuration".into(), AttrValue::Str(cfg.to_toml())),
        ("frame_center_kpc".into(), AttrValue::FloatArray(frame.center.to_vec())),
        ("frame_bulk_velocity_kms".into(), AttrValue::FloatArray(frame.bulk_velocity.to_vec())),
        ("frame_rotation".into(), AttrValue::FloatArray(frame.rotation_flat())),
        (
            "frame_convention".into(),
            AttrValue::Str(
                "x_galaxy = R (x_snapshot - frame_center_kpc), v_galaxy = R (v_snapshot - frame_bulk_velocity_kms); \
                 frame_rotation is R row-major, its rows the galaxy x, y, z axes in snapshot physical coordinates"
                    .into(),
            ),
        ),
        (
            "imf".into(),
            AttrValue::Str(format!(
                "broken power law dN/dm ~ m^-alpha, alpha {:?} with breaks {:?} Msun, on [{}, {}] Msun; \
                 star counts Poisson with mean star_fraction * initial_mass / <m>",
                cfg.imf.slopes, cfg.imf.breaks, cfg.imf.m_min, cfg.imf.m_max
            )),
        ),
        (
            "lifetime_relation".into(),
            AttrValue::Str(if cfg.survey.enabled {
                ISOCHRONE_LIFETIME.into()
            } else {
                "stars with t_MS = 10 Gyr (m/Msun)^-2.5 shorter than the parent's age are removed".into()
            }),
        ),
    ];
    CatalogMeta { attributes }
}
