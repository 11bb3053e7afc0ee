//! What the figures read from a run folder's records: `report.json` (read back into the
//! pipeline's own types) and the order in which clusters are shown.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::Path;

use crate::fidelity::Fidelity;
use crate::models::{ClusterRecord, TrainingRecord};
use crate::pipeline::{RunInfo, SurveyCounts};
use crate::stars::StarTotals;

/// `report.json` as written by a finished run or `merge` (`pipeline::RunReport`).
#[derive(Debug, Clone, Deserialize)]
pub struct RunRecord {
    /// The run (snapshot, frame, configuration).
    #[serde(flatten)]
    pub info: RunInfo,
    /// Star totals.
    pub stars: StarTotals,
    /// Per cluster (flow method; empty for the kernel method).
    pub clusters: Vec<ClusterEntry>,
    /// Wall-clock seconds of each stage.
    pub seconds: Vec<(String, f64)>,
    /// Per observer of the mock survey (empty without a survey).
    #[serde(default)]
    pub survey: Vec<SurveyCounts>,
    /// The whole run's fidelity (absent without a holdout).
    #[serde(default)]
    pub fidelity: Option<Fidelity>,
}

/// One cluster of `report.json` (`pipeline::ClusterReport`).
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterEntry {
    /// Decomposition record: index, label, members, ghosts, weight, core cell.
    #[serde(flatten)]
    pub record: ClusterRecord,
    /// Training of both flows (held-out NLL, epochs, seconds, per-epoch history).
    pub training: TrainingRecord,
    /// Stars drawn and written.
    pub stars: StarTotals,
    /// Seconds spent drawing its stars.
    pub sampling_seconds: f64,
    /// Its stars against its held-out particles (absent without a holdout).
    #[serde(default)]
    pub fidelity: Option<Fidelity>,
}

impl RunRecord {
    /// Reads `path` (a run's `report.json`); errors name the file.
    pub fn read(path: &Path) -> Result<RunRecord> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read {} (figures need a finished run: its report.json)",
                path.display()
            )
        })?;
        let mut value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        if let Ok(r) = RunRecord::deserialize(&value) {
            return Ok(r);
        }
        // JSON has no NaN: serde_json writes a non-finite float as null, which an f64 field
        // refuses. Read those nulls as a sentinel, then turn it back into NaN.
        nulls_to_sentinel(&mut value);
        let mut r = RunRecord::deserialize(&value)
            .with_context(|| format!("{}: not a report.json of this program", path.display()))?;
        r.restore_nan();
        Ok(r)
    }

    /// Replaces the sentinel of [`nulls_to_sentinel`] by NaN in every float the figures use.
    fn restore_nan(&mut self) {
        if let Some(f) = &mut self.fidelity {
            restore_fidelity(f);
        }
        for c in &mut self.clusters {
            if let Some(f) = &mut c.fidelity {
                restore_fidelity(f);
            }
            for m in c
                .training
                .position
                .iter_mut()
                .chain(&mut c.training.velocity)
            {
                for v in [
                    &mut m.held_out_nll,
                    &mut m.held_out_nll_training_solver,
                    &mut m.seconds,
                ] {
                    restore(v);
                }
                for h in &mut m.history {
                    restore(&mut h.train_nll);
                    restore(&mut h.val_nll);
                }
            }
            restore(&mut c.training.seconds);
            restore(&mut c.sampling_seconds);
        }
        for (_, s) in &mut self.seconds {
            restore(s);
        }
    }

    /// Positions in `clusters` ordered worst first: by the two-sample z-score of the cluster's
    /// fidelity, largest first; clusters without fidelity after those with it, by index.
    pub fn worst_first(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.clusters.len()).collect();
        let z = |i: usize| {
            self.clusters[i]
                .fidelity
                .as_ref()
                .map(|f| f.two_sample.z)
                .filter(|z| z.is_finite())
        };
        order.sort_by(|&a, &b| match (z(a), z(b)) {
            (Some(x), Some(y)) => y.total_cmp(&x).then(a.cmp(&b)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => self.clusters[a]
                .record
                .index
                .cmp(&self.clusters[b].record.index),
        });
        order
    }
}

/// Stands for null (NaN) while report.json is read back.
const SENTINEL: f64 = f64::MAX;

/// Fields whose null means "absent" (an `Option`), not a non-finite float: kept as null, and
/// the core cells' bounds (null: unbounded side) are left alone.
const OPTIONAL: [&str; 4] = ["kinematics", "fidelity", "core_lo", "core_hi"];

/// Every null in `v` that stands for a non-finite float becomes [`SENTINEL`].
fn nulls_to_sentinel(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Null => {
            if let Some(n) = serde_json::Number::from_f64(SENTINEL) {
                *v = serde_json::Value::Number(n);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(nulls_to_sentinel),
        serde_json::Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                let bounds = k == "core_lo" || k == "core_hi";
                let absent = OPTIONAL.contains(&k.as_str()) && x.is_null();
                if !bounds && !absent {
                    nulls_to_sentinel(x);
                }
            }
        }
        _ => {}
    }
}

fn restore(v: &mut f64) {
    if *v == SENTINEL {
        *v = f64::NAN;
    }
}

fn restore_fidelity(f: &mut Fidelity) {
    let t = &mut f.two_sample;
    for v in [&mut t.statistic, &mut t.null_mean, &mut t.null_sd, &mut t.z] {
        restore(v);
    }
    let s = &mut f.smoothness;
    for v in [
        &mut s.median_star,
        &mut s.median_reference,
        &mut s.ratio,
        &mut s.ks,
    ] {
        restore(v);
    }
    for p in [&mut f.stars, &mut f.reference] {
        restore(&mut p.total_weight);
        for sh in &mut p.shells {
            for v in [
                &mut sh.r_inner,
                &mut sh.r_outer,
                &mut sh.r_mid,
                &mut sh.density,
                &mut sh.density_err,
                &mut sh.share,
                &mut sh.share_err,
            ] {
                restore(v);
            }
            if let Some(k) = &mut sh.kinematics {
                for v in [
                    &mut k.sigma_r,
                    &mut k.sigma_r_err,
                    &mut k.sigma_theta,
                    &mut k.sigma_phi,
                    &mut k.sigma_t,
                    &mut k.sigma_t_err,
                    &mut k.beta,
                    &mut k.beta_err,
                    &mut k.mean_vphi,
                    &mut k.mean_vphi_err,
                ] {
                    restore(v);
                }
            }
        }
    }
    for c in &mut f.shells {
        for v in [
            &mut c.r_mid,
            &mut c.share_ratio,
            &mut c.share_ratio_err,
            &mut c.sigma_r_ratio,
            &mut c.sigma_r_ratio_err,
            &mut c.sigma_t_ratio,
            &mut c.sigma_t_ratio_err,
            &mut c.beta_diff,
            &mut c.beta_diff_err,
            &mut c.vphi_diff,
            &mut c.vphi_diff_err,
        ] {
            restore(v);
        }
    }
}
