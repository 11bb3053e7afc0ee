//! The on-disk form of a run's models, `DIR/models/` (layout in the module docs of `models`):
//! folder names, saving a cluster (the training record last: it marks completion), loading one
//! cluster or the whole set, and the layout version [`MODELS_FORMAT`].

use anyhow::{bail, Context, Result};
use cnf::{Device, Flow};
use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};

use super::{
    ClusterModel, ClusterRecord, Member, ModelSet, ModelsManifest, TrainingRecord, VelocityContext,
};
use crate::fsio::{read_json, write_json};

/// Version of the `models/` layout (a stable contract: bumped on any incompatible change).
pub const MODELS_FORMAT: u32 = 1;

/// Folder name of cluster `index` inside `models/`.
pub(crate) fn cluster_dir_name(index: usize) -> String {
    format!("cluster_{index:04}")
}

/// Paths of member `m` of a cluster folder: (position flow dir, velocity flow dir).
pub(crate) fn member_dirs(cluster_dir: &Path, m: usize) -> (PathBuf, PathBuf) {
    let d = cluster_dir.join(format!("m{m}"));
    (d.join("position"), d.join("velocity"))
}

/// `models/cluster_NNNN/mM/local_dispersion.json`: member m's velocity standardisation.
fn dispersion_path(cluster_dir: &Path, m: usize) -> PathBuf {
    cluster_dir
        .join(format!("m{m}"))
        .join("local_dispersion.json")
}

/// `models/cluster_NNNN/mM/radial_profile.json`: member m's position Gaussianisation.
fn radial_path(cluster_dir: &Path, m: usize) -> PathBuf {
    cluster_dir
        .join(format!("m{m}"))
        .join("radial_profile.json")
}

/// `models/cluster_NNNN/mM/origin.json`: the frame member m was trained in, when it is not
/// the galaxy's (a satellite's own centre and mean velocity).
fn origin_path(cluster_dir: &Path, m: usize) -> PathBuf {
    cluster_dir.join(format!("m{m}")).join("origin.json")
}

/// `models/cluster_NNNN/mM/velocity_context.json`: what member m's velocity flow is
/// conditioned on, when it is not x.
fn context_path(cluster_dir: &Path, m: usize) -> PathBuf {
    cluster_dir
        .join(format!("m{m}"))
        .join("velocity_context.json")
}

/// `models/cluster_NNNN/training.json` of a cluster folder.
pub(crate) fn training_record_path(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join("training.json")
}

impl ModelsManifest {
    /// Reads `manifest.json` of a `models/` folder.
    pub fn read(models_dir: &Path) -> Result<ModelsManifest> {
        let path = models_dir.join("manifest.json");
        let m: ModelsManifest = read_json(&path)?;
        if m.format != MODELS_FORMAT {
            bail!(
                "{}: models layout version {} (this build reads {MODELS_FORMAT})",
                path.display(),
                m.format
            );
        }
        Ok(m)
    }

    /// Writes `manifest.json` into a `models/` folder, atomically.
    pub fn write(&self, models_dir: &Path) -> Result<()> {
        write_json(&models_dir.join("manifest.json"), self)
    }
}

/// Writes `value` to `path`, or, when there is none, removes what an older save left there.
fn write_optional<T: Serialize>(path: &Path, value: Option<&T>) -> Result<()> {
    match value {
        Some(v) => write_json(path, v),
        None if path.exists() => {
            std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))
        }
        None => Ok(()),
    }
}

/// Reads `path` if it exists.
fn read_optional<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if path.exists() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Saves a cluster's members and training record (the record last: it marks completion).
pub fn save_cluster(cluster_dir: &Path, members: &[Member], record: &TrainingRecord) -> Result<()> {
    for (m, member) in members.iter().enumerate() {
        let (p, v) = member_dirs(cluster_dir, m);
        member
            .position
            .save(&p)
            .with_context(|| format!("cannot save the position flow into {}", p.display()))?;
        member
            .velocity
            .save(&v)
            .with_context(|| format!("cannot save the velocity flow into {}", v.display()))?;
        // A member retrained over an older one: no stale file of the older may outlive it.
        write_optional(&dispersion_path(cluster_dir, m), member.dispersion.as_ref())?;
        let context = (member.context != VelocityContext::Position).then_some(&member.context);
        write_optional(&context_path(cluster_dir, m), context)?;
        write_optional(&radial_path(cluster_dir, m), member.radial.as_ref())?;
        write_optional(&origin_path(cluster_dir, m), member.origin.as_ref())?;
    }
    write_json(&training_record_path(cluster_dir), record)
}

/// Loads a trained cluster from its folder, or None when it has not finished training.
pub(crate) fn load_cluster(
    cluster_dir: &Path,
    record: &ClusterRecord,
    ensemble: usize,
    device: &Device,
) -> Result<Option<ClusterModel>> {
    let tpath = training_record_path(cluster_dir);
    if !tpath.exists() {
        return Ok(None);
    }
    let training: TrainingRecord = read_json(&tpath)?;
    let mut members = Vec::with_capacity(ensemble);
    for m in 0..ensemble {
        let (p, v) = member_dirs(cluster_dir, m);
        let position = Flow::load(&p, device)
            .with_context(|| format!("cannot load the position flow {}", p.display()))?;
        let velocity = Flow::load(&v, device)
            .with_context(|| format!("cannot load the velocity flow {}", v.display()))?;
        if position.config.context_dim != 0 || velocity.config.context_dim != 3 {
            bail!(
                "{}: expected an unconditional position flow and a velocity flow conditioned on 3 coordinates",
                cluster_dir.display()
            );
        }
        let dispersion = read_optional(&dispersion_path(cluster_dir, m))?;
        let rpath = radial_path(cluster_dir, m);
        let radial = read_optional(&rpath)?;
        let context =
            read_optional(&context_path(cluster_dir, m))?.unwrap_or(VelocityContext::Position);
        if context == VelocityContext::Gaussianised && radial.is_none() {
            bail!(
                "{}: the velocity flow is conditioned on Gaussianised positions but there is no {}",
                cluster_dir.display(),
                rpath.display()
            );
        }
        let origin = read_optional(&origin_path(cluster_dir, m))?;
        members.push(Member {
            position,
            velocity,
            dispersion,
            radial,
            context,
            origin,
        });
    }
    Ok(Some(ClusterModel {
        index: record.index,
        label: record.label.clone(),
        weight_msun: record.weight_msun,
        core: record.core(),
        members,
        training,
    }))
}

impl ModelSet {
    /// Loads every cluster of a run's `models/` folder (or of the run folder holding it).
    pub fn load(dir: &Path, device: &Device) -> Result<ModelSet> {
        let dir = if dir.join("manifest.json").exists() {
            dir.to_path_buf()
        } else {
            dir.join("models")
        };
        let manifest = ModelsManifest::read(&dir)?;
        let mut clusters = Vec::with_capacity(manifest.clusters.len());
        for rec in &manifest.clusters {
            let cdir = dir.join(rec.dir_name());
            match load_cluster(&cdir, rec, manifest.ensemble, device)? {
                Some(c) => clusters.push(c),
                None => bail!(
                    "{}: cluster {} ({}) has not finished training (no {}); resume the run first",
                    dir.display(),
                    rec.index,
                    rec.label,
                    training_record_path(&cdir).display()
                ),
            }
        }
        Ok(ModelSet {
            dir,
            manifest,
            clusters,
        })
    }

    /// Whether the clusters are cells (each position answered by the one cell holding it).
    pub fn is_cells(&self) -> bool {
        self.clusters.iter().all(|c| c.core.is_some())
    }
}
