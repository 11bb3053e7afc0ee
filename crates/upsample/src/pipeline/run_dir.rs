//! The run folder `DIR` and the records in it: what a run is (`run.json`), what it did
//! (`report.json`), and where each cluster's parts go. The one place that names a run's files.
//!
//! ```text
//! DIR/run.json                   RunInfo: snapshot, frame, configuration (checked on resume)
//! DIR/models/manifest.json       the decomposition (crate::models)
//! DIR/models/cluster_NNNN/       the cluster's flows and training.json (crate::models)
//! DIR/parts/cluster_NNNN.hdf5    its stars, in the catalogue format (renamed into place)
//! DIR/parts/cluster_NNNN.json    ClusterStars: written last, marks the cluster done
//! DIR/catalog.hdf5, report.json  written once every cluster is done (or by the kernel method)
//! DIR/survey_obsN.hdf5           observer N's mock survey (with [survey] enabled), beside catalog.hdf5
//! DIR/.lock, DIR/.lock-shard-I-of-N   advisory locks: one writer per run folder (RunLock)
//! ```

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::prepare::Prepared;
use crate::config::{Config, Method};
use crate::fidelity::Fidelity;
use crate::models::{cluster_dir_name, ClusterRecord, TrainingRecord};
use crate::stars::StarTotals;
use snapio::GalaxyFrame;

/// The files of one run: the snapshot it reads and the folder it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    /// Snapshot: a file, any file of a multi-file set, or a snapdir_NNN/ folder.
    pub snapshot: PathBuf,
    /// The run folder (`--out`).
    pub out: PathBuf,
}

impl RunPaths {
    /// `DIR/catalog.hdf5`.
    pub fn catalog(&self) -> PathBuf {
        self.out.join("catalog.hdf5")
    }

    /// `DIR/survey_obsN.hdf5`: observer `n`'s survey catalogue.
    pub fn survey(&self, n: usize) -> PathBuf {
        self.out.join(format!("survey_obs{n}.hdf5"))
    }

    /// `DIR/report.json`.
    pub fn report(&self) -> PathBuf {
        self.out.join("report.json")
    }

    /// `DIR/run.json`.
    pub fn run_info(&self) -> PathBuf {
        self.out.join("run.json")
    }

    /// `DIR/models/`.
    pub fn models(&self) -> PathBuf {
        self.out.join("models")
    }

    /// `DIR/parts/`.
    pub fn parts(&self) -> PathBuf {
        self.out.join("parts")
    }

    /// Cluster `c`'s star file and its completion record in `DIR/parts/`.
    pub fn part(&self, c: usize) -> (PathBuf, PathBuf) {
        let parts = self.parts();
        let name = cluster_dir_name(c);
        (
            parts.join(format!("{name}.hdf5")),
            parts.join(format!("{name}.json")),
        )
    }

    /// `DIR/.lock`, the run folder's lock.
    pub fn lock_file(&self) -> PathBuf {
        self.out.join(".lock")
    }

    /// `DIR/.lock-shard-I-of-N`, shard I's lock.
    pub fn shard_lock_file(&self, index: usize, count: usize) -> PathBuf {
        self.out.join(format!(".lock-shard-{index}-of-{count}"))
    }

    /// Whether cluster `c`'s stars are complete.
    pub fn part_done(&self, c: usize) -> bool {
        self.part(c).1.exists()
    }

    /// Cluster `c`'s fidelity samples in `DIR/parts/`: its flows' draws and its held-out
    /// particles (positions kpc, velocities km/s, nearest-training distances), which the merge
    /// pools into the run's fidelity report.
    pub fn fidelity_samples(&self, c: usize) -> (PathBuf, PathBuf) {
        let parts = self.parts();
        let name = cluster_dir_name(c);
        (
            parts.join(format!("{name}.fidelity_stars.hdf5")),
            parts.join(format!("{name}.fidelity_reference.hdf5")),
        )
    }

    /// Cluster `c`'s weighted profile reference in `DIR/parts/`, written only where its
    /// particles' initial masses differ: every held-out particle (at most
    /// `fidelity.max_points`) with its initial mass (Msun), the shells' reference.
    pub fn fidelity_profile_reference(&self, c: usize) -> PathBuf {
        self.parts().join(format!(
            "{}.fidelity_reference_weighted.hdf5",
            cluster_dir_name(c)
        ))
    }
}

/// What a run is: the snapshot, what was read from it, the frame and the configuration.
/// Written to `DIR/run.json` before any work; a resumed run or a shard checks it matches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// Program version.
    pub version: String,
    /// Snapshot path as given.
    pub snapshot: PathBuf,
    /// Files read.
    pub files: Vec<PathBuf>,
    /// Layout detected.
    pub layout: String,
    /// Star particles read (winds excluded).
    pub star_particles_read: usize,
    /// Wind particles dropped.
    pub wind_particles_dropped: u64,
    /// Invalid particles dropped per kind (`[input] on_invalid = "drop"`; empty otherwise).
    pub invalid_particles_dropped: std::collections::BTreeMap<String, u64>,
    /// Whether the particles carry FIRE child/generation numbers (the catalogue then has
    /// `parent_child_id` and `parent_generation` beside `parent_id`).
    pub parent_identity: bool,
    /// Star particles in the selected region.
    pub star_particles_selected: usize,
    /// Their total current mass, Msun.
    pub stellar_mass_msun: f64,
    /// Their total initial mass, Msun.
    pub initial_stellar_mass_msun: f64,
    /// Galaxy centre in the snapshot's physical frame, kpc.
    pub frame_center_kpc: [f64; 3],
    /// Galaxy bulk velocity, km/s.
    pub frame_bulk_velocity_kms: [f64; 3],
    /// Rows: galaxy x, y, z axes in snapshot coordinates.
    pub frame_rotation: [[f64; 3]; 3],
    /// Reader notes (assumptions made about the file).
    pub notes: Vec<String>,
    /// Placement method used.
    pub method: Method,
    /// Fraction of the stars drawn.
    pub star_fraction: f64,
    /// The configuration used, as TOML.
    pub config: String,
}

impl RunInfo {
    /// The summary of prepared stars under `cfg`.
    pub fn new(snapshot: &Path, p: &Prepared, cfg: &Config) -> RunInfo {
        RunInfo {
            version: crate::VERSION.to_string(),
            snapshot: snapshot.to_path_buf(),
            files: p.read.files.clone(),
            layout: p.layout.clone(),
            star_particles_read: p.n_read,
            wind_particles_dropped: p.read.winds_dropped,
            invalid_particles_dropped: p.read.invalid_dropped.clone(),
            parent_identity: crate::stars::has_parent_identity(&p.stars),
            star_particles_selected: p.stars.len(),
            stellar_mass_msun: p.stars.mass.iter().sum(),
            initial_stellar_mass_msun: p.stars.initial_mass.iter().sum(),
            frame_center_kpc: p.frame.center,
            frame_bulk_velocity_kms: p.frame.bulk_velocity,
            frame_rotation: p.frame.rotation,
            notes: p.read.notes.clone(),
            method: cfg.method,
            star_fraction: cfg.stars.fraction,
            config: cfg.to_toml(),
        }
    }

    /// The galaxy frame recorded.
    pub fn frame(&self) -> GalaxyFrame {
        GalaxyFrame {
            center: self.frame_center_kpc,
            bulk_velocity: self.frame_bulk_velocity_kms,
            rotation: self.frame_rotation,
        }
    }
}

/// `DIR/report.json`: what a finished run did.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The run (snapshot, frame, configuration).
    #[serde(flatten)]
    pub info: RunInfo,
    /// Star totals (drawn, written, initial masses).
    pub stars: StarTotals,
    /// Per-cluster figures (flow method).
    pub clusters: Vec<ClusterReport>,
    /// Wall-clock seconds of each stage.
    pub seconds: Vec<(String, f64)>,
    /// Per observer of the mock survey: stars at each stage (absent without a survey).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub survey: Vec<SurveyCounts>,
    /// The whole run's stars against the held-out particles of every cluster (flow method with
    /// `fidelity.holdout_fraction > 0`; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<Fidelity>,
}

/// One observer's mock survey in `report.json`: stars at each stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SurveyCounts {
    /// Observer index N (`survey_obsN.hdf5`).
    pub observer: usize,
    /// Its catalogue's file name in the run folder.
    pub file: String,
    /// The observer's position in the galaxy frame, kpc.
    pub observer_position_kpc: [f64; 3],
    /// Stars observed: every star of catalog.hdf5.
    pub drawn: u64,
    /// Of those, alive by the isochrones (initial mass below the most massive living star).
    pub alive: u64,
    /// Of those, brighter than the cut in observed G: the rows of the survey catalogue.
    pub selected: u64,
    /// Remnants also written (`keep_remnants`; not counted in `selected`).
    pub remnants_written: u64,
}

/// `DIR/parts/cluster_NNNN.json`: a cluster's stars are complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClusterStars {
    /// Cluster index.
    pub index: usize,
    /// Its star totals.
    pub stars: StarTotals,
    /// Wall-clock seconds of drawing its stars.
    pub seconds: f64,
    /// Its stars against its held-out particles (absent without a holdout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<Fidelity>,
}

/// One cluster in `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// The decomposition's record (particles, ghosts, weight, cell).
    #[serde(flatten)]
    pub record: ClusterRecord,
    /// Training: held-out NLL of both flows, epochs, seconds.
    pub training: TrainingRecord,
    /// Stars drawn and written.
    pub stars: StarTotals,
    /// Seconds spent drawing its stars.
    pub sampling_seconds: f64,
    /// Its stars against its held-out particles (absent without a holdout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<Fidelity>,
}

/// One writer per run folder: advisory locks (`flock`) held for as long as the value lives.
///
/// A whole run and `merge` hold `DIR/.lock` exclusively; shard I of N holds it shared (shards
/// run side by side, never beside a whole run or a merge) and `DIR/.lock-shard-I-of-N`
/// exclusively (the same shard twice is refused; shards own disjoint clusters, so they never
/// write each other's parts). The exclusive holder writes its PID, host and start time into the
/// lock file, which a refused process quotes. The kernel releases a lock when its process dies,
/// however it dies, so a lock left by a killed job never blocks a restart. On shared file
/// systems this needs `flock` support across nodes (Lustre mounted with `flock`, NFSv4).
#[derive(Debug)]
pub struct RunLock {
    _files: Vec<File>,
}

/// Who holds a lock, as written into the lock file.
fn holder_line() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "an unknown host".into());
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "upsample {} (pid {} on {host}, since unix time {since})",
        crate::VERSION,
        std::process::id()
    )
}

/// Opens `path` for locking, creating it.
fn open_lock(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))
}

/// What a lock file says about its holder.
fn holder_of(path: &Path) -> String {
    let mut text = String::new();
    let _ = File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    let text = text.trim();
    if text.is_empty() {
        "running shards of a job array".into()
    } else {
        text.to_string()
    }
}

/// Takes `path` exclusively (and records the holder) or shared; fails naming the holder.
fn take(path: &Path, exclusive: bool, dir: &Path) -> Result<File> {
    let mut f = open_lock(path)?;
    let got = if exclusive {
        f.try_lock()
    } else {
        f.try_lock_shared()
    };
    match got {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => bail!(
            "{} is in use by another process: {} holds {}. One process writes a run folder at a \
             time: wait for it to finish, or choose another --out",
            dir.display(),
            holder_of(path),
            path.display()
        ),
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    // The exclusive holder names itself; shared holders (shards) clear a previous holder's name.
    let line = if exclusive {
        holder_line()
    } else {
        String::new()
    };
    f.set_len(0)
        .and_then(|_| f.rewind())
        .and_then(|_| write!(f, "{line}"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(f)
}

impl RunLock {
    /// Locks the run folder of `paths` (which must exist) for a whole run or a merge
    /// (`shard` None) or for shard `(index, count)`.
    pub fn acquire(paths: &RunPaths, shard: Option<(usize, usize)>) -> Result<RunLock> {
        let dir = &paths.out;
        let files = match shard {
            None => vec![take(&paths.lock_file(), true, dir)?],
            Some((i, n)) => vec![
                take(&paths.lock_file(), false, dir)?,
                take(&paths.shard_lock_file(i, n), true, dir)?,
            ],
        };
        Ok(RunLock { _files: files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_per_run_folder_and_shards_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        let paths = RunPaths {
            snapshot: "snap.hdf5".into(),
            out: dir.path().to_path_buf(),
        };
        let whole = RunLock::acquire(&paths, None).unwrap();
        let err = format!("{:#}", RunLock::acquire(&paths, None).unwrap_err());
        assert!(err.contains("in use by another process"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(
            RunLock::acquire(&paths, Some((0, 2))).is_err(),
            "no shard beside a whole run"
        );
        drop(whole);

        let s0 = RunLock::acquire(&paths, Some((0, 2))).unwrap();
        let s1 = RunLock::acquire(&paths, Some((1, 2))).unwrap();
        let err = format!("{:#}", RunLock::acquire(&paths, Some((1, 2))).unwrap_err());
        assert!(err.contains(".lock-shard-1-of-2"), "{err}");
        let err = format!("{:#}", RunLock::acquire(&paths, None).unwrap_err());
        assert!(
            err.contains("running shards"),
            "a merge waits for the shards: {err}"
        );
        drop((s0, s1));
        // Released with its holder: the next run takes it.
        RunLock::acquire(&paths, None).unwrap();
    }
}
