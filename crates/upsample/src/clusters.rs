//! Decomposition of the star particles into clusters: the populations that each get their own
//! flows, their own stars, and that fail or restart alone. Positions are in kpc (galaxy frame).
//!
//! Three methods ([`ClusterMethod`]):
//!
//! - **`cells`** (default, [`decompose_cells`]): a balanced k-d split of space into `n_cells`
//!   axis-aligned boxes. Each cell owns the particles inside it and also trains on *ghosts*,
//!   neighbouring particles within a margin around it, so that its flows see the density
//!   continue across its faces; stars drawn outside the core cell are discarded.
//! - **`fof`** ([`decompose_fof`]): friends-of-friends groups, particles closer than the linking
//!   length (kpc) being friends; groups smaller than a minimum size are pooled into one field
//!   population. No ghosts, no core.
//! - **`field:NAME`** ([`decompose_labels`]): one population per value of an integer dataset
//!   (host subhalo, group number, ...), joined to the stars by particle ID ([`labels_by_id`]);
//!   labels with few particles are pooled.
//!
//! # Cells
//!
//! The split is recursive: a box that must become `k` cells is cut, across the axis on which its
//! particles spread widest (max − min; the lowest axis on ties), into a part that becomes
//! ⌊k/2⌋ cells and a part that becomes the rest, the cut placed between the two particles of
//! the right rank, so that cell `j` (in split-tree order, lower side first) gets
//! ⌊(j+1)N/n⌋ − ⌊jN/n⌋ particles: every cell holds ⌊N/n⌋ or ⌈N/n⌉. For a power of two this
//! is the median split of the widest axis at every level. The cut lies halfway between the
//! last particle below and the first above, so boxes do not pass through particles; where
//! particles share the cut coordinate exactly, the cut moves to the nearest gap between
//! distinct values (the counts then deviate from the balance by the number of tied particles).
//! Cells are half-open, `[lo, hi)` on each axis, and the outer faces are at ±infinity: the
//! cells tile all space and each point lies in exactly one.
//!
//! # Ghost margin rule
//!
//! `margin` is the number of ghosts wanted as a fraction of the cell's own particle count.
//! For a cell with `n` members, `g = round(margin × n)` (at most the number of particles outside
//! the cell); `h` is the g-th smallest Euclidean distance from an outside particle to the box
//! (0 for a particle on a face), and the ghosts are all outside particles at distance ≤ `h`
//! (ties included, so a cell may get a few more than `g`). `margin = 0` gives no ghosts. The
//! result does not depend on thread count or order. The search visits neighbouring cells by
//! increasing box-to-box distance and stops once the g-th smallest distance found is below the
//! distance of the next unvisited cell, so it touches about the cell's neighbours, not all N.
//!
//! # Friends of friends
//!
//! Radius queries on a kiddo k-d tree, issued in parallel in Morton order, join friends in a
//! lock-free union-find whose roots are the smallest index of each group, so groups do not
//! depend on thread count or order.
//!
//! # Cost
//!
//! Cells work on a copy of the positions with their indices (32 bytes a particle) reordered in
//! place. Measured on 2 shared, busy cores (the `timing_one_and_ten_million` test, ignored by
//! default): 10 million particles into 1000 cells with margin 0.5 in about 5 s and 1.1 GB
//! peak; FoF on the same points in 25–35 s, a third of it building the k-d tree.

use anyhow::{anyhow, bail, Result};
use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

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
}

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
fn check_positions(positions: &[[f64; 3]], what: &str) -> Result<()> {
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

/// Particle count of the first `j` cells of `n_cells` when `n` particles are shared evenly.
fn even_share(j: usize, n: usize, n_cells: usize) -> usize {
    (j as u128 * n as u128 / n_cells as u128) as usize
}

/// A value in (a, b] (halfway when representable): `x < cut` keeps a below, b above.
fn cut_between(a: f64, b: f64) -> f64 {
    let mid = a + (b - a) * 0.5;
    if mid > a && mid <= b {
        mid
    } else {
        b
    }
}

/// A particle during the split: (index, position kpc), moved with its position so that every
/// pass over a cell streams through memory.
type Point = (usize, [f64; 3]);

/// Where to cut `pts` along `axis` so that about `want` points fall below (`x < cut`), with
/// that count kept in `min_lo..=max_lo`. `None` if ties make every admissible count impossible.
/// Reorders `pts`.
fn cut_value(
    pts: &mut [Point],
    axis: usize,
    want: usize,
    min_lo: usize,
    max_lo: usize,
) -> Option<f64> {
    let key = |p: &Point| p.1[axis];
    let (below, nth, _) = pts.select_nth_unstable_by(want, |p, q| key(p).total_cmp(&key(q)));
    let b = key(nth);
    let a = below.iter().map(key).fold(f64::NEG_INFINITY, f64::max);
    if a < b {
        return Some(cut_between(a, b));
    }
    // Particles share the coordinate t at the wanted rank: cut just below or just above them.
    let t = b;
    let (mut n_lt, mut n_le) = (0usize, 0usize);
    let (mut max_lt, mut min_gt) = (f64::NEG_INFINITY, f64::INFINITY);
    for v in pts.iter().map(key) {
        if v < t {
            n_lt += 1;
            max_lt = max_lt.max(v);
        }
        if v <= t {
            n_le += 1;
        } else {
            min_gt = min_gt.min(v);
        }
    }
    let below = (min_lo..=max_lo)
        .contains(&n_lt)
        .then(|| (n_lt.abs_diff(want), cut_between(max_lt, t)));
    let above = (min_lo..=max_lo)
        .contains(&n_le)
        .then(|| (n_le.abs_diff(want), cut_between(t, min_gt)));
    match (below, above) {
        (Some(lo), Some(hi)) => Some(if hi.0 < lo.0 { hi.1 } else { lo.1 }),
        (Some(lo), None) => Some(lo.1),
        (None, Some(hi)) => Some(hi.1),
        (None, None) => None,
    }
}

/// Moves the points with `below` true to the front; returns how many there are.
fn partition_in_place(pts: &mut [Point], below: impl Fn(&Point) -> bool) -> usize {
    let mut k = 0;
    for j in 0..pts.len() {
        if below(&pts[j]) {
            pts.swap(k, j);
            k += 1;
        }
    }
    k
}

/// Nodes above this many particles split their two halves on two threads.
const PARALLEL_SPLIT_MIN: usize = 100_000;

/// Splits the points `pts` inside `core` into the cells `first..last` of `n_cells`, reordering
/// `pts` so that each cell's points are contiguous, in split-tree order; returns (box, count)
/// per cell.
fn split_cells(
    pts: &mut [Point],
    core: CellBox,
    first: usize,
    last: usize,
    n_total: usize,
    n_cells: usize,
) -> Result<Vec<(CellBox, usize)>> {
    let k = last - first;
    let m = pts.len();
    if k == 1 {
        return Ok(vec![(core, m)]);
    }
    let mid = first + k / 2;
    let (k_lo, k_hi) = (mid - first, last - mid);
    if m < k {
        bail!(
            "cells: cannot split {m} particles into {k} cells (cells {first}..{last}): too many \
             particles share positions; ask for fewer cells"
        );
    }
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for (_, x) in pts.iter() {
        for d in 0..3 {
            lo[d] = lo[d].min(x[d]);
            hi[d] = hi[d].max(x[d]);
        }
    }
    let mut axis = 0;
    for d in 1..3 {
        if hi[d] - lo[d] > hi[axis] - lo[axis] {
            axis = d;
        }
    }
    if hi[axis] - lo[axis] <= 0.0 {
        bail!(
            "cells: cannot split {m} particles at the same position {:?} kpc into {k} cells; ask \
             for fewer cells",
            pts[0].1
        );
    }
    // Even shares if this node got its even share; proportional otherwise (after ties).
    let (min_lo, max_lo) = (k_lo, m - k_hi);
    let want = if m == even_share(last, n_total, n_cells) - even_share(first, n_total, n_cells) {
        even_share(mid, n_total, n_cells) - even_share(first, n_total, n_cells)
    } else {
        m * k_lo / k
    }
    .clamp(min_lo, max_lo);
    let cut = cut_value(pts, axis, want, min_lo, max_lo).ok_or_else(|| {
        anyhow!(
            "cells: cannot split {m} particles into {k} cells along axis {axis}: too many share \
             the same coordinate; ask for fewer cells"
        )
    })?;
    let n_lo = partition_in_place(pts, |p| p.1[axis] < cut);
    let (pts_lo, pts_hi) = pts.split_at_mut(n_lo);
    let mut box_lo = core;
    box_lo.hi[axis] = cut;
    let mut box_hi = core;
    box_hi.lo[axis] = cut;
    let mut go_lo = move || split_cells(pts_lo, box_lo, first, mid, n_total, n_cells);
    let mut go_hi = move || split_cells(pts_hi, box_hi, mid, last, n_total, n_cells);
    let (a, b) = if m >= PARALLEL_SPLIT_MIN {
        rayon::join(go_lo, go_hi)
    } else {
        (go_lo(), go_hi())
    };
    let mut cells = a?;
    cells.extend(b?);
    Ok(cells)
}

/// Orders (squared distance, particle index) pairs: distance, then index.
fn by_distance_then_index(a: &(f64, usize), b: &(f64, usize)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// The ghosts of cell `c` (ascending indices) under the margin rule of the module docs; cell
/// `k` is `boxes[k]` holding the points `pts[ranges[k]]`.
fn ghosts_of(
    c: usize,
    boxes: &[CellBox],
    ranges: &[Range<usize>],
    pts: &[Point],
    margin: f64,
) -> Vec<usize> {
    let core = &boxes[c];
    let n_members = ranges[c].len();
    let outside = pts.len() - n_members;
    let g = ((margin * n_members as f64).round() as usize).min(outside);
    if g == 0 {
        return Vec::new();
    }
    // Other cells by increasing box distance: every particle of a cell is at least that far.
    let mut order: Vec<(f64, usize)> = boxes
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != c)
        .map(|(k, b)| (core.box_distance2(b), k))
        .collect();
    order.sort_unstable_by(by_distance_then_index);
    let mut candidates: Vec<(f64, usize)> = Vec::new();
    let mut visited = 0;
    loop {
        // Visit twice as many cells as so far, plus those at the same distance as the last.
        let mut end = (visited + visited.max(1)).min(order.len());
        while end < order.len() && order[end].0 == order[end - 1].0 {
            end += 1;
        }
        for &(_, k) in &order[visited..end] {
            candidates.extend(
                pts[ranges[k].clone()]
                    .iter()
                    .map(|(i, x)| (core.distance2(x), *i)),
            );
        }
        visited = end;
        // Every particle closer than `next` has been seen.
        let next = order.get(visited).map_or(f64::INFINITY, |o| o.0);
        if candidates.len() >= g {
            let (_, nth, _) = candidates.select_nth_unstable_by(g - 1, by_distance_then_index);
            let h2 = nth.0;
            if h2 < next || visited == order.len() {
                let mut ghosts: Vec<usize> = candidates
                    .iter()
                    .filter(|x| x.0 <= h2)
                    .map(|x| x.1)
                    .collect();
                ghosts.sort_unstable();
                return ghosts;
            }
        }
    }
}

/// Spatial cells from a balanced k-d split across the widest axis (by particle spread) into `n_cells` cells of ⌊N/n⌋ or ⌈N/n⌉ particles, then ghosts; positions in kpc.
///
/// For a power of two every cut is at the median; otherwise a box that becomes k cells is cut
/// at rank ⌊k/2⌋/k of its particles (see the module docs, with the ghost rule). `margin` is the
/// ghost count wanted per cell as a fraction of its members (e.g. 0.5). Cells come in
/// split-tree order (lower side first), labelled "cell 0", "cell 1", ...
pub fn decompose_cells(
    positions: &[[f64; 3]],
    n_cells: usize,
    margin: f64,
) -> Result<Vec<Cluster>> {
    check_positions(positions, "cells")?;
    let n = positions.len();
    if n_cells == 0 {
        bail!("cells: the number of cells must be at least 1");
    }
    if n_cells > n {
        bail!(
            "cells: cannot make {n_cells} cells from {n} particles (every cell needs at least one \
             particle); ask for at most {n} cells"
        );
    }
    if !(margin.is_finite() && margin >= 0.0) {
        bail!(
            "cells: ghost margin {margin} is not a finite number >= 0 (it is the ghost count as a \
             fraction of a cell's particles, e.g. 0.5)"
        );
    }
    let mut pts: Vec<Point> = positions.par_iter().copied().enumerate().collect();
    let cells = split_cells(&mut pts, CellBox::EVERYWHERE, 0, n_cells, n, n_cells)?;
    let boxes: Vec<CellBox> = cells.iter().map(|c| c.0).collect();
    let mut ranges = Vec::with_capacity(cells.len());
    let mut start = 0;
    for &(_, count) in &cells {
        ranges.push(start..start + count);
        start += count;
    }
    let clusters = (0..n_cells)
        .into_par_iter()
        .map(|c| {
            let mut members: Vec<usize> = pts[ranges[c].clone()].iter().map(|p| p.0).collect();
            members.sort_unstable();
            Cluster {
                label: format!("cell {c}"),
                members,
                ghosts: ghosts_of(c, &boxes, &ranges, &pts, margin),
                core: Some(boxes[c]),
            }
        })
        .collect();
    Ok(clusters)
}

/// Root of `x` in a concurrent union-find whose links always point to smaller indices.
fn uf_find(parent: &[AtomicUsize], mut x: usize) -> usize {
    loop {
        let p = parent[x].load(AtomicOrdering::Acquire);
        if p == x {
            return x;
        }
        let gp = parent[p].load(AtomicOrdering::Acquire);
        if gp != p {
            // Path halving; a lost race only means less compression.
            let _ =
                parent[x].compare_exchange(p, gp, AtomicOrdering::AcqRel, AtomicOrdering::Relaxed);
        }
        x = p;
    }
}

/// Joins the sets of `a` and `b`, the larger root linked under the smaller (lock-free).
fn uf_union(parent: &[AtomicUsize], a: usize, b: usize) {
    loop {
        let (ra, rb) = (uf_find(parent, a), uf_find(parent, b));
        if ra == rb {
            return;
        }
        let (big, small) = if ra > rb { (ra, rb) } else { (rb, ra) };
        if parent[big]
            .compare_exchange(big, small, AtomicOrdering::AcqRel, AtomicOrdering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// Spreads the low 21 bits of `x` to every third bit (Morton interleaving).
fn spread_bits(x: u64) -> u64 {
    let mut x = x & 0x1f_ffff;
    x = (x | x << 32) & 0x001f_0000_0000_ffff;
    x = (x | x << 16) & 0x001f_0000_ff00_00ff;
    x = (x | x << 8) & 0x100f_00f0_0f00_f00f;
    x = (x | x << 4) & 0x10c3_0c30_c30c_30c3;
    x = (x | x << 2) & 0x1249_2492_4924_9249;
    x
}

/// Particle indices sorted along a Morton (Z-order) curve over their bounding box; n < 2^32.
fn morton_order(positions: &[[f64; 3]]) -> Vec<u32> {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for x in positions {
        for d in 0..3 {
            lo[d] = lo[d].min(x[d]);
            hi[d] = hi[d].max(x[d]);
        }
    }
    let scale: [f64; 3] =
        std::array::from_fn(|d| f64::from((1u32 << 21) - 1) / (hi[d] - lo[d]).max(1e-300));
    let mut keyed: Vec<(u64, u32)> = positions
        .par_iter()
        .enumerate()
        .map(|(i, x)| {
            // `as` saturates, so rounding at the box edges stays in 0..2^21.
            let q: [u64; 3] = std::array::from_fn(|d| ((x[d] - lo[d]) * scale[d]) as u64);
            let key = spread_bits(q[0]) | spread_bits(q[1]) << 1 | spread_bits(q[2]) << 2;
            (key, i as u32)
        })
        .collect();
    keyed.par_sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Friends-of-friends groups (kiddo radius queries + union-find) with linking length in kpc; groups smaller than min_size pooled into one "field" population (listed last, if any).
///
/// Two particles are friends when their distance is ≤ the linking length. Groups come by
/// descending size, ties by smallest member index, labelled "fof group K (N particles)".
pub fn decompose_fof(
    positions: &[[f64; 3]],
    linking_length_kpc: f64,
    min_size: usize,
) -> Result<Vec<Cluster>> {
    check_positions(positions, "fof")?;
    if !(linking_length_kpc.is_finite() && linking_length_kpc > 0.0) {
        bail!("fof: linking length {linking_length_kpc} kpc is not a finite number > 0");
    }
    let n = positions.len();
    if u32::try_from(n).is_err() {
        bail!("fof: {n} particles is more than the k-d tree holds (2^32 - 1)");
    }
    let tree = ImmutableKdTree::<f64, 3>::new_from_slice(positions)
        .map_err(|e| anyhow!("fof: cannot build a k-d tree of {n} points: {e:?}"))?;
    let parent: Vec<AtomicUsize> = (0..n).map(AtomicUsize::new).collect();
    let r2 = linking_length_kpc * linking_length_kpc;
    // Queries in Morton order: neighbouring queries touch the same tree leaves (cache).
    morton_order(positions).par_iter().for_each(|&i| {
        let i = i as usize;
        tree.query(&positions[i])
            .within::<SquaredEuclidean<f64>>(r2)
            .unsorted()
            .visit(|r| {
                let j = r.item as usize;
                // Each pair is met from both ends: link it once.
                if j > i {
                    uf_union(&parent, i, j);
                }
            });
    });
    // Each root is the smallest index of its group.
    let root: Vec<usize> = (0..n).map(|i| uf_find(&parent, i)).collect();
    drop(parent);
    let mut size = vec![0usize; n];
    for &r in &root {
        size[r] += 1;
    }
    let min_size = min_size.max(1);
    let mut roots: Vec<usize> = (0..n)
        .filter(|&i| root[i] == i && size[i] >= min_size)
        .collect();
    roots.sort_by(|a, b| size[*b].cmp(&size[*a]).then(a.cmp(b)));
    // Slot of each kept group, by root; usize::MAX for the pooled field.
    let mut slot = vec![usize::MAX; n];
    for (k, &r) in roots.iter().enumerate() {
        slot[r] = k;
    }
    let mut members: Vec<Vec<usize>> = roots.iter().map(|&r| Vec::with_capacity(size[r])).collect();
    let mut field = Vec::new();
    let mut pooled_groups = 0usize;
    for (i, &r) in root.iter().enumerate() {
        match slot[r] {
            usize::MAX => {
                if r == i {
                    pooled_groups += 1;
                }
                field.push(i);
            }
            k => members[k].push(i),
        }
    }
    let mut out: Vec<Cluster> = members
        .into_iter()
        .enumerate()
        .map(|(k, m)| Cluster {
            label: format!("fof group {k} ({} particles)", m.len()),
            members: m,
            ghosts: Vec::new(),
            core: None,
        })
        .collect();
    if !field.is_empty() {
        out.push(Cluster {
            label: format!(
                "fof field (pooled small groups: {pooled_groups} groups under {min_size} \
                 particles, {} particles)",
                field.len()
            ),
            members: field,
            ghosts: Vec::new(),
            core: None,
        });
    }
    Ok(out)
}

/// One population per distinct label (ascending label order); labels with fewer than min_size particles pooled into one population listed last.
///
/// Labelled "field NAME=VALUE"; the pooled population "field NAME (pooled: ...)". Empty input
/// gives no population.
pub fn decompose_labels(labels: &[i64], field_name: &str, min_size: usize) -> Vec<Cluster> {
    let mut by_label: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_label.entry(l).or_default().push(i);
    }
    let mut out = Vec::new();
    let mut pooled = Vec::new();
    let mut pooled_labels = 0usize;
    for (l, members) in by_label {
        if members.len() >= min_size {
            out.push(Cluster {
                label: format!("field {field_name}={l}"),
                members,
                ghosts: Vec::new(),
                core: None,
            });
        } else {
            pooled_labels += 1;
            pooled.extend(members);
        }
    }
    if !pooled.is_empty() {
        pooled.sort_unstable();
        out.push(Cluster {
            label: format!(
                "field {field_name} (pooled: {pooled_labels} values with fewer than {min_size} \
                 particles, {} particles)",
                pooled.len()
            ),
            members: pooled,
            ghosts: Vec::new(),
            core: None,
        });
    }
    out
}

/// Label of each star (`ids`, in star order) from a field given as (`field_ids`, `field_values`), joined by particle ID; `source` names where the field came from, for errors.
///
/// Rows of the field whose ID is not a star (e.g. wind particles) are ignored; a star without
/// a row, an ID listed twice with different values, or lists of different lengths are errors.
pub fn labels_by_id(
    ids: &[u64],
    field_ids: &[u64],
    field_values: &[i64],
    source: &str,
) -> Result<Vec<i64>> {
    if field_ids.len() != field_values.len() {
        bail!(
            "{source}: {} particle IDs but {} values (expected one value per ID)",
            field_ids.len(),
            field_values.len()
        );
    }
    let mut by_id: HashMap<u64, i64> = HashMap::with_capacity(field_ids.len());
    for (&id, &v) in field_ids.iter().zip(field_values) {
        if let Some(old) = by_id.insert(id, v) {
            if old != v {
                bail!("{source}: particle ID {id} is listed twice, with values {old} and {v}");
            }
        }
    }
    let mut missing = ids.iter().filter(|id| !by_id.contains_key(id));
    if let Some(first) = missing.next() {
        bail!(
            "{source}: no value for star particle ID {first} ({} of {} stars lack one; expected \
             every star's ParticleID to be listed)",
            1 + missing.count(),
            ids.len()
        );
    }
    Ok(ids.iter().map(|id| by_id[id]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};

    /// Gaussian blob (σ = 2 kpc) with a tenth of the points far out (uniform in ±50 kpc).
    fn galaxy(n: usize, seed: u64) -> Vec<[f64; 3]> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                if i % 10 == 0 {
                    [0, 1, 2].map(|_| rng.random_range(-50.0..50.0))
                } else {
                    [0, 1, 2].map(|_| {
                        let z: f64 = StandardNormal.sample(&mut rng);
                        2.0 * z
                    })
                }
            })
            .collect()
    }

    fn brute_distance2(b: &CellBox, x: &[f64; 3]) -> f64 {
        let mut s = 0.0;
        for (d, &xd) in x.iter().enumerate() {
            let g = if xd < b.lo[d] {
                b.lo[d] - xd
            } else if xd > b.hi[d] {
                xd - b.hi[d]
            } else {
                0.0
            };
            s += g * g;
        }
        s
    }

    #[test]
    fn cluster_method_parses_prints_and_serialises() {
        for (s, m) in [
            ("cells", ClusterMethod::Cells),
            ("fof", ClusterMethod::Fof),
            ("field:SubhaloID", ClusterMethod::Field("SubhaloID".into())),
        ] {
            assert_eq!(s.parse::<ClusterMethod>().unwrap(), m);
            assert_eq!(m.to_string(), s);
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<ClusterMethod>(&json).unwrap(), m);
        }
        assert_eq!(ClusterMethod::default(), ClusterMethod::Cells);
        for bad in ["kd", "Cells", "field:", "field: ", ""] {
            let e = bad.parse::<ClusterMethod>().unwrap_err().to_string();
            assert!(e.contains("`cells`, `fof` or `field:NAME`"), "{bad}: {e}");
        }
        let e = serde_json::from_str::<ClusterMethod>("\"voronoi\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("voronoi") && e.contains("field:NAME"), "{e}");
    }

    #[test]
    fn cell_box_contains_and_distance() {
        let b = CellBox {
            lo: [0.0, f64::NEG_INFINITY, -1.0],
            hi: [1.0, 2.0, f64::INFINITY],
        };
        assert!(b.contains(&[0.0, -1e300, 5.0]));
        assert!(!b.contains(&[1.0, 0.0, 0.0]), "upper face is outside");
        assert!(!b.contains(&[0.5, 2.0, 0.0]));
        assert_eq!(b.distance(&[0.5, 0.0, 0.0]), 0.0);
        assert_eq!(b.distance(&[1.0, 0.0, 0.0]), 0.0);
        assert!((b.distance(&[4.0, 6.0, -1.0]) - 5.0).abs() < 1e-12);
        assert!((b.distance(&[-3.0, 0.0, -5.0]) - 5.0).abs() < 1e-12);
        let far = CellBox {
            lo: [4.0, 6.0, f64::NEG_INFINITY],
            hi: [f64::INFINITY; 3],
        };
        assert!((b.box_distance2(&far) - 25.0).abs() < 1e-12);
        assert_eq!(b.box_distance2(&CellBox::EVERYWHERE), 0.0);
    }

    #[test]
    fn cells_tile_space_and_own_exactly_their_particles() {
        let pos = galaxy(5000, 1);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let probes: Vec<[f64; 3]> = (0..20_000)
            .map(|i| {
                let w = if i % 2 == 0 { 10.0 } else { 1e4 };
                [0, 1, 2].map(|_| rng.random_range(-w..w))
            })
            .collect();
        for n_cells in [1, 2, 3, 7, 8, 16, 37, 64] {
            let cells = decompose_cells(&pos, n_cells, 0.5).unwrap();
            assert_eq!(cells.len(), n_cells);
            let mut owner = vec![usize::MAX; pos.len()];
            for (k, c) in cells.iter().enumerate() {
                assert_eq!(c.label, format!("cell {k}"));
                assert!(
                    c.members.windows(2).all(|w| w[0] < w[1]),
                    "members ascending"
                );
                for &i in &c.members {
                    assert_eq!(owner[i], usize::MAX, "particle {i} in two cells");
                    owner[i] = k;
                }
            }
            for (i, p) in pos.iter().enumerate() {
                let inside: Vec<usize> = (0..n_cells)
                    .filter(|&k| cells[k].core.unwrap().contains(p))
                    .collect();
                assert_eq!(inside, vec![owner[i]], "particle {i} at {p:?}");
            }
            for p in &probes {
                let inside = cells.iter().filter(|c| c.core.unwrap().contains(p)).count();
                assert_eq!(
                    inside, 1,
                    "probe {p:?} lies in {inside} cells (n = {n_cells})"
                );
            }
        }
    }

    #[test]
    fn cells_are_balanced_within_one() {
        for (n, seed) in [(4096, 2), (5000, 3), (12_345, 4)] {
            let pos = galaxy(n, seed);
            for n_cells in [2, 3, 5, 8, 13, 32, 100, 128] {
                let cells = decompose_cells(&pos, n_cells, 0.0).unwrap();
                let (lo, hi) = (n / n_cells, n.div_ceil(n_cells));
                for c in &cells {
                    let m = c.members.len();
                    assert!(
                        (lo..=hi).contains(&m),
                        "N = {n}, {n_cells} cells: {} has {m} particles, expected {lo}..={hi}",
                        c.label
                    );
                    assert!(c.ghosts.is_empty(), "margin 0 gives no ghosts");
                }
            }
        }
    }

    #[test]
    fn power_of_two_cells_split_at_the_median_of_the_widest_axis() {
        // An elongated cloud along y: the first cut is across y at the median.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let pos: Vec<[f64; 3]> = (0..1001)
            .map(|_| {
                [
                    rng.random_range(-1.0..1.0),
                    rng.random_range(-10.0..10.0),
                    rng.random_range(-2.0..2.0),
                ]
            })
            .collect();
        let cells = decompose_cells(&pos, 2, 0.0).unwrap();
        let cut = cells[0].core.unwrap().hi[1];
        assert_eq!(cells[1].core.unwrap().lo[1], cut);
        assert_eq!(cells[0].core.unwrap().hi[0], f64::INFINITY);
        let mut ys: Vec<f64> = pos.iter().map(|p| p[1]).collect();
        ys.sort_by(f64::total_cmp);
        assert_eq!(cells[0].members.len(), 500);
        assert!(
            ys[499] < cut && cut < ys[500],
            "cut {cut} between the two middle values"
        );
    }

    /// Checks the ghost rule of every cell by brute force: ghosts are exactly the outside
    /// particles within h, h the g-th smallest distance, g = round(margin × members); with
    /// `continuous` positions (no ties in distance) at most 1% + 2 more than g.
    fn check_ghosts(pos: &[[f64; 3]], cells: &[Cluster], margin: f64, continuous: bool) {
        for c in cells {
            let core = c.core.unwrap();
            let mut dist: Vec<(f64, usize)> = (0..pos.len())
                .filter(|&i| !core.contains(&pos[i]))
                .map(|i| (brute_distance2(&core, &pos[i]), i))
                .collect();
            dist.sort_by(|a, b| a.0.total_cmp(&b.0));
            let g = ((margin * c.members.len() as f64).round() as usize).min(dist.len());
            if g == 0 {
                assert!(c.ghosts.is_empty());
                continue;
            }
            let h2 = dist[g - 1].0;
            let mut want: Vec<usize> = dist.iter().filter(|x| x.0 <= h2).map(|x| x.1).collect();
            want.sort_unstable();
            assert_eq!(
                c.ghosts, want,
                "{}: ghosts differ from the brute-force rule",
                c.label
            );
            for &i in &c.ghosts {
                assert!(
                    !core.contains(&pos[i]),
                    "{}: ghost {i} inside the core",
                    c.label
                );
                assert!(core.distance(&pos[i]) <= h2.sqrt() + 1e-12);
            }
            let extra = c.ghosts.len() - g;
            assert!(
                !continuous || extra <= 2 + g / 100,
                "{}: {} ghosts for g = {g}",
                c.label,
                c.ghosts.len()
            );
            assert!((c.ghost_radius(pos) - h2.sqrt()).abs() < 1e-9);
        }
    }

    #[test]
    fn ghosts_follow_the_margin_rule() {
        let pos = galaxy(6000, 6);
        for (n_cells, margin) in [
            (2, 0.5),
            (7, 0.5),
            (16, 0.5),
            (33, 0.25),
            (8, 3.0),
            (5, 20.0),
        ] {
            let cells = decompose_cells(&pos, n_cells, margin).unwrap();
            check_ghosts(&pos, &cells, margin, true);
            let total: usize = cells.iter().map(|c| c.ghosts.len()).sum();
            let want: f64 = cells
                .iter()
                .map(|c| {
                    (margin * c.members.len() as f64).min((pos.len() - c.members.len()) as f64)
                })
                .sum();
            assert!(
                (total as f64 - want).abs() <= 0.01 * want + n_cells as f64,
                "{n_cells} cells, margin {margin}: {total} ghosts, want ≈ {want}"
            );
        }
        // One cell: nothing outside, no ghosts.
        let one = decompose_cells(&pos, 1, 0.5).unwrap();
        assert!(one[0].ghosts.is_empty());
        assert_eq!(one[0].core, Some(CellBox::EVERYWHERE));
    }

    #[test]
    fn tied_coordinates_still_tile_and_follow_the_rules() {
        // Integer grid coordinates: many particles share every cut coordinate.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let pos: Vec<[f64; 3]> = (0..3000)
            .map(|_| [0, 1, 2].map(|_| rng.random_range(0..6) as f64))
            .collect();
        for n_cells in [2, 5, 16] {
            let cells = decompose_cells(&pos, n_cells, 0.5).unwrap();
            assert_eq!(cells.len(), n_cells);
            for (i, p) in pos.iter().enumerate() {
                let owners: Vec<&Cluster> = cells
                    .iter()
                    .filter(|c| c.core.unwrap().contains(p))
                    .collect();
                assert_eq!(owners.len(), 1);
                assert!(owners[0].members.binary_search(&i).is_ok());
            }
            assert_eq!(
                cells.iter().map(|c| c.members.len()).sum::<usize>(),
                pos.len()
            );
            check_ghosts(&pos, &cells, 0.5, false);
        }
    }

    #[test]
    fn cells_and_fof_are_deterministic_across_thread_counts() {
        let pos = galaxy(250_000, 8);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    (
                        decompose_cells(&pos, 24, 0.5).unwrap(),
                        decompose_fof(&pos, 0.08, 10).unwrap(),
                    )
                })
        };
        let (c1, f1) = run(1);
        let (c4, f4) = run(4);
        assert_eq!(c1, c4);
        assert_eq!(f1, f4);
        let (c1b, _) = run(1);
        for (a, b) in c1.iter().zip(&c1b) {
            assert_eq!(a.training(), b.training());
        }
        assert!(f1.len() > 2, "fof found {} populations", f1.len());
    }

    #[test]
    fn training_rows_are_members_then_ghosts() {
        let c = Cluster {
            label: "cell 0".into(),
            members: vec![1, 4, 9],
            ghosts: vec![0, 2],
            core: None,
        };
        assert_eq!(c.training(), vec![1, 4, 9, 0, 2]);
    }

    #[test]
    fn bad_inputs_are_refused_with_clear_errors() {
        let pos = galaxy(100, 10);
        let err = |r: Result<Vec<Cluster>>| r.unwrap_err().to_string();
        assert!(err(decompose_cells(&pos, 0, 0.5)).contains("at least 1"));
        assert!(err(decompose_cells(&pos, 101, 0.5)).contains("cannot make 101 cells from 100"));
        assert!(err(decompose_cells(&[], 1, 0.5)).contains("no particles"));
        for m in [-0.1, f64::NAN, f64::INFINITY] {
            assert!(err(decompose_cells(&pos, 4, m)).contains("margin"), "{m}");
        }
        let mut bad = pos.clone();
        bad[17][1] = f64::NAN;
        assert!(err(decompose_cells(&bad, 4, 0.5)).contains("particle 17"));
        assert!(err(decompose_fof(&bad, 0.1, 5)).contains("particle 17"));
        bad[17][1] = f64::NEG_INFINITY;
        assert!(err(decompose_cells(&bad, 4, 0.5)).contains("non-finite"));
        for ll in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                err(decompose_fof(&pos, ll, 5)).contains("linking length"),
                "{ll}"
            );
        }
        assert!(err(decompose_fof(&[], 0.1, 5)).contains("no particles"));
        let same = vec![[1.0, 2.0, 3.0]; 10];
        assert!(err(decompose_cells(&same, 2, 0.5)).contains("same position"));
        // Exactly N cells of N distinct particles works: one particle each.
        let cells = decompose_cells(&pos, 100, 0.5).unwrap();
        assert!(cells.iter().all(|c| c.members.len() == 1));
    }

    /// Plummer sphere of `n` points, scale `b`, truncated at 2b (so that FoF keeps it whole).
    fn plummer(n: usize, b: f64, center: [f64; 3], rng: &mut Xoshiro256PlusPlus) -> Vec<[f64; 3]> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let u: f64 = rng.random_range(1e-9..1.0);
            let r = b / (u.powf(-2.0 / 3.0) - 1.0).sqrt();
            if r > 2.0 * b {
                continue;
            }
            let cos_t: f64 = rng.random_range(-1.0..1.0);
            let phi: f64 = rng.random_range(0.0..std::f64::consts::TAU);
            let s = (1.0 - cos_t * cos_t).sqrt();
            out.push([
                center[0] + r * s * phi.cos(),
                center[1] + r * s * phi.sin(),
                center[2] + r * cos_t,
            ]);
        }
        out
    }

    #[test]
    fn fof_finds_two_blobs_and_pools_the_background() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        let (ca, cb) = ([-4.0, 0.0, 0.0], [4.0, 1.0, -1.0]);
        let a = plummer(2000, 0.5, ca, &mut rng);
        let b = plummer(3000, 0.5, cb, &mut rng);
        // Sparse background in a 20 kpc cube, kept 2 kpc away from the blob centres.
        let far =
            |p: &[f64; 3], c: [f64; 3]| (0..3).map(|d| (p[d] - c[d]).powi(2)).sum::<f64>() > 4.0;
        let mut bg = Vec::new();
        while bg.len() < 600 {
            let p = [0, 1, 2].map(|_| rng.random_range(-10.0..10.0));
            if far(&p, ca) && far(&p, cb) {
                bg.push(p);
            }
        }
        // Interleave so that groups are not index ranges: a, b, bg cycling.
        let mut pos = Vec::new();
        let mut kind = Vec::new();
        let (mut ia, mut ib, mut ig) = (a.into_iter(), b.into_iter(), bg.into_iter());
        loop {
            let mut any = false;
            for (k, it) in [(0, &mut ia), (1, &mut ib), (2, &mut ig)] {
                if let Some(p) = it.next() {
                    pos.push(p);
                    kind.push(k);
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        let idx_of =
            |k: usize| -> Vec<usize> { (0..pos.len()).filter(|&i| kind[i] == k).collect() };
        let groups = decompose_fof(&pos, 0.4, 20).unwrap();
        assert_eq!(
            groups.len(),
            3,
            "{:?}",
            groups.iter().map(|g| &g.label).collect::<Vec<_>>()
        );
        assert_eq!(groups[0].members, idx_of(1), "largest group is blob b");
        assert_eq!(groups[0].label, "fof group 0 (3000 particles)");
        assert_eq!(groups[1].members, idx_of(0), "second group is blob a");
        assert_eq!(groups[2].members, idx_of(2), "background pooled");
        assert!(groups[2]
            .label
            .starts_with("fof field (pooled small groups"));
        assert!(groups
            .iter()
            .all(|g| g.ghosts.is_empty() && g.core.is_none()));
        // min_size 1: every particle in a group, no field; blobs still first.
        let all = decompose_fof(&pos, 0.4, 1).unwrap();
        assert!(all.iter().all(|g| g.label.starts_with("fof group")));
        assert_eq!(all[0].members, idx_of(1));
        assert_eq!(
            all.iter().map(|g| g.members.len()).sum::<usize>(),
            pos.len()
        );
    }

    /// FoF by brute force: O(N²) pairs, breadth-first labelling.
    fn brute_fof(pos: &[[f64; 3]], ll: f64) -> Vec<Vec<usize>> {
        let n = pos.len();
        let mut label = vec![usize::MAX; n];
        let mut groups = Vec::new();
        for s in 0..n {
            if label[s] != usize::MAX {
                continue;
            }
            let g = groups.len();
            label[s] = g;
            let mut queue = vec![s];
            let mut members = vec![];
            while let Some(i) = queue.pop() {
                members.push(i);
                for j in 0..n {
                    let d2: f64 = (0..3).map(|d| (pos[i][d] - pos[j][d]).powi(2)).sum();
                    if label[j] == usize::MAX && d2 <= ll * ll {
                        label[j] = g;
                        queue.push(j);
                    }
                }
            }
            members.sort_unstable();
            groups.push(members);
        }
        groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
        groups
    }

    #[test]
    fn fof_equals_brute_force_on_random_points() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(12);
        let pos: Vec<[f64; 3]> = (0..2000)
            .map(|_| [0, 1, 2].map(|_| rng.random_range(0.0..10.0)))
            .collect();
        // Mean separation 0.79 kpc; 0.55 gives many small groups and a few large ones.
        let ll = 0.55;
        let want = brute_fof(&pos, ll);
        let got: Vec<Vec<usize>> = decompose_fof(&pos, ll, 1)
            .unwrap()
            .into_iter()
            .map(|c| c.members)
            .collect();
        assert!(
            want.len() > 50 && want[0].len() > 10,
            "{} groups, largest {}",
            want.len(),
            want[0].len()
        );
        assert_eq!(got, want);
        // With pooling: the groups of >= 5 first, the rest pooled last.
        let pooled = decompose_fof(&pos, ll, 5).unwrap();
        let big: Vec<&Vec<usize>> = want.iter().filter(|g| g.len() >= 5).collect();
        assert_eq!(pooled.len(), big.len() + 1);
        for (c, g) in pooled.iter().zip(&big) {
            assert_eq!(&c.members, *g);
        }
        let mut rest: Vec<usize> = want
            .iter()
            .filter(|g| g.len() < 5)
            .flatten()
            .copied()
            .collect();
        rest.sort_unstable();
        assert_eq!(pooled.last().unwrap().members, rest);
    }

    #[test]
    fn labels_group_sort_and_pool() {
        let labels = [17, -1, 3, 17, 3, 17, 5, 3, 42, 17];
        let pops = decompose_labels(&labels, "Group", 3);
        let names: Vec<&str> = pops.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(names[..2], ["field Group=3", "field Group=17"]);
        assert_eq!(pops[0].members, vec![2, 4, 7]);
        assert_eq!(pops[1].members, vec![0, 3, 5, 9]);
        assert_eq!(pops[2].members, vec![1, 6, 8], "labels -1, 5 and 42 pooled");
        assert!(
            pops[2].label.contains("pooled: 3 values"),
            "{}",
            pops[2].label
        );
        assert!(pops.iter().all(|c| c.ghosts.is_empty() && c.core.is_none()));
        // min_size 0 or 1: no pooling; min_size above every count: one pooled population.
        assert_eq!(decompose_labels(&labels, "Group", 1).len(), 5);
        assert_eq!(decompose_labels(&labels, "Group", 0).len(), 5);
        let one = decompose_labels(&labels, "Group", 100);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].members, (0..10).collect::<Vec<_>>());
        assert!(decompose_labels(&[], "Group", 3).is_empty());
    }

    #[test]
    fn labels_join_by_particle_id() {
        let ids = [30, 10, 20];
        let field_ids = [10, 99, 20, 30];
        let values = [1, 7, 2, 3];
        assert_eq!(
            labels_by_id(&ids, &field_ids, &values, "snap.hdf5 PartType4/Group").unwrap(),
            vec![3, 1, 2]
        );
        let e = labels_by_id(&[30, 11, 12], &field_ids, &values, "side.h5")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("side.h5") && e.contains("ID 11") && e.contains("2 of 3"),
            "{e}"
        );
        let e = labels_by_id(&ids, &field_ids, &values[..3], "side.h5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("4 particle IDs but 3 values"), "{e}");
        let e = labels_by_id(&ids, &[10, 10, 20, 30], &values, "side.h5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ID 10 is listed twice"), "{e}");
        // The same value twice is fine.
        assert!(labels_by_id(&ids, &[10, 10, 20, 30], &[1, 1, 2, 3], "s").is_ok());
    }

    /// Timings on 1M and 10M points (run with `--ignored --nocapture`; tests build optimised).
    #[test]
    #[ignore]
    fn timing_one_and_ten_million() {
        for n in [1_000_000, 10_000_000] {
            let pos = galaxy(n, 13);
            for n_cells in [64, 1000] {
                let t = std::time::Instant::now();
                let cells = decompose_cells(&pos, n_cells, 0.5).unwrap();
                let ghosts: usize = cells.iter().map(|c| c.ghosts.len()).sum();
                eprintln!(
                    "decompose_cells: {n} points, {n_cells} cells, margin 0.5: {:.2} s ({ghosts} ghosts)",
                    t.elapsed().as_secs_f64()
                );
            }
            for ll in [0.02, 0.05] {
                let t = std::time::Instant::now();
                let groups = decompose_fof(&pos, ll, 20).unwrap();
                eprintln!(
                    "decompose_fof: {n} points, ll {ll} kpc: {:.2} s ({} populations, first {})",
                    t.elapsed().as_secs_f64(),
                    groups.len(),
                    groups[0].label
                );
            }
        }
    }
}
