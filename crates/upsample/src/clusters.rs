//! TEMPORARY minimal decomposition (replaced by the full module: cells with ghost margins, fof,
//! field groups).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// How star particles are split into populations: "cells" (default), "fof" or "field:NAME".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ClusterMethod {
    /// Spatial cells with ghost margins.
    Cells,
    /// Friends-of-friends groups.
    Fof,
    /// Groups named by an integer dataset.
    Field(String),
}

impl TryFrom<String> for ClusterMethod {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "cells" => Ok(Self::Cells),
            "fof" => Ok(Self::Fof),
            _ => match s.strip_prefix("field:") {
                Some(n) if !n.is_empty() => Ok(Self::Field(n.to_string())),
                _ => Err(format!(
                    "cluster method must be \"cells\", \"fof\" or \"field:NAME\", got {s:?}"
                )),
            },
        }
    }
}

impl From<ClusterMethod> for String {
    fn from(m: ClusterMethod) -> String {
        match m {
            ClusterMethod::Cells => "cells".into(),
            ClusterMethod::Fof => "fof".into(),
            ClusterMethod::Field(n) => format!("field:{n}"),
        }
    }
}

/// Axis-aligned cell, half-open [lo, hi) on each axis, kpc.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellBox {
    /// Lower corner, kpc.
    pub lo: [f64; 3],
    /// Upper corner, kpc.
    pub hi: [f64; 3],
}

impl CellBox {
    /// Whether x lies in the box.
    pub fn contains(&self, x: &[f64; 3]) -> bool {
        (0..3).all(|d| x[d] >= self.lo[d] && x[d] < self.hi[d])
    }
    /// Euclidean distance from x to the box (0 inside), kpc.
    pub fn distance(&self, x: &[f64; 3]) -> f64 {
        (0..3)
            .map(|d| {
                let e = (self.lo[d] - x[d]).max(x[d] - self.hi[d]).max(0.0);
                e * e
            })
            .sum::<f64>()
            .sqrt()
    }
}

/// One population.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Name.
    pub label: String,
    /// Owned particles.
    pub members: Vec<usize>,
    /// Ghost particles.
    pub ghosts: Vec<usize>,
    /// Core cell.
    pub core: Option<CellBox>,
}

impl Cluster {
    /// members then ghosts.
    pub fn training(&self) -> Vec<usize> {
        let mut t = self.members.clone();
        t.extend(&self.ghosts);
        t
    }
}

/// Spatial cells (temporary: median splits, ghosts by distance).
pub fn decompose_cells(
    positions: &[[f64; 3]],
    n_cells: usize,
    margin: f64,
) -> Result<Vec<Cluster>> {
    if n_cells == 0 || n_cells > positions.len() {
        bail!("bad n_cells");
    }
    let inf = f64::INFINITY;
    let mut cells: Vec<(CellBox, Vec<usize>)> = vec![(
        CellBox {
            lo: [-inf; 3],
            hi: [inf; 3],
        },
        (0..positions.len()).collect(),
    )];
    while cells.len() < n_cells {
        let (k, _) = cells
            .iter()
            .enumerate()
            .max_by_key(|(_, c)| c.1.len())
            .unwrap();
        let (bx, idx) = cells.remove(k);
        let spread = |d: usize| {
            let (lo, hi) = idx.iter().fold((inf, -inf), |(a, b), &i| {
                (a.min(positions[i][d]), b.max(positions[i][d]))
            });
            hi - lo
        };
        let d = (0..3)
            .max_by(|&a, &b| spread(a).total_cmp(&spread(b)))
            .unwrap();
        let mut vals: Vec<f64> = idx.iter().map(|&i| positions[i][d]).collect();
        vals.sort_by(f64::total_cmp);
        let cut = vals[vals.len() / 2];
        let (a, b): (Vec<usize>, Vec<usize>) = idx.iter().partition(|&&i| positions[i][d] < cut);
        let (mut ba, mut bb) = (bx, bx);
        ba.hi[d] = cut;
        bb.lo[d] = cut;
        cells.insert(k, (bb, b));
        cells.insert(k, (ba, a));
    }
    Ok(cells
        .into_iter()
        .enumerate()
        .map(|(c, (bx, members))| {
            let mut out: Vec<(f64, usize)> = positions
                .iter()
                .enumerate()
                .filter(|(_, x)| !bx.contains(x))
                .map(|(i, x)| (bx.distance(x), i))
                .collect();
            out.sort_by(|a, b| a.0.total_cmp(&b.0));
            let want = (margin * members.len() as f64).round() as usize;
            let mut ghosts: Vec<usize> = out.iter().take(want).map(|p| p.1).collect();
            ghosts.sort();
            Cluster {
                label: format!("cell {c}"),
                members,
                ghosts,
                core: Some(bx),
            }
        })
        .collect())
}

/// Temporary.
pub fn decompose_fof(_p: &[[f64; 3]], _l: f64, _m: usize) -> Result<Vec<Cluster>> {
    bail!("fof: temporary module")
}
/// Temporary.
pub fn decompose_labels(_l: &[i64], _f: &str, _m: usize) -> Vec<Cluster> {
    Vec::new()
}
/// Temporary.
pub fn labels_by_id(_a: &[u64], _b: &[u64], _c: &[i64], _s: &str) -> Result<Vec<i64>> {
    bail!("temporary")
}
