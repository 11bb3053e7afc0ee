//! The pipeline a library user calls: [`run`] takes a configuration and a run folder and does the
//! whole job; [`merge`] joins a sharded run; [`accel::run_accel`] solves accelerations from a
//! run's models. It composes `snapio` (reading, frame, catalogue), `crate::decompose`,
//! `crate::stars`, `crate::models` (over `cnf`) and `crate::dynamics`, and prints nothing:
//! progress goes through `crate::observe`, results come back as values.
//!
//! Reading order: `prepare.rs` (particles in the galaxy frame) → `kernel_method.rs` or
//! `flow_method.rs` (+ `training.rs`) → `shard.rs` (merge into the catalogue), with
//! `run_dir.rs` naming every file of the run folder and `catalog.rs` the catalogue's attributes.

pub mod accel;
mod catalog;
mod flow_method;
mod holdout;
mod kernel_method;
mod mock_survey;
mod prepare;
mod run_dir;
mod shard;
mod training;

pub(crate) use kernel_method::write_kernel_catalog;
pub use prepare::dropped_summary;
pub(crate) use prepare::prepare;
pub use run_dir::{ClusterReport, RunInfo, RunLock, RunPaths, RunReport, SurveyCounts};
pub use shard::{merge, Shard};

use anyhow::{bail, Context, Result};
use std::time::Instant;

use crate::config::{Config, Method};
use crate::fsio::write_json;
use crate::observe::Progress;
use mock_survey::MockSurvey;

/// What a run left behind.
#[derive(Debug)]
pub enum RunOutcome {
    /// The catalogue and report are written.
    Complete(Box<RunReport>),
    /// A shard's clusters are done; the run is complete once every shard is and
    /// [`merge`] has joined them.
    ShardDone {
        /// The shard that ran.
        shard: Shard,
        /// Clusters it owns (all done).
        clusters: usize,
    },
}

/// Runs the whole job described by `cfg` (already validated) from `paths.snapshot` into
/// `paths.out`: read, frame, region, then the kernel method, or the flow method (this shard's
/// clusters, then the merge when not sharded).
pub fn run(
    cfg: &Config,
    paths: &RunPaths,
    shard: Option<Shard>,
    progress: &dyn Progress,
) -> Result<RunOutcome> {
    cfg.validate()?;
    if shard.is_some() && cfg.method != Method::Flow {
        bail!("--shard needs the flow method (the kernel method has no clusters to share out)");
    }
    // The survey's isochrones are read before anything is written: a bad table fails early.
    let survey = MockSurvey::load(cfg)?;
    let mut seconds = Vec::new();
    let t = Instant::now();
    let p = prepare(&paths.snapshot, cfg)?;
    seconds.push(("read_and_frame".to_string(), t.elapsed().as_secs_f64()));
    std::fs::create_dir_all(&paths.out)
        .with_context(|| format!("cannot create output folder {}", paths.out.display()))?;
    let _lock = RunLock::acquire(paths, shard.map(|s| (s.index, s.count)))?;
    let info = RunInfo::new(&paths.snapshot, &p, cfg);
    if cfg.method == Method::Flow {
        let (clusters, stages) =
            flow_method::run_clusters(&p, &info, cfg, paths, shard, progress, survey.as_ref())?;
        seconds.extend(stages);
        return match shard {
            Some(shard) => Ok(RunOutcome::ShardDone { shard, clusters }),
            None => Ok(RunOutcome::Complete(Box::new(shard::merge_with(
                &paths.out, seconds,
            )?))),
        };
    }
    let t = Instant::now();
    let (stars, survey) = write_kernel_catalog(&p, cfg, paths, survey.as_ref(), progress)?;
    seconds.push(("stars".to_string(), t.elapsed().as_secs_f64()));
    let report = RunReport {
        info,
        stars,
        clusters: Vec::new(),
        seconds,
        survey,
        fidelity: None,
    };
    write_json(&paths.report(), &report)?;
    Ok(RunOutcome::Complete(Box::new(report)))
}
