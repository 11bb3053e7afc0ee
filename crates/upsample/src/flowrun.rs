//! The flow method's job: decompose the particles into clusters, train each cluster's flows,
//! draw its stars, and join the clusters into the catalogue — resumable and shardable.
//!
//! A cluster is the unit of work, of failure and of restart. Files of a run folder `DIR`:
//!
//! ```text
//! DIR/run.json                   RunInfo: snapshot, frame, configuration (checked on resume)
//! DIR/models/manifest.json       the decomposition (ClusterRecord per cluster)
//! DIR/models/cluster_NNNN/       the cluster's flows and training.json (see models.rs)
//! DIR/parts/cluster_NNNN.hdf5    its stars, in the catalogue format (renamed into place)
//! DIR/parts/cluster_NNNN.json    ClusterStars: written last, marks the cluster done
//! DIR/catalog.hdf5, report.json  written by the merge once every cluster is done
//! ```
//!
//! Every random stream is seeded from (seed, cluster, …), never from the order of work, so a
//! run killed at any moment and started again, or split into shards (`--shard I/N`, clusters
//! with index ≡ I mod N) and merged, gives the same catalogue as one uninterrupted run.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use snapio::{read_catalog, CatalogWriter, Snapshot};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::clusters::{
    decompose_cells, decompose_fof, decompose_labels, labels_by_id, Cluster, ClusterMethod,
};
use crate::config::Config;
use crate::imf::Imf;
use crate::job::{catalog_meta, print_summary, Prepared, RunInfo, RunReport};
use crate::models::{
    cluster_dir_name, load_cluster, read_json, save_cluster, ClusterRecord, ModelsManifest,
    TrainingRecord, MODELS_FORMAT,
};
use crate::progress::Progress;
use crate::report::write_json;
use crate::stars::{draw_flow_stars, StarDraw, StarTotals};
use crate::training::train_cluster;

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

/// `parts/cluster_NNNN.json`: a cluster's stars are complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStars {
    /// Cluster index.
    pub index: usize,
    /// Its star totals.
    pub stars: StarTotals,
    /// Wall-clock seconds of drawing its stars.
    pub seconds: f64,
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
}

/// Splits the prepared particles into clusters as configured.
pub fn decompose(p: &Prepared, cfg: &Config, snapshot: &Path) -> Result<Vec<Cluster>> {
    let c = &cfg.clusters;
    let pos = &p.stars.position;
    let clusters = match &c.method {
        ClusterMethod::Cells => decompose_cells(pos, c.n, c.margin)?,
        ClusterMethod::Fof => decompose_fof(pos, c.linking_length, c.min_size)?,
        ClusterMethod::Field(name) => {
            let (source, (ids, values)) = match &c.field_file {
                Some(f) => (
                    format!("{} (dataset {name})", f.display()),
                    snapio::read_side_field_i64(f, name)?,
                ),
                None => (
                    format!("{} (PartType4/{name})", snapshot.display()),
                    Snapshot::open(snapshot)?.read_star_field_i64(name)?,
                ),
            };
            let labels = labels_by_id(&p.stars.id, &ids, &values, &source)?;
            decompose_labels(&labels, name, c.min_size)
        }
    };
    if clusters.is_empty() {
        bail!("the decomposition produced no cluster");
    }
    Ok(clusters)
}

/// Writes `value` to `path` as JSON, or, when the file exists, checks it holds the same value
/// (a resumed run or another shard must be the same job). Compared as text: parsing JSON
/// floats back may differ in the last bit.
fn write_or_check<T: Serialize>(path: &Path, value: &T, what: &str) -> Result<()> {
    if path.exists() {
        let old = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut new = serde_json::to_string_pretty(value).context("cannot serialise")?;
        new.push('\n');
        if old != new {
            bail!(
                "{} holds {what} that differs from this one (another snapshot, configuration or \
                 program version): resume only with the same arguments, or choose a new --out",
                path.display()
            );
        }
        return Ok(());
    }
    write_json(path, value)
}

/// Path of cluster `c`'s star file and its completion record.
fn part_paths(dir: &Path, c: usize) -> (PathBuf, PathBuf) {
    let parts = dir.join("parts");
    let name = cluster_dir_name(c);
    (
        parts.join(format!("{name}.hdf5")),
        parts.join(format!("{name}.json")),
    )
}

/// How many clusters run at once and how many threads each backend op may use.
fn concurrency(cfg: &Config, pending: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    if cfg.device.starts_with("cuda") {
        // One GPU: clusters one after another, each using the whole device.
        return (1, threads);
    }
    let at_once = pending.clamp(1, threads);
    (at_once, (threads / at_once).max(1))
}

/// Sets libtorch's intra-op thread count (CPU backend) for the calling thread so that
/// concurrent clusters share the cores instead of oversubscribing them.
fn set_backend_threads(cfg: &Config, per_cluster: usize) {
    if cfg.device == "libtorch" {
        cnf::parallel::set_torch_threads(per_cluster);
    }
}

/// Runs the flow method on prepared particles into `dir` (this shard's clusters, or all), then
/// merges when the run is not sharded.
pub fn run(
    p: &Prepared,
    info: &RunInfo,
    cfg: &Config,
    dir: &Path,
    shard: Option<Shard>,
    mut seconds: Vec<(String, f64)>,
) -> Result<()> {
    write_or_check(&dir.join("run.json"), info, "a run")?;
    let t = Instant::now();
    let clusters = decompose(p, cfg, &info.snapshot)?;
    let s = &p.stars;
    let manifest = ModelsManifest {
        format: MODELS_FORMAT,
        version: crate::VERSION.to_string(),
        method: String::from(cfg.clusters.method.clone()),
        ensemble: cfg.training.ensemble,
        clusters: clusters
            .iter()
            .enumerate()
            .map(|(i, c)| ClusterRecord::new(i, c, &s.mass, &s.initial_mass))
            .collect(),
    };
    let models = dir.join("models");
    let parts = dir.join("parts");
    for d in [&models, &parts] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    write_or_check(&models.join("manifest.json"), &manifest, "a decomposition")?;
    seconds.push(("decompose".into(), t.elapsed().as_secs_f64()));
    tracing::info!(
        "{} clusters ({}): {}",
        clusters.len(),
        manifest.method,
        manifest
            .clusters
            .iter()
            .map(|r| format!("{} {}+{}", r.index, r.members, r.ghosts))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let pending: Vec<usize> = (0..clusters.len())
        .filter(|&c| shard.is_none_or(|sh| sh.owns(c)))
        .filter(|&c| !part_paths(dir, c).1.exists())
        .collect();
    let mine = (0..clusters.len())
        .filter(|&c| shard.is_none_or(|sh| sh.owns(c)))
        .count();
    if pending.len() < mine {
        tracing::info!(
            "resuming: {} of {mine} clusters already done",
            mine - pending.len()
        );
    }
    let device =
        cnf::parse_device(&cfg.device).with_context(|| format!("device {:?}", cfg.device))?;
    let imf = Imf::new(&cfg.imf)?;
    let draw = StarDraw {
        imf: &imf,
        fraction: cfg.stars.fraction,
        seed: cfg.seed,
    };
    let (at_once, per_cluster) = concurrency(cfg, pending.len());
    set_backend_threads(cfg, per_cluster);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(at_once.max(per_cluster))
        .build()
        .context("cannot start the worker threads")?;
    let meta = catalog_meta(&info.snapshot, cfg, &info.frame());
    let bar = Mutex::new(Progress::new(pending.len() as u64, "clusters"));
    let done = Mutex::new(0u64);
    let t = Instant::now();
    let work = |c: usize| -> Result<()> {
        // This worker's own libtorch thread count (a setting per thread, whatever other
        // clusters' training threads did to the default meanwhile).
        set_backend_threads(cfg, per_cluster);
        let cluster = &clusters[c];
        let record = &manifest.clusters[c];
        let cdir = models.join(record.dir_name());
        let members = match load_cluster(&cdir, record, cfg.training.ensemble, &device)? {
            Some(m) => {
                tracing::info!("{} ({c}): flows already trained, loaded", cluster.label);
                m.members
            }
            None => {
                let (members, training) = train_cluster(s, cluster, c, cfg, &device, per_cluster)?;
                save_cluster(&cdir, &members, &training)?;
                members
            }
        };
        let ts = Instant::now();
        let (part, marker) = part_paths(dir, c);
        let mut writer = CatalogWriter::create(&part, &meta)?;
        let stars = draw_flow_stars(s, cluster, c, &members, &draw, &mut writer)?;
        writer.finish()?;
        let record = ClusterStars {
            index: c,
            stars,
            seconds: ts.elapsed().as_secs_f64(),
        };
        write_json(&marker, &record)?;
        let mut n = done.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        if let Ok(mut b) = bar.lock() {
            b.set(
                *n,
                &format!("{} stars in cluster {c}", record.stars.stars_written),
            );
        }
        Ok(())
    };
    let results: Vec<(usize, Result<()>)> = pool.install(|| {
        use rayon::prelude::*;
        pending
            .par_iter()
            .with_max_len(1)
            .map(|&c| (c, work(c)))
            .collect()
    });
    if let Ok(b) = bar.into_inner() {
        b.finish();
    }
    seconds.push(("clusters".into(), t.elapsed().as_secs_f64()));
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|(c, r)| r.err().map(|e| format!("cluster {c}: {e:#}")))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} clusters failed (the others are kept; run again with the same arguments to \
             resume):\n  {}",
            failed.len(),
            pending.len(),
            failed.join("\n  ")
        );
    }
    match shard {
        Some(sh) => {
            println!(
                "shard {}/{}: {mine} clusters done in {}; run `upsample merge {}` once every shard has finished",
                sh.index,
                sh.count,
                dir.display(),
                dir.display()
            );
            Ok(())
        }
        None => merge_with(dir, seconds).map(|_| ()),
    }
}

/// Joins the clusters of a run folder into `catalog.hdf5` and `report.json`.
pub fn merge(dir: &Path) -> Result<RunReport> {
    merge_with(dir, Vec::new())
}

fn merge_with(dir: &Path, mut seconds: Vec<(String, f64)>) -> Result<RunReport> {
    let t = Instant::now();
    let info: RunInfo = read_json(&dir.join("run.json"))
        .with_context(|| format!("{} is not a run folder of `upsample`", dir.display()))?;
    let cfg: Config = toml::from_str(&info.config).with_context(|| {
        format!(
            "{}: configuration not readable",
            dir.join("run.json").display()
        )
    })?;
    let manifest = ModelsManifest::read(&dir.join("models"))?;
    let missing: Vec<usize> = (0..manifest.clusters.len())
        .filter(|&c| !part_paths(dir, c).1.exists())
        .collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().take(20).map(|c| c.to_string()).collect();
        bail!(
            "{}: {} of {} clusters are not done yet (clusters {}{}): run the missing shards (or \
             resume the run) before merging",
            dir.display(),
            missing.len(),
            manifest.clusters.len(),
            list.join(", "),
            if missing.len() > 20 { ", …" } else { "" }
        );
    }
    let catalog = dir.join("catalog.hdf5");
    let mut writer =
        CatalogWriter::create(&catalog, &catalog_meta(&info.snapshot, &cfg, &info.frame()))?;
    let mut totals = StarTotals::default();
    let mut clusters = Vec::with_capacity(manifest.clusters.len());
    for rec in &manifest.clusters {
        let (part, marker) = part_paths(dir, rec.index);
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
        let s = &done.stars;
        totals.stars_written += s.stars_written;
        totals.stars_drawn += s.stars_drawn;
        totals.initial_mass_drawn_msun += s.initial_mass_drawn_msun;
        totals.initial_mass_written_msun += s.initial_mass_written_msun;
        totals.particle_initial_mass_msun += s.particle_initial_mass_msun;
        let training: TrainingRecord = read_json(
            &dir.join("models")
                .join(rec.dir_name())
                .join("training.json"),
        )?;
        clusters.push(ClusterReport {
            record: rec.clone(),
            training,
            stars: done.stars,
            sampling_seconds: done.seconds,
        });
    }
    writer.finish()?;
    seconds.push(("merge".into(), t.elapsed().as_secs_f64()));
    let report = RunReport {
        info,
        stars: totals,
        clusters,
        seconds,
    };
    let path = dir.join("report.json");
    write_json(&path, &report)?;
    print_summary(&report, &catalog, &path);
    Ok(report)
}
