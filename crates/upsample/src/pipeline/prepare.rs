//! Preparing the particles: read the snapshot's stars in physical units, find the galaxy frame,
//! move into it, keep the configured region.

use anyhow::{Context, Result};
use std::path::Path;

use crate::config::{Config, DustKind};
use snapio::{FrameOptions, GalaxyFrame, ReadOptions, ReadReport, Snapshot, Sphere, StarParticles};

/// Star particles ready for the pipeline: physical units, galaxy frame, region applied.
pub struct Prepared {
    /// The stars (kpc, km/s, Msun, Gyr), galaxy frame.
    pub stars: StarParticles,
    /// Transform from the snapshot's physical frame to the galaxy frame.
    pub frame: GalaxyFrame,
    /// What the reader found (files, wind particles dropped, notes).
    pub read: ReadReport,
    /// Star particles before the region cut.
    pub n_read: usize,
    /// Human name of the snapshot's layout.
    pub layout: String,
}

/// Invalid particles dropped per kind, in words ("3 nonpositive_mass, 1 duplicate_id").
pub fn dropped_summary(dropped: &std::collections::BTreeMap<String, u64>) -> String {
    dropped
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads and prepares the stars of a snapshot according to `cfg`.
pub(crate) fn prepare(snapshot: &Path, cfg: &Config) -> Result<Prepared> {
    let snap = Snapshot::open(snapshot)?;
    if cfg.survey.enabled && cfg.survey.dust == DustKind::Gas {
        // Before anything is written: the gas that the survey's extinction will read exists and
        // its datasets have the expected types and shapes.
        let n = snap.check_gas().with_context(|| {
            format!(
                "survey.dust = \"gas\" needs the snapshot's gas (PartType0) in {}",
                snapshot.display()
            )
        })?;
        tracing::info!("{n} gas particles for the survey's extinction");
    }
    let opts = ReadOptions {
        on_invalid: cfg.input.on_invalid,
        ..ReadOptions::default()
    };
    let (mut stars, read) = snap.read_stars(&opts)?;
    let n_read = stars.len();
    tracing::info!(
        "read {} star particles from {} file(s) ({}), {} wind particles dropped",
        n_read,
        read.files.len(),
        snap.layout(),
        read.winds_dropped
    );
    if read.invalid_dropped_total() > 0 {
        tracing::warn!(
            "dropped {} invalid star particles ([input] on_invalid = \"drop\"): {}",
            read.invalid_dropped_total(),
            dropped_summary(&read.invalid_dropped)
        );
    }
    let frame = if cfg.frame.enabled {
        GalaxyFrame::find(&stars, &FrameOptions::default())?
    } else {
        GalaxyFrame::identity()
    };
    frame.to_frame(&mut stars);
    if let Some(region) = &cfg.region {
        let sphere = Sphere {
            center: region.center,
            radius: region.radius,
        };
        stars = snapio::select_sphere(&stars, &sphere);
        if stars.is_empty() {
            anyhow::bail!(
                "no star particle of {} lies within {} kpc of {:?} (galaxy frame)",
                snapshot.display(),
                region.radius,
                region.center
            );
        }
    }
    Ok(Prepared {
        stars,
        frame,
        read,
        n_read,
        layout: snap.layout().to_string(),
    })
}
