//! Cells
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
//! Ghost margin rule
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

use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::ops::Range;

use super::{check_positions, CellBox, Cluster};

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
pub(crate) fn decompose_cells(
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
                component: None,
                own_frame: false,
            }
        })
        .collect();
    Ok(clusters)
}
