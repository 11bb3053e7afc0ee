//! Checkpoints: burnpack weights (`flow.bpk`) plus a JSON manifest (`manifest.json`) with the
//! architecture, whitening, metrics and versions.

use crate::error::CnfError;
use crate::field::VectorField;
use crate::flow::{Flow, FlowConfig, Whitening};
use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version of the checkpoint layout.
pub const FORMAT_VERSION: u32 = 1;
/// File name of the weights inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "flow.bpk";
/// File name of the manifest inside a checkpoint directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The JSON manifest stored beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Checkpoint layout version.
    pub format_version: u32,
    /// Version of the `cnf` crate that wrote it.
    pub cnf_version: String,
    /// burn version used.
    pub burn_version: String,
    /// Architecture and solver settings.
    pub config: FlowConfig,
    /// Whitening of data and context.
    pub whitening: Whitening,
    /// Free-form metrics (e.g. best validation NLL).
    pub metrics: serde_json::Value,
    /// libtorch's CPU code-path settings in the process that saved it
    /// ([`crate::backend::cpu_code_paths`]): what a seed's flows on the CPU depend on beyond
    /// the seed. Empty when unset, and in checkpoints written before it was recorded.
    #[serde(default)]
    pub cpu_code_paths: std::collections::BTreeMap<String, String>,
}

fn ck_err(path: &Path, reason: impl ToString) -> CnfError {
    CnfError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl Flow {
    /// Saves weights and manifest into `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<(), CnfError> {
        self.save_with_metrics(dir, serde_json::Value::Null)
    }

    /// Saves weights and a manifest carrying `metrics`.
    pub fn save_with_metrics(
        &self,
        dir: &Path,
        metrics: serde_json::Value,
    ) -> Result<(), CnfError> {
        std::fs::create_dir_all(dir).map_err(|e| ck_err(dir, e))?;
        let wpath = dir.join(WEIGHTS_FILE);
        self.field
            .clone()
            .save_file(&wpath)
            .map_err(|e| ck_err(&wpath, format!("{e:?}")))?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            cnf_version: env!("CARGO_PKG_VERSION").to_string(),
            burn_version: "0.22.1".to_string(),
            config: self.config.clone(),
            whitening: self.whitening.clone(),
            metrics,
            cpu_code_paths: crate::backend::cpu_code_paths(),
        };
        let mpath = dir.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| ck_err(&mpath, e))?;
        std::fs::write(&mpath, text).map_err(|e| ck_err(&mpath, e))
    }

    /// Reads the manifest of a checkpoint directory.
    pub fn read_manifest(dir: &Path) -> Result<Manifest, CnfError> {
        let mpath = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&mpath).map_err(|e| ck_err(&mpath, e))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| ck_err(&mpath, e))?;
        if m.format_version != FORMAT_VERSION {
            return Err(ck_err(
                &mpath,
                format!(
                    "format version {} (this build reads {FORMAT_VERSION})",
                    m.format_version
                ),
            ));
        }
        m.config
            .validate()
            .map_err(|e| ck_err(&mpath, e.to_string()))?;
        if m.whitening.mean.len() != m.config.dim
            || m.whitening.chol.len() != m.config.dim * m.config.dim
            || m.whitening.context_mean.len() != m.config.context_dim
            || m.whitening.context_std.len() != m.config.context_dim
        {
            return Err(ck_err(&mpath, "whitening does not match the configuration"));
        }
        Ok(m)
    }

    /// Loads a checkpoint onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Flow, CnfError> {
        let m = Self::read_manifest(dir)?;
        let plain = device.clone().without_autodiff();
        let wpath = dir.join(WEIGHTS_FILE);
        let field = VectorField::zeros(&m.config.layer_sizes(), &plain)
            .try_load_file(&wpath)
            .map_err(|e| ck_err(&wpath, format!("{e:?}")))?;
        Ok(Flow::from_parts(m.config, m.whitening, field, &plain))
    }
}
