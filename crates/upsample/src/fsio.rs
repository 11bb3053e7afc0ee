//! File-system helpers every output goes through: atomic writes (temporary sibling, then
//! rename) and JSON files that name themselves in errors.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary sibling and a rename, so that a reader never
/// sees a half-written file and a failure leaves no file at `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("output");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("cannot flush {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Serialises `value` as pretty JSON into `path`, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("cannot serialise report")?;
    text.push('\n');
    write_atomically(path, text.as_bytes())
}

/// Reads a JSON file, naming it in errors.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a valid file of this kind (written by another version?)",
            path.display()
        )
    })
}

/// Writes `value` to `path` as JSON, or, when the file exists, checks it holds the same value
/// (`what`, e.g. "a run": a resumed run or another shard must be the same job). Compared as
/// text: parsing JSON floats back may differ in the last bit.
pub fn write_or_check<T: Serialize>(path: &Path, value: &T, what: &str) -> Result<()> {
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

/// JSON has no NaN (serde_json writes non-finite floats as null): reads null back as NaN. For
/// `#[serde(deserialize_with = "crate::fsio::nan_if_null")]` on f64 fields of records.
pub(crate) fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_only_the_final_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        write_json(&p, &serde_json::json!({"a": 1})).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("r.json")]);
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(back["a"], 1);
        // A folder that does not exist: error, and nothing left behind.
        assert!(write_json(&dir.path().join("missing/r.json"), &1).is_err());
    }
}
