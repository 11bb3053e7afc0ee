//! Test models whose flows are exact Gaussians (identity vector field, `final_init_scale = 0`,
//! whitening = the Gaussian's mean and scale): f = W N(x; 0, s²) N(v; 0, σ²) is the isothermal
//! steady state of the harmonic potential Φ = σ² r² / (2 s²), so a = -σ² x / s² exactly.
//!
//! Test support (the `test-support` feature): not part of the library's API.

use crate::decompose::CellBox;
use crate::models::{
    ClusterModel, Member, ModelSet, ModelsManifest, TrainingRecord, VelocityContext, MODELS_FORMAT,
};
use cnf::{Device, Flow, FlowConfig, Whitening};

/// A flow that is exactly N(mean, scale² I) (in 3D, with `context_dim` ignored inputs).
pub fn gaussian_flow(context_dim: usize, scale: f64, device: &Device) -> anyhow::Result<Flow> {
    let cfg = FlowConfig {
        context_dim,
        width: 8,
        depth: 1,
        final_init_scale: 0.0,
        ..FlowConfig::default()
    };
    let mut f = Flow::new(&cfg, device, 7)?;
    f.whitening = Whitening {
        mean: vec![0.0; 3],
        chol: vec![scale, 0.0, 0.0, 0.0, scale, 0.0, 0.0, 0.0, scale],
        context_mean: vec![0.0; context_dim],
        context_std: vec![1.0; context_dim],
        compress: None,
        context_compress: None,
    };
    Ok(f)
}

/// A member with position scale `s` kpc and velocity dispersion `sigma` km/s.
pub fn member(s: f64, sigma: f64, device: &Device) -> anyhow::Result<Member> {
    Ok(Member {
        position: gaussian_flow(0, s, device)?,
        velocity: gaussian_flow(3, sigma, device)?,
        dispersion: None,
        radial: None,
        context: VelocityContext::Position,
        origin: None,
    })
}

/// The exact acceleration of that model, (km/s)²/kpc.
pub fn acceleration(s: f64, sigma: f64, x: &[f64; 3]) -> [f64; 3] {
    x.map(|c| -sigma * sigma / (s * s) * c)
}

/// A cluster model of `members` with weight `weight_msun` and optional core cell.
pub fn cluster(
    index: usize,
    weight_msun: f64,
    core: Option<CellBox>,
    members: Vec<Member>,
) -> ClusterModel {
    ClusterModel {
        index,
        label: format!("test {index}"),
        weight_msun,
        core,
        members,
        training: TrainingRecord {
            index,
            position: vec![],
            velocity: vec![],
            seconds: 0.0,
        },
    }
}

/// An in-memory model set of `clusters` (all with the same ensemble size).
pub fn model_set(clusters: Vec<ClusterModel>) -> ModelSet {
    ModelSet {
        dir: std::path::PathBuf::from("(memory)"),
        manifest: ModelsManifest {
            format: MODELS_FORMAT,
            version: crate::VERSION.into(),
            method: "cells".into(),
            ensemble: clusters.first().map_or(1, |c| c.members.len()),
            clusters: vec![],
        },
        clusters,
    }
}
