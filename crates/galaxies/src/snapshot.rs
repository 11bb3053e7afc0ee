//! Writing a galaxy as files the pipeline reads: the snapshot and the truth draw as snapshots
//! (through `snapio`'s fixture writer), component labels as side files, the model as JSON.

use std::path::{Path, PathBuf};

use serde::Serialize;
use snapio::{write_side_field_i64, write_snapshot, Header, Layout};

use crate::{truth_seed, Galaxy, Model, Options};

/// Paths written by [`write_galaxy`].
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The snapshot (`snapshot.hdf5`).
    pub snapshot: PathBuf,
    /// The truth draw in the same layout (`truth.hdf5`), equal masses.
    pub truth: PathBuf,
    /// Component of each snapshot particle (`labels.hdf5`: `ParticleIDs`, `component`).
    pub labels: PathBuf,
    /// Component of each truth particle (`truth_labels.hdf5`).
    pub truth_labels: PathBuf,
    /// Model parameters, options, label names and the truth seed (`model.json`).
    pub model: PathBuf,
}

/// What `model.json` holds.
#[derive(Serialize)]
struct ModelFile<'a> {
    model: &'a Model,
    options: &'a Options,
    labels: &'a [&'a str],
    truth_seed: u64,
    units: &'a str,
}

/// Writes `galaxy` into folder `dir` (created if missing) in `layout`, at scale factor 1 with
/// the default (Planck 2015) header: snapshot, truth, label side files and `model.json`.
pub fn write_galaxy(
    galaxy: &Galaxy,
    dir: &Path,
    layout: Layout,
) -> Result<Written, Box<dyn std::error::Error + Send + Sync>> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let w = Written {
        snapshot: dir.join("snapshot.hdf5"),
        truth: dir.join("truth.hdf5"),
        labels: dir.join("labels.hdf5"),
        truth_labels: dir.join("truth_labels.hdf5"),
        model: dir.join("model.json"),
    };
    let header = Header::cosmological_at(1.0);
    for (path, labels_path, draw) in [
        (&w.snapshot, &w.labels, &galaxy.sample),
        (&w.truth, &w.truth_labels, &galaxy.truth),
    ] {
        write_snapshot(path, layout, &header, &draw.particles, None, 1)?;
        let labels: Vec<i64> = draw.label.iter().map(|&l| l as i64).collect();
        write_side_field_i64(labels_path, "component", &draw.particles.id, &labels)?;
    }
    let labels: &[&str] = match &galaxy.model {
        Model::Spheroid(_) => &crate::Spheroid::LABELS,
        Model::DiscBulge(_) => &crate::DiscBulge::LABELS,
        Model::HaloStream(_) => &crate::HaloStream::LABELS,
    };
    let file = ModelFile {
        model: &galaxy.model,
        options: &galaxy.options,
        labels,
        truth_seed: truth_seed(galaxy.options.seed),
        units: "kpc, km/s, Msun, Gyr",
    };
    let text = serde_json::to_string_pretty(&file)?;
    std::fs::write(&w.model, text).map_err(|e| format!("writing {}: {e}", w.model.display()))?;
    Ok(w)
}
