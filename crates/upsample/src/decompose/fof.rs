//! Friends of friends
//!
//! Radius queries on a kiddo k-d tree, issued in parallel in Morton order, join friends in a
//! lock-free union-find whose roots are the smallest index of each group, so groups do not
//! depend on thread count or order.
//!

use anyhow::{anyhow, bail, Result};
use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use super::{check_positions, Cluster};

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
pub(crate) fn decompose_fof(
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
            component: None,
            own_frame: false,
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
            component: None,
            own_frame: false,
        });
    }
    Ok(out)
}
