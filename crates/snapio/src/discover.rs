//! Finding the files of a snapshot (single file, multi-file set, snapdir folder) and opening them.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{h5err, Result, SnapError};

/// HDF5 format signature (first 8 bytes of the superblock).
const HDF5_SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];

/// Splits `snap_099.3.hdf5` into (`snap_099`, Some(3), `hdf5`); `snap_099.hdf5` into (`snap_099`, None, `hdf5`).
fn parse_name(name: &str) -> Option<(String, Option<u32>, String)> {
    let (stem, ext) = name.rsplit_once('.')?;
    if ext != "hdf5" && ext != "h5" {
        return None;
    }
    if let Some((base, idx)) = stem.rsplit_once('.') {
        if !idx.is_empty() && idx.chars().all(|c| c.is_ascii_digit()) {
            if let Ok(i) = idx.parse::<u32>() {
                return Some((base.to_string(), Some(i), ext.to_string()));
            }
        }
    }
    Some((stem.to_string(), None, ext.to_string()))
}

/// A snapshot-like file in a folder: (path, base name, file index, extension).
type NamedFile = (PathBuf, String, Option<u32>, String);

fn list_dir(dir: &Path) -> Result<Vec<NamedFile>> {
    let rd = std::fs::read_dir(dir).map_err(|source| SnapError::Io {
        path: dir.to_path_buf(),
        context: "listing folder".into(),
        error: source,
    })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|source| SnapError::Io {
            path: dir.to_path_buf(),
            context: "listing folder".into(),
            error: source,
        })?;
        let p = e.path();
        if !p.is_file() {
            continue;
        }
        if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
            if let Some((b, i, x)) = parse_name(name) {
                out.push((p.clone(), b, i, x));
            }
        }
    }
    Ok(out)
}

/// Members `<base>.<i>.<ext>` of a multi-file set in `dir`, sorted by index, checked contiguous from 0.
fn indexed_set(given: &Path, dir: &Path, base: &str, ext: &str) -> Result<Vec<PathBuf>> {
    let mut members: Vec<(u32, PathBuf)> = list_dir(dir)?
        .into_iter()
        .filter(|(_, b, i, x)| b == base && i.is_some() && x == ext)
        .filter_map(|(p, _, i, _)| i.map(|i| (i, p)))
        .collect();
    members.sort();
    for (k, (i, _)) in members.iter().enumerate() {
        if *i as usize != k {
            return Err(SnapError::FileSet {
                path: given.to_path_buf(),
                detail: format!(
                    "file {base}.{k}.{ext} is missing from {} (files must be numbered 0..N-1)",
                    dir.display()
                ),
            });
        }
    }
    Ok(members.into_iter().map(|(_, p)| p).collect())
}

/// Finds the files of a snapshot from one file name, a missing single-file name, or a folder.
pub fn discover_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        let entries = list_dir(path)?;
        let mut bases: Vec<(String, String)> = entries
            .iter()
            .map(|(_, b, _, x)| (b.clone(), x.clone()))
            .collect();
        bases.sort();
        bases.dedup();
        return match bases.len() {
            0 => Err(SnapError::NotFound {
                path: path.to_path_buf(),
                expected: "a folder holding snapshot files named <base>.hdf5 or <base>.<i>.hdf5"
                    .into(),
            }),
            1 => {
                let (b, x) = &bases[0];
                let set = indexed_set(path, path, b, x)?;
                if set.is_empty() {
                    Ok(entries.into_iter().map(|e| e.0).collect())
                } else {
                    Ok(set)
                }
            }
            _ => Err(SnapError::FileSet {
                path: path.to_path_buf(),
                detail: format!(
                    "folder holds several snapshots ({}); give one file name",
                    bases
                        .iter()
                        .map(|(b, x)| format!("{b}.*.{x}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        };
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if path.is_file() {
        return match parse_name(name) {
            Some((base, Some(_), ext)) => indexed_set(path, &dir, &base, &ext),
            _ => Ok(vec![path.to_path_buf()]),
        };
    }
    // Not there: `snap_099.hdf5` may name the set `snap_099.0.hdf5`, `snap_099.1.hdf5`, ...
    if let Some((base, None, ext)) = parse_name(name) {
        if dir.is_dir() {
            let set = indexed_set(path, &dir, &base, &ext)?;
            if !set.is_empty() {
                return Ok(set);
            }
        }
    }
    Err(SnapError::NotFound {
        path: path.to_path_buf(),
        expected: "a snapshot file (or <name>.0.hdf5 ... of a multi-file set, or a snapdir folder)"
            .into(),
    })
}

/// Checks the HDF5 signature (at offset 0, 512, 1024, ... as HDF5 allows a user block).
fn check_signature(path: &Path) -> Result<()> {
    let mut f = std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SnapError::NotFound {
                path: path.to_path_buf(),
                expected: "a snapshot file".into(),
            }
        } else {
            SnapError::Io {
                path: path.to_path_buf(),
                context: "opening file".into(),
                error: source,
            }
        }
    })?;
    let mut head = vec![0u8; 1 << 16];
    let mut n = 0;
    loop {
        let k = f.read(&mut head[n..]).map_err(|source| SnapError::Io {
            path: path.to_path_buf(),
            context: "reading file signature".into(),
            error: source,
        })?;
        if k == 0 || n + k == head.len() {
            n += k;
            break;
        }
        n += k;
    }
    let mut off = 0usize;
    while off + 8 <= n {
        if head[off..off + 8] == HDF5_SIGNATURE {
            return Ok(());
        }
        off = if off == 0 { 512 } else { off * 2 };
    }
    Err(SnapError::NotHdf5 {
        path: path.to_path_buf(),
    })
}

pub(crate) fn open_h5(path: &Path) -> Result<hdf5::File> {
    check_signature(path)?;
    hdf5::File::open(path).map_err(h5err(
        path,
        "/",
        "opening HDF5 file (truncated or corrupt?)",
    ))
}
