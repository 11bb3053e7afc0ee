//! The trained models of a run, `DIR/models/`: the decomposition manifest and one folder per
//! cluster holding its flows (cnf checkpoints) and training metrics.
//!
//! ```text
//! models/manifest.json              decomposition: one ClusterRecord per cluster (written first)
//! models/cluster_0003/m0/position/  cnf checkpoint of p_c(x), x in kpc (galaxy frame)
//! models/cluster_0003/m0/velocity/  cnf checkpoint of p_c(v | x), v in km/s, context x in kpc
//!                                   (or of q(ṽ | x), ṽ the standardised velocity, when
//! models/cluster_0003/m0/local_dispersion.json  holds the profiles that standardise v)
//! models/cluster_0003/m0/radial_profile.json    when present: the position flow is q(y) of
//!                                   the Gaussianised positions y (radial_profile.rs)
//! models/cluster_0003/m0/velocity_context.json  when present: what the velocity flow is
//!                                   conditioned on (`VelocityContext`; absent: x)
//! models/cluster_0003/m1/...        further ensemble members (independently seeded), if any
//! models/cluster_0003/training.json TrainingRecord: written last, marks the cluster trained
//! ```
//!
//! The phase-space density a cluster stands for is f_c(x, v) = W_c p_c(x) p_c(v | x), W_c the
//! current stellar mass of the particles it was trained on (Msun), so f_c is a mass density in
//! phase space (Msun kpc⁻³ (km/s)⁻³). With ensemble members, f_c is their mean in f.
//!
//! This file holds the in-memory models and the records of the manifest; `store.rs` their
//! on-disk form (paths, saving, loading, the layout version). The density the models stand for,
//! as the acceleration solver sees it, is `crate::dynamics::flow_density`.

mod bernstein;
mod local_dispersion;
mod newton;
mod radial_profile;
mod store;

#[cfg(test)]
pub(crate) use local_dispersion::test_spheres;
pub use local_dispersion::LocalDispersion;
pub use radial_profile::{RadialProfile, EXTENT_MARGIN};
pub(crate) use store::{cluster_dir_name, load_cluster};
pub use store::{save_cluster, MODELS_FORMAT};

use anyhow::Result;
use cnf::{Flow, TrainReport};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::decompose::{CellBox, Cluster};

/// |x|: a position's distance from the galaxy's centre (kpc), or a vector's length (the
/// fidelity module's `radius`, one implementation for both).
pub(crate) use crate::fidelity::radius as norm;

/// A cluster as recorded in `models/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// Cluster index (its folder is `cluster_{index:04}`).
    pub index: usize,
    /// Human-readable name.
    pub label: String,
    /// Particles the cluster owns (their initial mass sets its star count).
    pub members: usize,
    /// Ghost particles it also trains on (cells).
    pub ghosts: usize,
    /// Current stellar mass of the training particles, Msun: W_c in f_c = W_c p_c(x) p_c(v|x).
    pub weight_msun: f64,
    /// Initial stellar mass of the owned particles, Msun.
    pub initial_mass_msun: f64,
    /// Cells: lower corner of the core cell, kpc (null: unbounded).
    pub core_lo: Option<[Option<f64>; 3]>,
    /// Cells: upper corner of the core cell, kpc (null: unbounded).
    pub core_hi: Option<[Option<f64>; 3]>,
}

impl ClusterRecord {
    /// The record of `cluster` (index `index`) of particles with these masses (Msun).
    pub fn new(index: usize, cluster: &Cluster, mass: &[f64], initial_mass: &[f64]) -> Self {
        let finite = |a: [f64; 3]| a.map(|v| v.is_finite().then_some(v));
        ClusterRecord {
            index,
            label: cluster.label.clone(),
            members: cluster.members.len(),
            ghosts: cluster.ghosts.len(),
            weight_msun: cluster
                .members
                .iter()
                .chain(&cluster.ghosts)
                .map(|&i| mass[i])
                .sum(),
            initial_mass_msun: cluster.members.iter().map(|&i| initial_mass[i]).sum(),
            core_lo: cluster.core.map(|b| finite(b.lo)),
            core_hi: cluster.core.map(|b| finite(b.hi)),
        }
    }

    /// The core cell, if any (unbounded faces at ±infinity).
    pub fn core(&self) -> Option<CellBox> {
        let (lo, hi) = (self.core_lo?, self.core_hi?);
        Some(CellBox {
            lo: lo.map(|v| v.unwrap_or(f64::NEG_INFINITY)),
            hi: hi.map(|v| v.unwrap_or(f64::INFINITY)),
        })
    }

    /// Folder name of the cluster inside `models/`.
    pub fn dir_name(&self) -> String {
        cluster_dir_name(self.index)
    }
}

/// `models/manifest.json`: the decomposition of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelsManifest {
    /// Layout version.
    pub format: u32,
    /// Program version that wrote it.
    pub version: String,
    /// Decomposition method ("cells", "fof", "field:NAME").
    pub method: String,
    /// Ensemble members per cluster.
    pub ensemble: usize,
    /// The clusters, in index order.
    pub clusters: Vec<ClusterRecord>,
}

/// Summary of one flow's training (kept in `training.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowMetrics {
    /// Held-out (validation split) NLL of the kept weights, nats per particle, data units
    /// (position flow: ln kpc⁻³; velocity flow: ln (km/s)⁻³), with the adaptive solver.
    pub held_out_nll: f64,
    /// The same with the fixed-step training solver (a large difference from `held_out_nll`
    /// means the dynamics outgrew the training step).
    pub held_out_nll_training_solver: f64,
    /// Epochs run.
    pub epochs_run: usize,
    /// Epoch whose weights were kept (0 also when the starting weights were).
    pub best_epoch: usize,
    /// Whether the starting weights (the near-identity flow: for a velocity flow of
    /// standardised velocities, the local dispersion model alone) were kept because no epoch
    /// beat them (by `training.min_gain_z` standard errors, where that test applies).
    #[serde(default)]
    pub kept_start: bool,
    /// The kept weights' held-out gain over the start, in standard errors of the paired
    /// per-particle NLL difference (absent: not measured, or the start kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gain_z: Option<f64>,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
    /// Recoveries from non-finite losses.
    pub recoveries: usize,
    /// Training and validation rows.
    pub n_train: usize,
    /// Validation rows.
    pub n_val: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Per epoch: mean training NLL and held-out (validation) NLL with the training solver,
    /// nats per particle in data units (empty in `training.json` files written before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<EpochNll>,
}

/// One epoch of a flow's training, as kept in `training.json`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochNll {
    /// Epoch index (0-based).
    pub epoch: usize,
    /// Mean training NLL of the epoch, nats per particle (data units); NaN (JSON null) when
    /// the epoch's loss was not finite.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub train_nll: f64,
    /// Held-out (validation split) NLL after the epoch, nats per particle (data units); NaN
    /// (JSON null) when not finite.
    #[serde(deserialize_with = "crate::fsio::nan_if_null")]
    pub val_nll: f64,
}

impl From<&TrainReport> for FlowMetrics {
    fn from(r: &TrainReport) -> Self {
        FlowMetrics {
            held_out_nll: r.best_val_nll_adaptive,
            held_out_nll_training_solver: r.best_val_nll,
            epochs_run: r.epochs_run,
            best_epoch: r.best_epoch,
            kept_start: r.kept_start,
            gain_z: r.gain_z,
            stopped_early: r.stopped_early,
            recoveries: r.recoveries,
            n_train: r.n_train,
            n_val: r.n_val,
            seconds: r.seconds,
            history: r
                .history
                .iter()
                .map(|e| EpochNll {
                    epoch: e.epoch,
                    train_nll: e.train_nll,
                    val_nll: e.val_nll,
                })
                .collect(),
        }
    }
}

/// `models/cluster_NNNN/training.json`: what training one cluster did (one entry per member).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// Cluster index.
    pub index: usize,
    /// Position flows, one per ensemble member.
    pub position: Vec<FlowMetrics>,
    /// Velocity flows, one per ensemble member.
    pub velocity: Vec<FlowMetrics>,
    /// Wall-clock seconds of the cluster's whole training.
    pub seconds: f64,
}

/// What a member's velocity flow is conditioned on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VelocityContext {
    /// The position x itself (kpc).
    #[default]
    Position,
    /// The position Gaussianised by the member's radial profile, y(x) (dimensionless): a
    /// cusp's inner kiloparsec spans a third of the context's range instead of a corner of it.
    Gaussianised,
}

impl VelocityContext {
    /// The context of a velocity at `x` (kpc), given the member's radial profile (a
    /// `Gaussianised` context without one is x).
    pub fn at(self, radial: Option<&RadialProfile>, x: [f64; 3]) -> [f64; 3] {
        match (self, radial) {
            (VelocityContext::Gaussianised, Some(p)) => p.gaussianise(x).0,
            _ => x,
        }
    }

    /// ∂/∂x (per kpc) of a function of the context at `x` whose gradient in the context is
    /// `g_c`.
    fn pull_back(self, radial: Option<&RadialProfile>, x: [f64; 3], g_c: [f64; 3]) -> [f64; 3] {
        match (self, radial) {
            (VelocityContext::Gaussianised, Some(p)) => p.pull_back(x, g_c),
            _ => g_c,
        }
    }
}

/// A cluster's own frame: the centre (kpc) and mean velocity (km/s) its flows are trained
/// about, in the galaxy frame. A compact satellite's density and dispersions are functions of
/// the distance to its own centre; about the galaxy's they are not.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// Centre, kpc.
    pub position: [f64; 3],
    /// Mean velocity, km/s.
    pub velocity: [f64; 3],
}

impl Origin {
    /// `x` (kpc) relative to the centre.
    pub fn to_local(&self, x: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|k| x[k] - self.position[k])
    }

    /// `v` (km/s) relative to the mean velocity.
    pub fn to_local_velocity(&self, v: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|k| v[k] - self.velocity[k])
    }
}

/// One ensemble member: a position flow and a velocity flow conditioned on position.
#[derive(Debug, Clone)]
pub struct Member {
    /// p_c(x), x in kpc; with `radial`, q(y) of the Gaussianised position y instead (use the
    /// methods below, which apply it).
    pub position: Flow,
    /// p_c(v | x), v in km/s, context x in kpc; with `dispersion`, q(ṽ | x) of the standardised
    /// velocity ṽ instead (use the methods below, which apply it).
    pub velocity: Flow,
    /// The profiles that standardise velocities before the velocity flow, if it was trained so.
    pub dispersion: Option<LocalDispersion>,
    /// The radial profile that Gaussianises positions before the position flow, if it was
    /// trained so.
    pub radial: Option<RadialProfile>,
    /// What the velocity flow is conditioned on (x, or y(x) of `radial`).
    pub context: VelocityContext,
    /// The frame the flows, `radial` and `dispersion` work in, if not the galaxy's: every
    /// method below takes and returns galaxy-frame positions and velocities.
    pub origin: Option<Origin>,
}

/// ln p(x) (ln kpc⁻³) with its gradient in x (per kpc).
pub(crate) type PositionGrad = (Vec<f64>, Vec<[f64; 3]>);

/// Log-density (ln (km/s)⁻³) of velocities given position and its gradients with respect to
/// the velocity (per km/s) and the position (per kpc).
pub(crate) type VelocityGrad = (Vec<f64>, Vec<[f64; 3]>, Vec<[f64; 3]>);

impl Member {
    /// Positions `x` (kpc) in the member's frame.
    fn local_positions(&self, x: &[[f64; 3]]) -> Vec<[f64; 3]> {
        match &self.origin {
            None => x.to_vec(),
            Some(o) => x.iter().map(|&p| o.to_local(p)).collect(),
        }
    }

    /// Positions (kpc) drawn from p(x), seeded.
    pub fn sample_positions(&self, n: usize, seed: u64) -> Result<Vec<[f64; 3]>> {
        let s = self.position.sample(n, None, seed)?;
        let local = s.into_iter().map(|y| match &self.radial {
            None => y,
            Some(p) => p.restore(y),
        });
        let c = self.origin.map_or([0.0; 3], |o| o.position);
        Ok(local
            .map(|p| std::array::from_fn(|k| p[k] + c[k]))
            .collect())
    }

    /// ln p(x) (ln kpc⁻³) at positions `x` (kpc).
    pub fn position_log_prob(&self, x: &[[f64; 3]]) -> Result<Vec<f64>> {
        let x = &self.local_positions(x)[..];
        let Some(p) = &self.radial else {
            return Ok(self.position.log_prob(x, None)?);
        };
        let (y, logdet): (Vec<[f64; 3]>, Vec<f64>) = x.iter().map(|&xi| p.gaussianise(xi)).unzip();
        let l = self.position.log_prob(&y, None)?;
        Ok(l.iter().zip(&logdet).map(|(a, b)| a + b).collect())
    }

    /// ln p(x) with its gradient in x at positions `x` (kpc).
    pub(crate) fn position_grad(&self, x: &[[f64; 3]]) -> Result<PositionGrad> {
        let x = &self.local_positions(x)[..];
        let Some(p) = &self.radial else {
            let (l, g, _) = self.position.grad_log_prob(x, None)?;
            return Ok((l, g));
        };
        let (y, logdet): (Vec<[f64; 3]>, Vec<f64>) = x.iter().map(|&xi| p.gaussianise(xi)).unzip();
        let (l, gy, _) = self.position.grad_log_prob(&y, None)?;
        let g = x
            .iter()
            .zip(&gy)
            .map(|(&xi, &gi)| p.chain(xi, gi))
            .collect();
        Ok((l.iter().zip(&logdet).map(|(a, b)| a + b).collect(), g))
    }

    /// Velocities (km/s) drawn from p(v | x) at positions `x` (kpc), one each, seeded.
    pub fn sample_velocities(&self, x: &[[f64; 3]], seed: u64) -> Result<Vec<[f64; 3]>> {
        let x = &self.local_positions(x)[..];
        let context = self.velocity_context(x, 1);
        let s = self.velocity.sample(x.len(), Some(&context), seed)?;
        Ok(self.restore(x, s, 1))
    }

    /// Velocities (km/s) transported from base-normal draws `z` (k per position of `x`).
    pub fn velocities_from_base(
        &self,
        z: &[[f64; 3]],
        x: &[[f64; 3]],
        k: usize,
    ) -> Result<Vec<[f64; 3]>> {
        let x = &self.local_positions(x)[..];
        let context = self.velocity_context(x, k);
        let s = self.velocity.forward(z, Some(&context))?;
        Ok(self.restore(x, s, k))
    }

    /// ln p(v | x) with its gradients in v and in x (k velocities per position of `x`).
    pub(crate) fn velocity_grad(
        &self,
        v: &[[f64; 3]],
        x: &[[f64; 3]],
        k: usize,
    ) -> Result<VelocityGrad> {
        let x = &self.local_positions(x)[..];
        let v = &match &self.origin {
            None => v.to_vec(),
            Some(o) => v.iter().map(|&u| o.to_local_velocity(u)).collect(),
        }[..];
        let context = self.velocity_context(x, k);
        let at = |j: usize| x[j / k.max(1)];
        // The context gradient, pulled back to x.
        let to_x = |gc: Vec<Vec<f64>>| -> Result<Vec<[f64; 3]>> {
            Ok(three(gc)?
                .into_iter()
                .enumerate()
                .map(|(j, g)| self.context.pull_back(self.radial.as_ref(), at(j), g))
                .collect())
        };
        let Some(d) = &self.dispersion else {
            let (l, gv, gc) = self.velocity.grad_log_prob(v, Some(&context))?;
            return Ok((l, gv, to_x(gc)?));
        };
        let (s, logdet): (Vec<[f64; 3]>, Vec<f64>) = v
            .iter()
            .enumerate()
            .map(|(j, &vj)| d.standardise(at(j), vj))
            .unzip();
        let (l, gs, gc) = self.velocity.grad_log_prob(&s, Some(&context))?;
        let gc = to_x(gc)?;
        let mut gx = Vec::with_capacity(v.len());
        let mut gv = Vec::with_capacity(v.len());
        for j in 0..v.len() {
            let (dx, dv) = d.chain(at(j), v[j], gs[j], gc[j]);
            gx.push(dx);
            gv.push(dv);
        }
        let l = l.iter().zip(&logdet).map(|(a, b)| a + b).collect();
        Ok((l, gv, gx))
    }

    /// The velocity flow's context (row-major, 3 per row) at positions `x` (kpc), each
    /// repeated `k` times.
    fn velocity_context(&self, x: &[[f64; 3]], k: usize) -> Vec<f64> {
        x.iter()
            .flat_map(|&p| std::iter::repeat_n(self.context.at(self.radial.as_ref(), p), k))
            .flatten()
            .collect()
    }

    /// Standardised velocities `s` (k per position of `x`, in the member's frame) back to
    /// galaxy-frame km/s.
    fn restore(&self, x: &[[f64; 3]], s: Vec<[f64; 3]>, k: usize) -> Vec<[f64; 3]> {
        let u = self.origin.map_or([0.0; 3], |o| o.velocity);
        s.into_iter()
            .enumerate()
            .map(|(j, sj)| {
                let v = match &self.dispersion {
                    None => sj,
                    Some(d) => d.restore(x[j / k.max(1)], sj),
                };
                std::array::from_fn(|c| v[c] + u[c])
            })
            .collect()
    }
}

/// Context gradients as 3-vectors (the velocity flow's context is a position).
fn three(g: Vec<Vec<f64>>) -> Result<Vec<[f64; 3]>> {
    g.into_iter()
        .map(|c| {
            <[f64; 3]>::try_from(c.as_slice()).map_err(|_| {
                anyhow::anyhow!(
                    "velocity flow returned a context gradient of {} values (expected 3)",
                    c.len()
                )
            })
        })
        .collect()
}

/// A cluster's trained models.
#[derive(Debug, Clone)]
pub struct ClusterModel {
    /// Cluster index.
    pub index: usize,
    /// Human-readable name.
    pub label: String,
    /// W_c, Msun (see the module docs).
    pub weight_msun: f64,
    /// Cells: the core cell that answers for positions inside it.
    pub core: Option<CellBox>,
    /// Ensemble members (at least one).
    pub members: Vec<Member>,
    /// Training metrics.
    pub training: TrainingRecord,
}

/// All models of a run.
#[derive(Debug, Clone)]
pub struct ModelSet {
    /// The `models/` folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: ModelsManifest,
    /// The clusters' models, in index order.
    pub clusters: Vec<ClusterModel>,
}
