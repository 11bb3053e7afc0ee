//! Phase-space density contrast groups
//!
//! Cold streams and compact satellites are where the phase-space density f(x, v) stands far
//! above the smooth galaxy's at the same place. Three steps, O(N log N):
//!
//! 1. **Local density.** Positions and velocities are divided by global robust scales (l_x, l_v:
//!    1.4826 × the median absolute deviation about the median, averaged over the three axes, kpc
//!    and km/s), and the density in that 6D space is the k-nearest-neighbour estimate
//!    f̂ = k / (V₆ d_k⁶), V₆ = π³/6 the unit 6-ball, d_k the distance to the k-th other particle
//!    (kiddo k-d tree, k = [`PhaseGroupSettings::neighbours`]).
//! 2. **Smooth background.** A model that cannot hold substructure: spherical shells about the
//!    origin (the galaxy centre), log-spaced in r and merged until each holds at least
//!    [`MIN_SHELL_COUNT`] particles (or N/20 if fewer). Per shell: the number density n and,
//!    in spherical components (v_r, v_θ, v_φ), the median and the root-mean-square about it.
//!    Between shell nodes (each shell's median radius) ln n, the medians and ln σ are
//!    interpolated linearly in ln r (held constant beyond the first and last node). The
//!    background density is f_bg = n(r) ∏ₖ N(vₖ; μₖ(r), σₖ(r)) (a Gaussian velocity ellipsoid
//!    aligned with the spherical axes, allowing rotation and radial anisotropy). A cold stream
//!    or a satellite shifts a shell's medians little and its densities by its share of the shell.
//!    The contrast of particle i is f̂ᵢ over the mean of f_bg over i and its k neighbours: the
//!    k-NN estimate averages the density over its ball, and so must the background, else a
//!    particle in a velocity tail, whose ball reaches into the denser core of the distribution,
//!    stands far above the Gaussian at its own point (measured: contrast up to 1 600 on a smooth
//!    Hernquist sphere with Gaussian velocities against the point value; below 10 against the
//!    ball's mean).
//! 3. **Groups.** Particles whose contrast f̂ / f_bg is at least
//!    [`PhaseGroupSettings::contrast`] are outliers. Two outliers are linked when one is among
//!    the other's k nearest neighbours (the same 6D neighbour lists); connected outliers form a
//!    group (union-find), kept when it has at least `min_members` members and at most
//!    `max_fraction` of all particles (a "group" holding a large part of the galaxy is the
//!    galaxy, e.g. a disc, which a spherical background calls cold: it is left to the cells).
//!
//! Why contrast and not a 6D friends-of-friends with a fixed linking length: a fixed 6D
//! linking length is a fixed phase-space density threshold, and a cuspy galaxy's centre exceeds
//! any threshold low enough to take a stream's outer tube (Hernquist: f ∝ r^(−5/2) inside the
//! scale radius). Estimated from the analytic densities: a threshold at 1% of the peak of the
//! stream of galaxy (c) (what 90% completeness of a Gaussian tube needs) is exceeded by the
//! ~3 000 particles inside 0.7 kpc of the spheroid (a) (50 000 particles). Against the shells'
//! background, measured: no particle of (a) has a contrast above 2.0, the halo of (c) at most
//! 67 (99.9% below 3.2), while 99% of its stream stand above 90 and 99% of its satellite above
//! 550 (`cargo run -p galaxies --example phase_groups`; docs/ACCURACY.md). The k-NN noise alone
//! (f̂ / f = k / Gamma(k, 1)) exceeds ×3 for about 1 particle in 10⁴ at k = 32.
//!
//! Limits: the background is spherical, so a thin disc is "cold" against its shells (on the
//! disc + bulge galaxy (b), 50 000 particles: disc contrast median 3.8, 99.9% 35; 139 particles
//! above 30 in 30 sets of fewer than 200, so no group). A disc colder or thinner than (b) could
//! come out as groups: a set holding more than `max_fraction` of the particles is left to the
//! cells; smaller ones would get flows of their own. An axisymmetric background (shells in R
//! and z) would remove this; not built.

use anyhow::{anyhow, bail, Result};
use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rayon::prelude::*;
use std::num::NonZeroUsize;

use super::{Cluster, SmoothSplit};
use crate::fidelity::spherical_velocity;

/// Fewest particles a background shell holds (shells are merged outward until they do).
pub const MIN_SHELL_COUNT: usize = 200;

/// Fine log-spaced shells before merging.
const FINE_SHELLS: usize = 64;

/// Knobs of the group finder.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseGroupSettings {
    /// Neighbours k of the 6D density estimate and of the linking (>= 4).
    pub neighbours: usize,
    /// Least contrast f̂ / f_bg (dimensionless) of a particle that can belong to a group.
    pub contrast: f64,
    /// Fewest members of a kept group.
    pub min_members: usize,
    /// Largest fraction of all particles a kept group may hold (0, 1].
    pub max_fraction: f64,
}

impl Default for PhaseGroupSettings {
    /// k = 32, contrast 30, at least 100 members, at most 25% of the particles.
    fn default() -> Self {
        Self {
            neighbours: 32,
            contrast: 30.0,
            min_members: 100,
            max_fraction: 0.25,
        }
    }
}

/// What the group finder found.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseGroups {
    /// Members (ascending particle indices) of each kept group, largest group first.
    pub groups: Vec<Vec<usize>>,
    /// Contrast f̂ / f_bg of every particle (dimensionless).
    pub contrast: Vec<f64>,
    /// Particles at or above the contrast threshold.
    pub outliers: usize,
    /// Connected outlier sets below `min_members` (left to the smooth rest).
    pub small_groups: usize,
    /// Sizes of the connected outlier sets dropped for holding more than `max_fraction`.
    pub too_large: Vec<usize>,
    /// Position scale l_x of the 6D metric, kpc.
    pub position_scale: f64,
    /// Velocity scale l_v of the 6D metric, km/s.
    pub velocity_scale: f64,
}

/// 1.4826 × the median absolute deviation about the median, averaged over the three axes.
fn robust_scale(points: &[[f64; 3]]) -> f64 {
    let mut total = 0.0;
    for d in 0..3 {
        let mut col: Vec<f64> = points.iter().map(|p| p[d]).collect();
        let med = median(&mut col);
        let mut dev: Vec<f64> = col.iter().map(|x| (x - med).abs()).collect();
        total += 1.4826 * median(&mut dev);
    }
    total / 3.0
}

/// Median of `xs` (reordered); NaN for an empty slice.
fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let m = xs.len() / 2;
    let (_, mid, _) = xs.select_nth_unstable_by(m, f64::total_cmp);
    *mid
}

/// One background node: ln r, ln n (particles per kpc³), velocity medians and ln σ (km/s).
#[derive(Debug, Clone, Copy)]
struct ShellNode {
    ln_r: f64,
    ln_n: f64,
    mean: [f64; 3],
    ln_sigma: [f64; 3],
}

/// The spherical background of the module docs.
struct Background {
    nodes: Vec<ShellNode>,
}

impl Background {
    /// Shells of `radii` (kpc) with spherical velocities `vs` (km/s).
    fn fit(radii: &[f64], vs: &[[f64; 3]]) -> Result<Background> {
        let n = radii.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_unstable_by(|&a, &b| radii[a].total_cmp(&radii[b]));
        let min_count = MIN_SHELL_COUNT.min((n / 20).max(1));
        // Log-spaced fine edges from the smallest positive radius to the largest.
        let r_pos_min = radii
            .iter()
            .copied()
            .filter(|&r| r > 0.0)
            .fold(f64::INFINITY, f64::min);
        let r_max = radii.iter().copied().fold(0.0, f64::max);
        let mut fine_ends: Vec<usize> = Vec::with_capacity(FINE_SHELLS);
        if r_pos_min.is_finite() && r_max > r_pos_min {
            let step = (r_max / r_pos_min).ln() / FINE_SHELLS as f64;
            let mut k = 0;
            for s in 1..FINE_SHELLS {
                let edge = r_pos_min * (step * s as f64).exp();
                while k < n && radii[order[k]] < edge {
                    k += 1;
                }
                fine_ends.push(k);
            }
        }
        fine_ends.push(n);
        // Merge fine shells until each holds min_count; a short last one joins the one before.
        let mut ends: Vec<usize> = Vec::new();
        let mut start = 0;
        for &e in &fine_ends {
            if e - start >= min_count {
                ends.push(e);
                start = e;
            }
        }
        match ends.last_mut() {
            Some(last) if *last != n => *last = n,
            None => ends.push(n),
            _ => {}
        }
        let mut nodes = Vec::with_capacity(ends.len());
        let mut start = 0;
        let mut r_lo = 0.0_f64;
        for (s, &end) in ends.iter().enumerate() {
            let idx = &order[start..end];
            let r_hi = if s + 1 == ends.len() {
                radii[order[end - 1]]
            } else {
                // Halfway between the last particle in and the first one out.
                0.5 * (radii[order[end - 1]] + radii[order[end]])
            };
            let volume = 4.0 / 3.0 * std::f64::consts::PI * (r_hi.powi(3) - r_lo.powi(3));
            let mut rs: Vec<f64> = idx.iter().map(|&i| radii[i]).collect();
            let r_node = median(&mut rs).max(1e-300);
            let mut mean = [0.0; 3];
            let mut ln_sigma = [0.0; 3];
            for k in 0..3 {
                let mut col: Vec<f64> = idx.iter().map(|&i| vs[i][k]).collect();
                let med = median(&mut col);
                let ms = col.iter().map(|x| (x - med).powi(2)).sum::<f64>() / col.len() as f64;
                mean[k] = med;
                ln_sigma[k] = ms.sqrt().max(1e-6).ln();
            }
            if volume.is_nan() || volume <= 0.0 {
                bail!(
                    "phase groups: background shell {s} ({} particles at r = {r_lo}..{r_hi} kpc) \
                     has no volume (too many particles at the same radius)",
                    idx.len()
                );
            }
            nodes.push(ShellNode {
                ln_r: r_node.ln(),
                ln_n: (idx.len() as f64 / volume).ln(),
                mean,
                ln_sigma,
            });
            start = end;
            r_lo = r_hi;
        }
        Ok(Background { nodes })
    }

    /// ln f_bg (particles per kpc³ per (km/s)³) at radius `r` with spherical velocity `u`.
    fn ln_density(&self, r: f64, u: &[f64; 3]) -> f64 {
        let ln_r = r.max(1e-300).ln();
        let nodes = &self.nodes;
        let node = match nodes.partition_point(|nd| nd.ln_r <= ln_r) {
            0 => nodes[0],
            k if k == nodes.len() => nodes[k - 1],
            k => {
                let (a, b) = (&nodes[k - 1], &nodes[k]);
                let t = if b.ln_r > a.ln_r {
                    (ln_r - a.ln_r) / (b.ln_r - a.ln_r)
                } else {
                    0.0
                };
                let lerp = |p: f64, q: f64| p + t * (q - p);
                ShellNode {
                    ln_r,
                    ln_n: lerp(a.ln_n, b.ln_n),
                    mean: std::array::from_fn(|i| lerp(a.mean[i], b.mean[i])),
                    ln_sigma: std::array::from_fn(|i| lerp(a.ln_sigma[i], b.ln_sigma[i])),
                }
            }
        };
        let ln_2pi = (2.0 * std::f64::consts::PI).ln();
        let mut ln_f = node.ln_n;
        for ((ui, mi), ls) in u.iter().zip(&node.mean).zip(&node.ln_sigma) {
            let z = (ui - mi) / ls.exp();
            ln_f -= 0.5 * z * z + ls + 0.5 * ln_2pi;
        }
        ln_f
    }
}

/// Root of `x` with path halving (sequential union-find, links to smaller indices).
fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Groups of particles whose 6D phase-space density stands at least `settings.contrast` above
/// a smooth spherical background (module docs); positions kpc, velocities km/s, galaxy frame
/// (origin at the centre).
pub fn find_phase_groups(
    positions: &[[f64; 3]],
    velocities: &[[f64; 3]],
    settings: &PhaseGroupSettings,
) -> Result<PhaseGroups> {
    let n = positions.len();
    if velocities.len() != n {
        bail!(
            "phase groups: {n} positions but {} velocities (one each expected)",
            velocities.len()
        );
    }
    super::check_positions(positions, "phase groups")?;
    if let Some((i, v)) = velocities
        .iter()
        .enumerate()
        .find(|(_, v)| !v.iter().all(|x| x.is_finite()))
    {
        bail!("phase groups: particle {i} has a non-finite velocity {v:?} km/s");
    }
    let k = settings.neighbours;
    if k < 4 {
        bail!("phase groups: {k} neighbours is too few for a density estimate (at least 4)");
    }
    if !(settings.contrast.is_finite() && settings.contrast > 1.0) {
        bail!(
            "phase groups: contrast threshold {} is not a finite number > 1",
            settings.contrast
        );
    }
    if !(settings.max_fraction > 0.0 && settings.max_fraction <= 1.0) {
        bail!(
            "phase groups: max_fraction {} is not in (0, 1]",
            settings.max_fraction
        );
    }
    if u32::try_from(n).is_err() {
        bail!("phase groups: {n} particles is more than the k-d tree holds (2^32 - 1)");
    }
    let (lx, lv) = (robust_scale(positions), robust_scale(velocities));
    let empty = |contrast: Vec<f64>| PhaseGroups {
        groups: Vec::new(),
        contrast,
        outliers: 0,
        small_groups: 0,
        too_large: Vec::new(),
        position_scale: lx,
        velocity_scale: lv,
    };
    if n <= k {
        // Too few particles for any density estimate: no structure can be told apart.
        return Ok(empty(vec![1.0; n]));
    }
    if !(lx > 0.0 && lv > 0.0) {
        bail!(
            "phase groups: the particles' spread is zero (position scale {lx} kpc, velocity \
             scale {lv} km/s): more than half share a coordinate"
        );
    }
    let radii: Vec<f64> = positions
        .iter()
        .map(|x| (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt())
        .collect();
    let sph: Vec<[f64; 3]> = positions
        .iter()
        .zip(velocities)
        .map(|(x, v)| spherical_velocity(*x, *v))
        .collect();
    let background = Background::fit(&radii, &sph)?;
    let points: Vec<[f64; 6]> = positions
        .par_iter()
        .zip(velocities.par_iter())
        .map(|(x, v)| {
            [
                x[0] / lx,
                x[1] / lx,
                x[2] / lx,
                v[0] / lv,
                v[1] / lv,
                v[2] / lv,
            ]
        })
        .collect();
    let tree = ImmutableKdTree::<f64, 6>::new_from_slice(&points)
        .map_err(|e| anyhow!("phase groups: cannot build a 6D k-d tree of {n} points: {e:?}"))?;
    let nk = NonZeroUsize::new(k + 1).ok_or_else(|| anyhow!("phase groups: k + 1 overflows"))?;
    // ln of the unit 6-ball's volume, π³/6, and of the metric's Jacobian l_x³ l_v³.
    let ln_v6 = (std::f64::consts::PI.powi(3) / 6.0).ln();
    let ln_jacobian = 3.0 * (lx.ln() + lv.ln());
    let threshold = settings.contrast.ln();
    // The background at every particle, particles per kpc³ per (km/s)³.
    let f_bg: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| background.ln_density(radii[i], &sph[i]).exp())
        .collect();
    // Contrast per particle, and the neighbour list of each outlier.
    let found: Vec<(f64, Option<Vec<u32>>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let nb = tree
                .query(&points[i])
                .nearest_n::<SquaredEuclidean<f64>>(nk)
                .execute();
            let others: Vec<u32> = nb
                .iter()
                .map(|x| x.item)
                .filter(|&j| j as usize != i)
                .take(k)
                .collect();
            // d_k²: the largest squared distance among the k + 1 found (self at 0 included);
            // floored so that coincident points give a large but finite density.
            let d2 = nb.last().map_or(0.0, |x| x.distance).max(1e-300);
            let ln_local = (k as f64).ln() - ln_v6 - 3.0 * d2.ln() - ln_jacobian;
            // The background seen by the same ball: its mean over the particle and its
            // neighbours (module docs), floored at the smallest positive double.
            let mean_bg = (f_bg[i] + others.iter().map(|&j| f_bg[j as usize]).sum::<f64>())
                / (others.len() + 1) as f64;
            let ln_c = ln_local - mean_bg.max(f64::MIN_POSITIVE).ln();
            (ln_c, (ln_c >= threshold).then_some(others))
        })
        .collect();
    let contrast: Vec<f64> = found.iter().map(|(c, _)| c.exp()).collect();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut outliers = 0usize;
    for (i, (_, nb)) in found.iter().enumerate() {
        let Some(nb) = nb else { continue };
        outliers += 1;
        for &j in nb {
            let j = j as usize;
            if found[j].1.is_some() {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let mut members_of: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, (_, nb)) in found.iter().enumerate() {
        if nb.is_some() {
            let r = find(&mut parent, i);
            members_of.entry(r).or_default().push(i);
        }
    }
    let max_members = (settings.max_fraction * n as f64).floor() as usize;
    let (mut groups, mut small_groups, mut too_large) = (Vec::new(), 0usize, Vec::new());
    for (_, m) in members_of {
        if m.len() < settings.min_members.max(1) {
            small_groups += 1;
        } else if m.len() > max_members {
            too_large.push(m.len());
        } else {
            groups.push(m);
        }
    }
    // Largest first; ties by smallest member (members are ascending).
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    Ok(PhaseGroups {
        groups,
        outliers,
        small_groups,
        too_large,
        ..empty(contrast)
    })
}

/// Substructure decomposition: the phase-space groups of [`find_phase_groups`] become clusters
/// of their own (no ghosts, no core: their stars are not cut; a group more elongated than
/// [`ELONGATED`] is cut into ⌊members / min_members⌋ cells of its own particles with ghost
/// margin `margin` from the same group), listed after the `n_cells`
/// spatial cells ([`super::decompose_cells`] with ghost margin `margin`) of the remaining
/// particles, whose cores and ghosts are built from those particles only. Every particle is a
/// member of exactly one cluster. Positions kpc, velocities km/s, galaxy frame.
pub(crate) fn decompose_cells_and_groups(
    positions: &[[f64; 3]],
    velocities: &[[f64; 3]],
    n_cells: usize,
    margin: f64,
    settings: &PhaseGroupSettings,
    split: Option<&SmoothSplit>,
) -> Result<Vec<Cluster>> {
    let found = find_phase_groups(positions, velocities, settings)?;
    let mut in_group = vec![false; positions.len()];
    for g in &found.groups {
        for &i in g {
            in_group[i] = true;
        }
    }
    // The smooth rest, as indices into the full arrays.
    let rest: Vec<usize> = (0..positions.len()).filter(|&i| !in_group[i]).collect();
    if rest.len() < n_cells {
        bail!(
            "substructure: only {} of {} particles are outside the {} phase-space groups, too \
             few for {n_cells} cells; ask for fewer cells or a higher contrast",
            rest.len(),
            positions.len(),
            found.groups.len()
        );
    }
    let mut clusters =
        super::decompose_smooth(positions, velocities, &rest, n_cells, margin, split)?;
    tracing::info!(
        "substructure: {} phase-space groups ({} particles; {} particles above contrast {}, {} \
         smaller sets left to the cells{}), metric scales {:.3} kpc and {:.2} km/s",
        found.groups.len(),
        positions.len() - rest.len(),
        found.outliers,
        settings.contrast,
        found.small_groups,
        if found.too_large.is_empty() {
            String::new()
        } else {
            format!(
                ", sets of {:?} particles too large to be substructure",
                found.too_large
            )
        },
        found.position_scale,
        found.velocity_scale
    );
    let n_groups = found.groups.len();
    for (g, members) in found.groups.into_iter().enumerate() {
        let group_positions: Vec<[f64; 3]> = members.iter().map(|&i| positions[i]).collect();
        let elongation = elongation(&group_positions);
        let pieces = if elongation > ELONGATED {
            (members.len() / settings.min_members.max(1)).max(1)
        } else {
            1
        };
        if pieces == 1 {
            clusters.push(Cluster {
                label: format!(
                    "phase group {g} of {n_groups} ({} particles)",
                    members.len()
                ),
                members,
                ghosts: Vec::new(),
                core: None,
            });
            continue;
        }
        // An elongated group (a stream) is cut into cells of its own particles, ghosts from the
        // same group: each flow then learns a short, nearly straight piece of the tube.
        let cells = super::cells_of(positions, &members, pieces, margin)?;
        for (p, mut c) in cells.into_iter().enumerate() {
            c.label = format!(
                "phase group {g} of {n_groups} (elongation {elongation:.0}) piece {p} of {pieces} \
                 ({} particles)",
                c.members.len()
            );
            clusters.push(c);
        }
    }
    Ok(clusters)
}

/// Spread ratio above which a group is cut into pieces (see [`elongation`]).
pub const ELONGATED: f64 = 3.0;

/// Ratio of the largest to the smallest principal standard deviation of `points` (kpc / kpc);
/// 1 for a round group, large for a thin tube. Infinite for a flat or degenerate group.
pub fn elongation(points: &[[f64; 3]]) -> f64 {
    let n = points.len().max(1) as f64;
    let mean: [f64; 3] = std::array::from_fn(|d| points.iter().map(|p| p[d]).sum::<f64>() / n);
    let mut c = [[0.0f64; 3]; 3];
    for p in points {
        for a in 0..3 {
            for b in 0..3 {
                c[a][b] += (p[a] - mean[a]) * (p[b] - mean[b]) / n;
            }
        }
    }
    let ev = symmetric_eigenvalues(c);
    let (lo, hi) = (ev[0].max(0.0), ev[2].max(0.0));
    if lo > 0.0 {
        (hi / lo).sqrt()
    } else if hi > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

/// Eigenvalues (ascending) of a symmetric 3 × 3 matrix, by cyclic Jacobi rotations.
fn symmetric_eigenvalues(mut a: [[f64; 3]; 3]) -> [f64; 3] {
    for _ in 0..50 {
        let off = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
        let scale = a[0][0].powi(2) + a[1][1].powi(2) + a[2][2].powi(2);
        if off <= 1e-30 * scale || off == 0.0 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let (cs, sn) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
            // A ← Jᵀ A J with the rotation J in the (p, q) plane.
            for row in a.iter_mut() {
                let (akp, akq) = (row[p], row[q]);
                row[p] = cs * akp - sn * akq;
                row[q] = sn * akp + cs * akq;
            }
            let (row_p, row_q) = (a[p], a[q]);
            for (k, (apk, aqk)) in row_p.into_iter().zip(row_q).enumerate() {
                a[p][k] = cs * apk - sn * aqk;
                a[q][k] = sn * apk + cs * aqk;
            }
        }
    }
    let mut ev = [a[0][0], a[1][1], a[2][2]];
    ev.sort_by(f64::total_cmp);
    ev
}
