//! Decomposition of the star particles into clusters: the populations that each get their own
//! flows, their own stars, and that fail or restart alone. Positions are in kpc (galaxy frame).
//!
//! Three methods ([`ClusterMethod`]):
//!
//! - **`cells`** (default, [`decompose_cells`], `cells.rs`): a balanced k-d split of space into `n_cells`
//!   axis-aligned boxes. Each cell owns the particles inside it and also trains on *ghosts*,
//!   neighbouring particles within a margin around it, so that its flows see the density
//!   continue across its faces; stars drawn outside the core cell are discarded.
//!   With `components` on, the smooth particles are first split into a rotating disc and a
//!   non-rotating spheroid (`components.rs`), each cut into cells of its own.
//! - **`fof`** ([`decompose_fof`], `fof.rs`): friends-of-friends groups, particles closer than the linking
//!   length (kpc) being friends; groups smaller than a minimum size are pooled into one field
//!   population. No ghosts, no core.
//! - **`field:NAME`** ([`decompose_labels`], `labels.rs`): one population per value of an integer dataset
//!   (host subhalo, group number, ...), joined to the stars by particle ID ([`labels_by_id`]);
//!   labels with few particles are pooled.
//!
//!
//! # Cost
//!
//! Cells work on a copy of the positions with their indices (32 bytes a particle) reordered in
//! place. Measured on 2 shared, busy cores (the `timing_one_and_ten_million` test, ignored by
//! default): 10 million particles into 1000 cells with margin 0.5 in about 5 s and 1.1 GB
//! peak; FoF on the same points in 25–35 s, a third of it building the k-d tree.

mod cells;
mod components;
mod ellipsoids;
mod fof;
mod labels;
mod phase_groups;
#[cfg(test)]
mod tests;

pub(crate) use cells::decompose_cells;
pub use components::{circularity, split_disc_spheroid, Components, DiscProbability};
pub(crate) use fof::decompose_fof;
pub(crate) use labels::{decompose_labels, labels_by_id};
pub(crate) use phase_groups::decompose_cells_and_groups;
pub use phase_groups::{
    elongation, find_phase_groups, stream_pieces, BackgroundRole, PhaseGroupSettings, PhaseGroups,
    ELONGATED, MIN_SHELL_COUNT, PIECE_ELONGATION,
};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How star particles are split into populations: "cells" (default), "fof" or "field:NAME".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ClusterMethod {
    /// Spatial cells of a balanced k-d split, trained with ghost margins.
    #[default]
    Cells,
    /// Friends-of-friends groups, small groups pooled.
    Fof,
    /// One population per value of the named integer dataset, small ones pooled.
    Field(String),
}

/// The accepted spellings of a [`ClusterMethod`], for error messages.
const METHOD_FORMS: &str = "`cells`, `fof` or `field:NAME` (NAME an integer dataset of the star \
                            particles or of a side file, e.g. `field:SubhaloID`)";

impl FromStr for ClusterMethod {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cells" => Ok(Self::Cells),
            "fof" => Ok(Self::Fof),
            _ => match s.strip_prefix("field:") {
                Some(name) if !name.trim().is_empty() => Ok(Self::Field(name.to_string())),
                Some(_) => bail!(
                    "cluster method `{s}`: no dataset name after `field:`; expected {METHOD_FORMS}"
                ),
                None => bail!("unknown cluster method `{s}`: expected {METHOD_FORMS}"),
            },
        }
    }
}

impl TryFrom<String> for ClusterMethod {
    type Error = anyhow::Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl fmt::Display for ClusterMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cells => f.write_str("cells"),
            Self::Fof => f.write_str("fof"),
            Self::Field(name) => write!(f, "field:{name}"),
        }
    }
}

impl From<ClusterMethod> for String {
    fn from(m: ClusterMethod) -> String {
        m.to_string()
    }
}

/// Axis-aligned cell, half-open [lo, hi) on each axis, kpc; outer faces are ±infinity so the
/// cells tile all space and every point lies in exactly one cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellBox {
    /// Lower corner, kpc (inclusive; −infinity on outer faces).
    pub lo: [f64; 3],
    /// Upper corner, kpc (exclusive; +infinity on outer faces).
    pub hi: [f64; 3],
}

impl CellBox {
    /// The box holding all space, kpc.
    pub const EVERYWHERE: CellBox = CellBox {
        lo: [f64::NEG_INFINITY; 3],
        hi: [f64::INFINITY; 3],
    };

    /// Whether `x` (kpc) lies in the box: lo <= x < hi on every axis.
    pub fn contains(&self, x: &[f64; 3]) -> bool {
        (0..3).all(|d| self.lo[d] <= x[d] && x[d] < self.hi[d])
    }

    /// Euclidean distance from x to the box (0 inside), kpc.
    pub fn distance(&self, x: &[f64; 3]) -> f64 {
        self.distance2(x).sqrt()
    }

    /// Squared distance from `x` to the box (0 inside or on a face), kpc².
    fn distance2(&self, x: &[f64; 3]) -> f64 {
        (0..3)
            .map(|d| {
                let gap = (self.lo[d] - x[d]).max(x[d] - self.hi[d]).max(0.0);
                gap * gap
            })
            .sum()
    }

    /// Squared distance between two boxes (0 if they touch or overlap), kpc². Never above the
    /// squared distance from this box to any point of `other`.
    fn box_distance2(&self, other: &CellBox) -> f64 {
        (0..3)
            .map(|d| {
                // Outer faces are infinite but lo is never +inf nor hi −inf: no inf − inf here.
                let gap = (self.lo[d] - other.hi[d])
                    .max(other.lo[d] - self.hi[d])
                    .max(0.0);
                gap * gap
            })
            .sum()
    }
}

/// One population: the particles it owns, the ghost particles it also trains on, its cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Human-readable name, e.g. "cell 3", "fof group 12 (845 particles)", "field Group=17", "fof field (pooled small groups)".
    pub label: String,
    /// Indices (ascending) of the particles the cluster owns: their initial mass sets its star count.
    pub members: Vec<usize>,
    /// Cells: indices (ascending) of neighbouring particles within the ghost margin (trained on, owned elsewhere). Empty otherwise.
    pub ghosts: Vec<usize>,
    /// Cells: the core cell; stars are kept only inside it. None for fof and field populations.
    pub core: Option<CellBox>,
    /// Cells of the smooth particles: the component they cut ("disc", "spheroid", or "smooth"
    /// where the galaxy is not split), whose cells around the centre share one velocity
    /// standardisation (`[flow] pooled_dispersion`). None for groups, labelled populations and
    /// the pieces of a stream.
    pub component: Option<&'static str>,
    /// Whether its flows learn it about its own centre and mean velocity (a compact phase-space
    /// group: a satellite's density and dispersions follow the distance to its own centre).
    pub own_frame: bool,
}

/// The name of the disc component in [`Cluster::component`].
pub const DISC_COMPONENT: &str = "disc";

impl Cluster {
    /// Members then ghosts: the rows (particle indices) a cluster's flows are trained on.
    pub fn training(&self) -> Vec<usize> {
        let mut rows = Vec::with_capacity(self.members.len() + self.ghosts.len());
        rows.extend_from_slice(&self.members);
        rows.extend_from_slice(&self.ghosts);
        rows
    }

    /// Largest distance of a ghost from the core cell (the margin h), kpc; 0 without ghosts or core.
    pub fn ghost_radius(&self, positions: &[[f64; 3]]) -> f64 {
        match &self.core {
            Some(core) => self
                .ghosts
                .iter()
                .filter_map(|&i| positions.get(i))
                .map(|x| core.distance(x))
                .fold(0.0, f64::max),
            None => 0.0,
        }
    }
}

/// Checks that there are positions and that all are finite; `what` names the method for errors.
pub(crate) fn check_positions(positions: &[[f64; 3]], what: &str) -> Result<()> {
    if positions.is_empty() {
        bail!("{what}: no particles to decompose (empty position list)");
    }
    if let Some((i, p)) = positions
        .iter()
        .enumerate()
        .find(|(_, p)| !p.iter().all(|x| x.is_finite()))
    {
        bail!("{what}: particle {i} has a non-finite position {p:?} kpc (expected finite numbers)");
    }
    Ok(())
}

/// What the smooth particles' split into disc and spheroid needs ([`decompose_smooth`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SmoothSplit<'a> {
    /// Likelihood weight of every particle (initial masses; None: one each).
    pub weights: Option<&'a [f64]>,
    /// Unique identity of every particle: the seed of its component draw.
    pub uids: &'a [u64],
    /// Disc probability from velocity ellipsoids where a shell rotates (`ellipsoids.rs`).
    pub ellipsoids: bool,
}

/// Cells of the particles `subset` (ascending indices into `positions`, kpc), their ghosts
/// taken from `subset` only; members and ghosts are indices into `positions`.
pub(crate) fn cells_of(
    positions: &[[f64; 3]],
    subset: &[usize],
    n_cells: usize,
    margin: f64,
) -> Result<Vec<Cluster>> {
    let sub: Vec<[f64; 3]> = subset.iter().map(|&i| positions[i]).collect();
    let mut cells = decompose_cells(&sub, n_cells, margin)?;
    // Back to indices of the full arrays (`subset` is ascending, so the lists stay ascending).
    for c in &mut cells {
        for i in c.members.iter_mut().chain(c.ghosts.iter_mut()) {
            *i = subset[*i];
        }
    }
    Ok(cells)
}

/// Cells of the smooth particles `rest` (ascending indices into `positions`, kpc, and
/// `velocities`, km/s): with `split`, those of a rotating disc and of a non-rotating spheroid
/// when the galaxy has both (`components.rs`), `n_cells` shared between them by particle
/// count (at least one each); otherwise `n_cells` cells of them all.
pub(crate) fn decompose_smooth(
    positions: &[[f64; 3]],
    velocities: &[[f64; 3]],
    rest: &[usize],
    n_cells: usize,
    margin: f64,
    split: Option<&SmoothSplit>,
) -> Result<Vec<Cluster>> {
    let found = match split {
        Some(s) if n_cells >= 2 => {
            let pos: Vec<[f64; 3]> = rest.iter().map(|&i| positions[i]).collect();
            let vel: Vec<[f64; 3]> = rest.iter().map(|&i| velocities[i]).collect();
            let w: Option<Vec<f64>> = s.weights.map(|w| rest.iter().map(|&i| w[i]).collect());
            let uids: Vec<u64> = rest.iter().map(|&i| s.uids[i]).collect();
            split_disc_spheroid(&pos, &vel, w.as_deref(), &uids, s.ellipsoids)
        }
        _ => None,
    };
    let Some(parts) = found else {
        let mut cells = cells_of(positions, rest, n_cells, margin)?;
        for c in &mut cells {
            c.component = Some("smooth");
        }
        return Ok(cells);
    };
    let n = rest.len() as f64;
    let disc_cells = ((n_cells as f64 * parts.disc.len() as f64 / n).round() as usize)
        .clamp(1, n_cells - 1)
        .min(parts.disc.len());
    let spheroid_cells = (n_cells - disc_cells).min(parts.spheroid.len());
    tracing::info!(
        "components: disc {} particles in {disc_cells} cells, spheroid {} in {spheroid_cells} \
         (expected disc share {:.3}; p from velocity ellipsoids in {} of {} shells)",
        parts.disc.len(),
        parts.spheroid.len(),
        parts.disc_share,
        parts.ellipsoid_shells.0,
        parts.ellipsoid_shells.1
    );
    let mut clusters = Vec::with_capacity(n_cells);
    for (name, members, k) in [
        (DISC_COMPONENT, &parts.disc, disc_cells),
        ("spheroid", &parts.spheroid, spheroid_cells),
    ] {
        let global: Vec<usize> = members.iter().map(|&j| rest[j]).collect();
        for mut c in cells_of(positions, &global, k, margin)? {
            c.label = format!("{name} {}", c.label);
            c.component = Some(name);
            clusters.push(c);
        }
    }
    Ok(clusters)
}
