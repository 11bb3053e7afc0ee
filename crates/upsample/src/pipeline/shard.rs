//! Job arrays: `--shard I/N` runs the clusters with index ≡ I (mod N) into a shared run folder,
//! and the merge joins every cluster's part into `catalog.hdf5` and `report.json`, identical to
//! what a single process writes (a single process merges the same way when it finishes).

use anyhow::{bail, Context, Result};
use snapio::read_catalog;
use std::path::Path;
use std::time::Instant;

use super::catalog::{catalog_meta, create_catalog};
use super::holdout::run_fidelity;
use super::mock_survey::{CatalogSink, MockSurvey};
use super::run_dir::{ClusterReport, ClusterStars, RunInfo, RunLock, RunPaths, RunReport};
use crate::config::Config;
use crate::fsio::{read_json, write_json};
use crate::models::{ModelsManifest, TrainingRecord};
use crate::stars::{StarSink, StarTotals};

/// One shard of a job array: clusters with index ≡ `index` (mod `count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0-based.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// Parses "I/N" (0 <= I < N).
    pub fn parse(s: &str) -> Result<Shard> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Shard { index, count }),
            _ => bail!("--shard must be I/N with 0 <= I < N (e.g. 3/16 for $SLURM_ARRAY_TASK_ID/16), got {s:?}"),
        }
    }

    /// Whether cluster `c` belongs to this shard.
    pub fn owns(&self, c: usize) -> bool {
        c % self.count == self.index
    }
}

/// Joins the clusters of a run folder into `catalog.hdf5` and `report.json`, holding the run
/// folder's lock (no shard may still be running).
pub fn merge(dir: &Path) -> Result<RunReport> {
    if !dir.join("run.json").exists() {
        bail!(
            "{} is not a run folder of `upsample` (no run.json)",
            dir.display()
        );
    }
    let paths = RunPaths {
        snapshot: Default::default(),
        out: dir.to_path_buf(),
    };
    let _lock = RunLock::acquire(&paths, None)?;
    merge_with(dir, Vec::new())
}

/// [`merge`] by a process that holds the lock already, adding its time to the stage timings
/// `seconds` of the run so far.
pub(crate) fn merge_with(dir: &Path, mut seconds: Vec<(String, f64)>) -> Result<RunReport> {
    let t = Instant::now();
    let info: RunInfo = read_json(&dir.join("run.json"))
        .with_context(|| format!("{} is not a run folder of `upsample`", dir.display()))?;
    let paths = RunPaths {
        snapshot: info.snapshot.clone(),
        out: dir.to_path_buf(),
    };
    let cfg: Config = toml::from_str(&info.config)
        .with_context(|| format!("{}: configuration not readable", paths.run_info().display()))?;
    let manifest = ModelsManifest::read(&paths.models())?;
    check_all_done(&paths, manifest.clusters.len())?;
    let survey = MockSurvey::load(&cfg)?;
    let catalog = paths.catalog();
    let meta = catalog_meta(&info.snapshot, &cfg, &info.frame());
    let writer = create_catalog(&catalog, &meta, info.parent_identity)?;
    // Each part is appended whole: the survey's noise identities need a cluster's stars at once.
    let mut writer =
        CatalogSink::new(writer, survey.as_ref(), &paths, &meta, info.parent_identity)?;
    let mut totals = StarTotals::default();
    let mut clusters = Vec::with_capacity(manifest.clusters.len());
    for rec in &manifest.clusters {
        let (part, marker) = paths.part(rec.index);
        let done: ClusterStars = read_json(&marker)?;
        let batch = read_catalog(&part)?;
        if batch.len() as u64 != done.stars.stars_written {
            bail!(
                "{} holds {} stars but {} records {}: the part is damaged; delete both and resume",
                part.display(),
                batch.len(),
                marker.display(),
                done.stars.stars_written
            );
        }
        if !batch.is_empty() {
            writer.append(&batch)?;
        }
        totals.add(&done.stars);
        let training: TrainingRecord =
            read_json(&paths.models().join(rec.dir_name()).join("training.json"))?;
        clusters.push(ClusterReport {
            record: rec.clone(),
            training,
            stars: done.stars,
            sampling_seconds: done.seconds,
            fidelity: done.fidelity,
        });
    }
    // Before the catalogue is renamed into place: a damaged sample leaves no half-done run.
    let fidelity = run_fidelity(&paths, &clusters, &cfg)?;
    let (_, survey) = writer.finish()?;
    seconds.push(("merge".into(), t.elapsed().as_secs_f64()));
    let report = RunReport {
        info,
        stars: totals,
        clusters,
        seconds,
        survey,
        fidelity,
    };
    write_json(&paths.report(), &report)?;
    Ok(report)
}

/// Fails, listing them, when some of the `n` clusters of the run are not done.
fn check_all_done(paths: &RunPaths, n: usize) -> Result<()> {
    let missing: Vec<usize> = (0..n).filter(|&c| !paths.part_done(c)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing.iter().take(20).map(|c| c.to_string()).collect();
    bail!(
        "{}: {} of {n} clusters are not done yet (clusters {}{}): run the missing shards (or \
         resume the run) before merging",
        paths.out.display(),
        missing.len(),
        list.join(", "),
        if missing.len() > 20 { ", …" } else { "" }
    )
}
