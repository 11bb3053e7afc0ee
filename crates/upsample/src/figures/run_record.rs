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
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a report.json of this program", path.display()))
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
