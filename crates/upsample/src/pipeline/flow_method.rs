//! The flow method: decompose the particles into clusters, train each cluster's flows (or load
//! them when a previous attempt finished them), draw its stars into `DIR/parts/`. The join into
//! the catalogue is `shard.rs`'s merge.
//!
//! A cluster is the unit of work, of failure and of restart: a cluster is done when its
//! `parts/cluster_NNNN.json` exists, and every random stream is seeded from (seed, cluster, …)
//! (`crate::seed`), never from the order of work, so a run killed at any moment and started
//! again, or split into shards (`--shard I/N`) and merged, gives the same catalogue as one
//! uninterrupted run.

use anyhow::{bail, Context, Result};
use snapio::Snapshot;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use super::catalog::{catalog_meta, create_catalog};
use super::holdout::{cluster_fidelity, Holdout};
use super::mock_survey::MockSurvey;
use super::prepare::Prepared;
use super::run_dir::{ClusterStars, RunInfo, RunPaths};
use super::shard::Shard;
use super::training::{
    particle_weights, pooled_dispersions, train_cluster, training_rows, Compute,
};
use crate::config::Config;
use crate::decompose::{
    decompose_cells_and_groups, decompose_fof, decompose_labels, decompose_smooth, labels_by_id,
    Cluster, ClusterMethod, PhaseGroupSettings, SmoothSplit,
};
use crate::fsio::{write_json, write_or_check};
use crate::models::{
    load_cluster, save_cluster, ClusterRecord, LocalDispersion, Member, ModelsManifest,
    MODELS_FORMAT,
};
use crate::observe::Progress;
use crate::stars::{
    draw_flow_stars, has_parent_identity, Imf, MainSequenceScaling, PhaseSampler, StarDraw,
};

/// A member's flows as the star drawing sees them.
impl PhaseSampler for Member {
    fn positions(&self, n: usize, seed: u64) -> Result<Vec<[f64; 3]>> {
        self.sample_positions(n, seed)
    }

    fn velocities(&self, x: &[[f64; 3]], seed: u64) -> Result<Vec<[f64; 3]>> {
        self.sample_velocities(x, seed)
    }
}

/// Splits the prepared particles into clusters as configured.
pub(crate) fn decompose(p: &Prepared, cfg: &Config, snapshot: &Path) -> Result<Vec<Cluster>> {
    let c = &cfg.clusters;
    let pos = &p.stars.position;
    // The particles' identities decide the disc/spheroid draw of the cells method.
    let uids = if c.components && c.method == ClusterMethod::Cells {
        p.stars.uids()
    } else {
        Vec::new()
    };
    let split = c.components.then(|| SmoothSplit {
        weights: particle_weights(&p.stars, cfg.training.weighting),
        uids: &uids,
        ellipsoids: c.component_ellipsoids,
    });
    let clusters = match &c.method {
        ClusterMethod::Cells if c.substructure => decompose_cells_and_groups(
            pos,
            &p.stars.velocity,
            c.n,
            c.margin,
            &PhaseGroupSettings {
                contrast: c.substructure_contrast,
                grow_contrast: c.substructure_grow.min(c.substructure_contrast),
                min_members: c.substructure_min,
                ..PhaseGroupSettings::default()
            },
            split.as_ref(),
        )?,
        ClusterMethod::Cells => {
            let all: Vec<usize> = (0..pos.len()).collect();
            decompose_smooth(pos, &p.stars.velocity, &all, c.n, c.margin, split.as_ref())?
        }
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

/// The decomposition's manifest, written to (or checked against) `DIR/models/manifest.json`.
fn write_manifest(
    p: &Prepared,
    cfg: &Config,
    clusters: &[Cluster],
    paths: &RunPaths,
) -> Result<ModelsManifest> {
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
    for d in [paths.models(), paths.parts()] {
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    write_or_check(
        &paths.models().join("manifest.json"),
        &manifest,
        "a decomposition",
    )?;
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
    Ok(manifest)
}

/// Everything one cluster's work needs, shared by the worker threads.
struct ClusterJob<'a> {
    p: &'a Prepared,
    cfg: &'a Config,
    paths: &'a RunPaths,
    clusters: &'a [Cluster],
    manifest: &'a ModelsManifest,
    device: cnf::Device,
    draw: StarDraw<'a>,
    meta: snapio::CatalogMeta,
    per_cluster: usize,
    holdout: Holdout,
    /// The velocity standardisation of each smooth component, shared by its cells around the
    /// centre (`[flow] pooled_dispersion`).
    pooled: BTreeMap<&'static str, LocalDispersion>,
}

impl ClusterJob<'_> {
    /// Trains (or loads) cluster `c`'s flows, draws its stars into its part and marks it done.
    fn run(&self, c: usize) -> Result<ClusterStars> {
        // This worker's own libtorch thread count (a setting per thread, whatever other
        // clusters' training threads did to the default meanwhile).
        set_backend_threads(self.cfg, self.per_cluster);
        let cluster = &self.clusters[c];
        let record = &self.manifest.clusters[c];
        let cdir = self.paths.models().join(record.dir_name());
        let rows = training_rows(
            cluster,
            c,
            self.cfg.training.max_particles,
            self.cfg.seed,
            &self.holdout,
        );
        let members = match load_cluster(&cdir, record, self.cfg.training.ensemble, &self.device)? {
            Some(m) => {
                tracing::info!("{} ({c}): flows already trained, loaded", cluster.label);
                m.members
            }
            None => {
                let (members, training) = train_cluster(
                    &self.p.stars,
                    cluster,
                    c,
                    &rows,
                    cluster.component.and_then(|k| self.pooled.get(k)),
                    self.cfg,
                    Compute {
                        device: &self.device,
                        threads: self.per_cluster,
                    },
                )?;
                save_cluster(&cdir, &members, &training)?;
                members
            }
        };
        let ts = Instant::now();
        let (part, marker) = self.paths.part(c);
        let mut writer = create_catalog(&part, &self.meta, has_parent_identity(&self.p.stars))?;
        let stars = draw_flow_stars(&self.p.stars, cluster, c, &members, &self.draw, &mut writer)?;
        writer.finish()?;
        let seconds = ts.elapsed().as_secs_f64();
        let fidelity = if self.holdout.active() {
            let tf = Instant::now();
            let f = cluster_fidelity(
                &self.p.stars,
                cluster,
                c,
                &members,
                &rows,
                &self.holdout,
                self.paths,
            )?;
            tracing::info!(
                "{} ({c}): fidelity figures in {:.1} s{}",
                cluster.label,
                tf.elapsed().as_secs_f64(),
                f.as_ref().map_or(String::new(), |f| format!(
                    ": two-sample z {:.1}{}, smoothness ratio {:.3}",
                    f.two_sample.z,
                    f.two_sample.largest_part_note(),
                    f.smoothness.ratio
                ))
            );
            f
        } else {
            None
        };
        let record = ClusterStars {
            index: c,
            stars,
            seconds,
            fidelity,
        };
        write_json(&marker, &record)?;
        Ok(record)
    }
}

/// Trains and samples this shard's clusters (or all) that are not done yet into the run
/// folder; the caller merges. With a survey, its isochrones decide which stars are alive.
/// Returns the number of clusters this shard owns and the seconds of each stage.
pub(super) fn run_clusters(
    p: &Prepared,
    info: &RunInfo,
    cfg: &Config,
    paths: &RunPaths,
    shard: Option<Shard>,
    progress: &dyn Progress,
    survey: Option<&MockSurvey>,
) -> Result<(usize, Vec<(String, f64)>)> {
    let mut seconds = Vec::new();
    write_or_check(&paths.run_info(), info, "a run")?;
    let t = Instant::now();
    let clusters = decompose(p, cfg, &info.snapshot)?;
    let manifest = write_manifest(p, cfg, &clusters, paths)?;
    seconds.push(("decompose".into(), t.elapsed().as_secs_f64()));

    let mine: Vec<usize> = (0..clusters.len())
        .filter(|&c| shard.is_none_or(|sh| sh.owns(c)))
        .collect();
    let pending: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|&c| !paths.part_done(c))
        .collect();
    if pending.len() < mine.len() {
        tracing::info!(
            "resuming: {} of {} clusters already done",
            mine.len() - pending.len(),
            mine.len()
        );
    }
    let imf = Imf::new(&cfg.imf)?;
    let isochrones = survey.map(MockSurvey::lifetime);
    let (at_once, per_cluster) = concurrency(cfg, pending.len());
    set_backend_threads(cfg, per_cluster);
    let holdout = Holdout::new(&p.stars, cfg);
    let pooled = if pending.is_empty() {
        BTreeMap::new()
    } else {
        pooled_dispersions(&p.stars, &clusters, cfg, &holdout)?
    };
    let job = ClusterJob {
        p,
        cfg,
        paths,
        clusters: &clusters,
        manifest: &manifest,
        device: cnf::parse_device(&cfg.device)
            .with_context(|| format!("device {:?}", cfg.device))?,
        draw: StarDraw {
            imf: &imf,
            fraction: cfg.stars.fraction,
            seed: cfg.seed,
            lifetime: match &isochrones {
                Some(l) => l,
                None => &MainSequenceScaling,
            },
        },
        meta: catalog_meta(&info.snapshot, cfg, &info.frame()),
        per_cluster,
        holdout,
        pooled,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(at_once.max(per_cluster))
        .build()
        .context("cannot start the worker threads")?;
    let task = Mutex::new(progress.task(pending.len() as u64, "clusters"));
    let done = Mutex::new(0u64);
    let t = Instant::now();
    let results: Vec<(usize, Result<()>)> = pool.install(|| {
        use rayon::prelude::*;
        pending
            .par_iter()
            .with_max_len(1)
            .map(|&c| {
                let r = job.run(c).map(|record| {
                    let mut n = done.lock().unwrap_or_else(|e| e.into_inner());
                    *n += 1;
                    if let Ok(mut task) = task.lock() {
                        task.set(
                            *n,
                            &format!("{} stars in cluster {c}", record.stars.stars_written),
                        );
                    }
                });
                (c, r)
            })
            .collect()
    });
    if let Ok(task) = task.into_inner() {
        task.finish();
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
    Ok((mine.len(), seconds))
}
