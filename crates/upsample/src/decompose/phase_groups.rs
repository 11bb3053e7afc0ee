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
//!    [`PhaseGroupSettings::contrast`] are seeds (outliers); particles at least
//!    [`PhaseGroupSettings::grow_contrast`] are candidates. Two candidates are linked when one
//!    is among the other's k nearest neighbours (the same 6D neighbour lists); connected
//!    candidates holding at least one seed form a group (union-find, hysteresis as in edge
//!    detection), kept when it has at least `min_members` members and at most `max_fraction`
//!    of all particles (a "group" holding a large part of the galaxy is the galaxy, e.g. a
//!    disc, which a spherical background calls cold: it is left to the cells).
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
//! **A disc galaxy's background** (`decompose_cells_and_groups` with the components split):
//! spherical shells call a thin cold disc substructure, more so the better it is resolved. On
//! the disc + bulge galaxy (b): 50 000 particles, disc contrast median 3.8, 99.9% 35, 139
//! particles above 30 in 30 sets of fewer than 200, so no group; 10⁶ particles of the same
//! model, 54 244 above 30 and two "groups" of 53 437 disc particles, one cut into 519 stream
//! pieces (seen on an H200, 2026-12-04). So after a first pass against the shells, the
//! particles it left smooth are split into disc and spheroid as the cells are
//! (`components.rs`), every particle is drawn into one of the two with that fitted
//! probability, and a second pass runs against the spheroid's shells plus the disc's
//! axisymmetric rings ([`DiscRings`]: rings in R, bins in |z|, a Gaussian ellipsoid in
//! (v_R, v_φ, v_z) per bin), both fitted without the first pass's groups
//! ([`BackgroundRole::Skip`]): the background is the smooth galaxy's. Then (b) has no particle
//! above 30 at either size, and (c)'s stream and satellite put into (b) are found whole at both
//! sizes (docs/ACCURACY.md); a satellite beside a thin cold disc too (`decompose/tests.rs`).
//!
//! **Why growth only against the rings.** Against the rings a cold stream co-rotating inside
//! the disc plane stands far less above its background than against shells: (b) with a
//! 1 500-particle stream on a 90° arc at R = 9 kpc (0.15 kpc, 3 km/s, the disc's mean
//! rotation) has contrast 72 at the median but 16% of its particles under 30, so seeds alone
//! kept 1 266 of them; grown through 10 (2% of the stream and 35 of the 50 000 disc particles
//! stand under/above it), 1 466 with 39 disc particles. So the disc pass grows its groups
//! ([`PhaseGroupSettings::grow_contrast`]); the first pass, against shells, does not. There a
//! cold disc's particles stand above 10 in their thousands and would percolate into the groups
//! (and its groups are what the disc pass leaves out of its background), and in a halo the
//! structures are complete with seeds alone: growth only took in halo particles ((c)'s stream
//! and satellite 13 and 8, purity 0.997 → 0.991), which cut the stream's catalogue core
//! density from 0.94 to 0.85 of the truth and its distance-to-track KS from 0.046 to 0.082
//! (default preset, measured 2026-12-04).

use anyhow::{anyhow, bail, Result};
use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rayon::prelude::*;
use std::num::NonZeroUsize;

use super::components::bracket;
use super::{Cluster, SmoothSplit};
use crate::fidelity::{cylindrical_velocity, spherical_velocity};

/// Fewest particles a background shell holds (shells are merged outward until they do).
pub const MIN_SHELL_COUNT: usize = 200;

/// Fine log-spaced shells before merging.
const FINE_SHELLS: usize = 64;

/// Knobs of the group finder.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseGroupSettings {
    /// Neighbours k of the 6D density estimate and of the linking (>= 4).
    pub neighbours: usize,
    /// Least contrast f̂ / f_bg (dimensionless) of the particles a group grows from (seeds).
    pub contrast: f64,
    /// Least contrast (dimensionless, in (1, `contrast`]) of the particles a group grows
    /// through: a group is a connected set of particles above `grow_contrast` holding at least
    /// one seed (hysteresis; `contrast` itself: no growth). [`decompose_cells_and_groups`]
    /// grows only in a disc galaxy's pass against the disc's rings.
    pub grow_contrast: f64,
    /// Fewest members of a kept group.
    pub min_members: usize,
    /// Largest fraction of all particles a kept group may hold (0, 1].
    pub max_fraction: f64,
}

impl Default for PhaseGroupSettings {
    /// k = 32, seeds at contrast 30 grown through 10, at least 100 members, at most 25% of
    /// the particles.
    fn default() -> Self {
        Self {
            neighbours: 32,
            contrast: 30.0,
            grow_contrast: 10.0,
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
    /// Particles at or above the contrast threshold (seeds).
    pub outliers: usize,
    /// Group members below the contrast threshold, taken in by growth (at or above
    /// `grow_contrast`, linked to a seed).
    pub grown: usize,
    /// Connected sets holding a seed but fewer than `min_members` (left to the smooth rest).
    pub small_groups: usize,
    /// Sizes of the connected sets dropped for holding more than `max_fraction`.
    pub too_large: Vec<usize>,
    /// Position scale l_x of the 6D metric, kpc.
    pub position_scale: f64,
    /// Velocity scale l_v of the 6D metric, km/s.
    pub velocity_scale: f64,
    /// Disc particles whose axisymmetric rings joined the background (0: spherical shells
    /// of all particles).
    pub disc_background: usize,
}

impl PhaseGroups {
    /// Whether each particle is a member of a kept group (indexed like the finder's input).
    pub fn in_groups(&self) -> Vec<bool> {
        let mut mask = vec![false; self.contrast.len()];
        self.groups.iter().flatten().for_each(|&i| mask[i] = true);
        mask
    }
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

/// Most |z| bins of one disc ring of the background.
const MAX_Z_BINS: usize = 16;

/// Ends (exclusive) of consecutive bins of `order` (indices sorted by `key`, key > 0 apart
/// from exact zeros): [`FINE_SHELLS`] log-spaced bins between the smallest positive key and the
/// largest, merged until each holds `min_count`; a short last bin joins the one before.
fn log_bins(key: &[f64], order: &[usize], min_count: usize) -> Vec<usize> {
    let n = order.len();
    let k_min = order
        .iter()
        .map(|&i| key[i])
        .filter(|&r| r > 0.0)
        .fold(f64::INFINITY, f64::min);
    let k_max = order.iter().map(|&i| key[i]).fold(0.0, f64::max);
    let mut fine_ends: Vec<usize> = Vec::with_capacity(FINE_SHELLS);
    if k_min.is_finite() && k_max > k_min {
        let step = (k_max / k_min).ln() / FINE_SHELLS as f64;
        let mut k = 0;
        for s in 1..FINE_SHELLS {
            let edge = k_min * (step * s as f64).exp();
            while k < n && key[order[k]] < edge {
                k += 1;
            }
            fine_ends.push(k);
        }
    }
    fine_ends.push(n);
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
    ends
}

/// Outer edge of bin `b` of `order` (sorted by `key`) ending at `ends[b]`: halfway between its
/// last particle and the next bin's first, or its last particle's key for the last bin.
fn outer_edge(key: &[f64], order: &[usize], ends: &[usize], b: usize) -> f64 {
    let end = ends[b];
    if b + 1 == ends.len() {
        key[order[end - 1]]
    } else {
        0.5 * (key[order[end - 1]] + key[order[end]])
    }
}

/// A number density and a Gaussian velocity ellipsoid aligned with the axes of the velocity
/// components it was fitted on: ln n (particles per kpc³), medians and ln σ (km/s).
#[derive(Debug, Clone, Copy)]
struct Ellipsoid {
    ln_n: f64,
    mean: [f64; 3],
    ln_sigma: [f64; 3],
}

impl Ellipsoid {
    /// `idx`'s particles in `volume` (kpc³): each velocity component's median and the
    /// root-mean-square about it (km/s) of `vs`.
    fn fit(idx: &[usize], vs: &[[f64; 3]], volume: f64) -> Ellipsoid {
        let mut mean = [0.0; 3];
        let mut ln_sigma = [0.0; 3];
        for k in 0..3 {
            let mut col: Vec<f64> = idx.iter().map(|&i| vs[i][k]).collect();
            let med = median(&mut col);
            let ms = col.iter().map(|x| (x - med).powi(2)).sum::<f64>() / col.len() as f64;
            mean[k] = med;
            ln_sigma[k] = ms.sqrt().max(1e-6).ln();
        }
        Ellipsoid {
            ln_n: (idx.len() as f64 / volume).ln(),
            mean,
            ln_sigma,
        }
    }

    /// ln f (particles per kpc³ per (km/s)³) at velocity `u` (km/s).
    fn ln_density(&self, u: &[f64; 3]) -> f64 {
        let ln_2pi = (2.0 * std::f64::consts::PI).ln();
        let mut ln_f = self.ln_n;
        for ((ui, mi), ls) in u.iter().zip(&self.mean).zip(&self.ln_sigma) {
            let z = (ui - mi) / ls.exp();
            ln_f -= 0.5 * z * z + ls + 0.5 * ln_2pi;
        }
        ln_f
    }

    /// The parameters interpolated linearly to `t` ∈ [0, 1] between `self` and `other`.
    fn lerp(&self, other: &Ellipsoid, t: f64) -> Ellipsoid {
        let l = |p: f64, q: f64| p + t * (q - p);
        Ellipsoid {
            ln_n: l(self.ln_n, other.ln_n),
            mean: std::array::from_fn(|i| l(self.mean[i], other.mean[i])),
            ln_sigma: std::array::from_fn(|i| l(self.ln_sigma[i], other.ln_sigma[i])),
        }
    }
}

/// Spherical shells of the module docs (of all particles, or of a disc galaxy's spheroid):
/// (ln of each shell's median radius, its density and ellipsoid in (v_r, v_θ, v_φ)).
struct Shells {
    ln_r: Vec<f64>,
    nodes: Vec<Ellipsoid>,
}

impl Shells {
    /// Shells of the particles `subset` at `radii` (kpc) with spherical velocities `vs` (km/s).
    fn fit(radii: &[f64], vs: &[[f64; 3]], subset: &[usize]) -> Result<Shells> {
        let n = subset.len();
        let mut order = subset.to_vec();
        order.sort_unstable_by(|&a, &b| radii[a].total_cmp(&radii[b]));
        let ends = log_bins(radii, &order, MIN_SHELL_COUNT.min((n / 20).max(1)));
        let (mut ln_rs, mut nodes) = (
            Vec::with_capacity(ends.len()),
            Vec::with_capacity(ends.len()),
        );
        let mut start = 0;
        let mut r_lo = 0.0_f64;
        for (s, &end) in ends.iter().enumerate() {
            let idx = &order[start..end];
            let r_hi = outer_edge(radii, &order, &ends, s);
            let volume = 4.0 / 3.0 * std::f64::consts::PI * (r_hi.powi(3) - r_lo.powi(3));
            let mut rs: Vec<f64> = idx.iter().map(|&i| radii[i]).collect();
            let r_node = median(&mut rs).max(1e-300);
            if volume.is_nan() || volume <= 0.0 {
                bail!(
                    "phase groups: background shell {s} ({} particles at r = {r_lo}..{r_hi} kpc) \
                     has no volume (too many particles at the same radius)",
                    idx.len()
                );
            }
            ln_rs.push(r_node.ln());
            nodes.push(Ellipsoid::fit(idx, vs, volume));
            start = end;
            r_lo = r_hi;
        }
        Ok(Shells { ln_r: ln_rs, nodes })
    }

    /// ln f (particles per kpc³ per (km/s)³) at radius `r` with spherical velocity `u`.
    fn ln_density(&self, r: f64, u: &[f64; 3]) -> f64 {
        let ln_r = r.max(1e-300).ln();
        let (i, j, t) = bracket(&self.ln_r, ln_r);
        let node = self.nodes[i].lerp(&self.nodes[j], t);
        node.ln_density(u)
    }
}

/// A disc's axisymmetric background: rings in cylindrical R (log-spaced, merged like the
/// shells), each cut at quantiles of |z| into bins of at least [`MIN_SHELL_COUNT`] particles
/// (at most [`MAX_Z_BINS`]), with a Gaussian ellipsoid in (v_R, v_φ, v_z) per bin. A thin,
/// cold, rotating disc, which spherical shells call substructure, is smooth against it.
struct DiscRings {
    /// ln of each ring's median R (kpc).
    ln_r: Vec<f64>,
    /// Each ring's |z| bins from the plane out: upper |z| edge (kpc), and density and
    /// ellipsoid in (v_R, v_φ, v_z).
    rings: Vec<Vec<(f64, Ellipsoid)>>,
}

/// Cylindrical R (kpc), |z| (kpc) and (v_R, v_φ, v_z) (km/s) of one particle.
fn cylindrical(x: &[f64; 3], v: &[f64; 3]) -> (f64, f64, [f64; 3]) {
    (x[0].hypot(x[1]), x[2].abs(), cylindrical_velocity(*x, *v))
}

impl DiscRings {
    /// Rings of the particles `subset` at `positions` (kpc) with `velocities` (km/s).
    fn fit(positions: &[[f64; 3]], velocities: &[[f64; 3]], subset: &[usize]) -> DiscRings {
        let n = positions.len();
        let (mut big_r, mut abs_z, mut vc) = (vec![0.0; n], vec![0.0; n], vec![[0.0; 3]; n]);
        for &i in subset {
            (big_r[i], abs_z[i], vc[i]) = cylindrical(&positions[i], &velocities[i]);
        }
        let mut order = subset.to_vec();
        order.sort_unstable_by(|&a, &b| big_r[a].total_cmp(&big_r[b]));
        let ends = log_bins(
            &big_r,
            &order,
            MIN_SHELL_COUNT.min((subset.len() / 20).max(1)),
        );
        let (mut ln_rs, mut rings) = (
            Vec::with_capacity(ends.len()),
            Vec::with_capacity(ends.len()),
        );
        let (mut start, mut r_lo) = (0, 0.0_f64);
        for (b, &end) in ends.iter().enumerate() {
            let r_hi = outer_edge(&big_r, &order, &ends, b);
            let area = std::f64::consts::PI * (r_hi * r_hi - r_lo * r_lo);
            let mut ring = order[start..end].to_vec();
            let mut rs: Vec<f64> = ring.iter().map(|&i| big_r[i]).collect();
            let ln_r = median(&mut rs).max(1e-300).ln();
            ring.sort_unstable_by(|&a, &b| abs_z[a].total_cmp(&abs_z[b]));
            let m = (ring.len() / MIN_SHELL_COUNT).clamp(1, MAX_Z_BINS);
            let z_ends: Vec<usize> = (1..=m).map(|j| j * ring.len() / m).collect();
            let mut bins = Vec::with_capacity(m);
            let (mut z_start, mut z_lo) = (0, 0.0_f64);
            for (j, &z_end) in z_ends.iter().enumerate() {
                let z_hi = outer_edge(&abs_z, &ring, &z_ends, j);
                // Both sides of the plane; a floor so that tied |z| cannot divide by zero.
                let volume = (area * 2.0 * (z_hi - z_lo)).max(1e-300);
                bins.push((z_hi, Ellipsoid::fit(&ring[z_start..z_end], &vc, volume)));
                (z_start, z_lo) = (z_end, z_hi);
            }
            ln_rs.push(ln_r);
            rings.push(bins);
            (start, r_lo) = (end, r_hi);
        }
        DiscRings { ln_r: ln_rs, rings }
    }

    /// f (particles per kpc³ per (km/s)³) at `x` (kpc) with velocity `v` (km/s): each of the
    /// two rings around R evaluated in its |z| bin (zero beyond its last), then interpolated
    /// linearly in ln R (held beyond the first and last ring).
    fn density(&self, x: &[f64; 3], v: &[f64; 3]) -> f64 {
        let (big_r, abs_z, u) = cylindrical(x, v);
        let in_ring = |bins: &[(f64, Ellipsoid)]| {
            bins.iter()
                .find(|(z_hi, _)| abs_z <= *z_hi)
                .map_or(0.0, |(_, e)| e.ln_density(&u).exp())
        };
        let ln_r = big_r.max(1e-300).ln();
        let (i, j, t) = bracket(&self.ln_r, ln_r);
        (1.0 - t) * in_ring(&self.rings[i]) + t * in_ring(&self.rings[j])
    }
}

/// What a particle's background is fitted with, in a disc galaxy's second pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackgroundRole {
    /// The spherical shells (a disc galaxy's spheroid).
    Shells,
    /// The disc's axisymmetric rings.
    Rings,
    /// Neither: substructure the first pass found, left out of the smooth galaxy's model.
    Skip,
}

/// The smooth background of the module docs: spherical shells, plus a disc's axisymmetric
/// rings where the galaxy has a rotating disc (the shells then hold its spheroid only).
struct Background {
    shells: Shells,
    disc: Option<DiscRings>,
}

impl Background {
    /// The background of all particles, or with `roles` of a disc galaxy's shells and rings.
    fn fit(
        positions: &[[f64; 3]],
        velocities: &[[f64; 3]],
        radii: &[f64],
        sph: &[[f64; 3]],
        roles: Option<&[BackgroundRole]>,
    ) -> Result<Background> {
        let n = radii.len();
        let (in_disc, rest): (Vec<usize>, Vec<usize>) = match roles {
            Some(r) => (
                (0..n).filter(|&i| r[i] == BackgroundRole::Rings).collect(),
                (0..n).filter(|&i| r[i] == BackgroundRole::Shells).collect(),
            ),
            None => (Vec::new(), (0..n).collect()),
        };
        if in_disc.is_empty() || rest.is_empty() {
            let all: Vec<usize> = (0..n).collect();
            return Ok(Background {
                shells: Shells::fit(radii, sph, &all)?,
                disc: None,
            });
        }
        Ok(Background {
            shells: Shells::fit(radii, sph, &rest)?,
            disc: Some(DiscRings::fit(positions, velocities, &in_disc)),
        })
    }

    /// f_bg (particles per kpc³ per (km/s)³) of particle at `x` (kpc), velocity `v` (km/s),
    /// radius `r` (kpc) and spherical velocity `u` (km/s).
    fn density(&self, x: &[f64; 3], v: &[f64; 3], r: f64, u: &[f64; 3]) -> f64 {
        self.shells.ln_density(r, u).exp() + self.disc.as_ref().map_or(0.0, |d| d.density(x, v))
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
/// a smooth spherical background (module docs), grown through neighbours above
/// `settings.grow_contrast`; positions kpc, velocities km/s, galaxy frame (origin at the
/// centre).
pub fn find_phase_groups(
    positions: &[[f64; 3]],
    velocities: &[[f64; 3]],
    settings: &PhaseGroupSettings,
    roles: Option<&[BackgroundRole]>,
) -> Result<PhaseGroups> {
    let n = positions.len();
    if velocities.len() != n {
        bail!(
            "phase groups: {n} positions but {} velocities (one each expected)",
            velocities.len()
        );
    }
    super::check_positions(positions, "phase groups")?;
    if let Some(d) = roles.filter(|d| d.len() != n) {
        bail!(
            "phase groups: {n} particles but {} background roles (one each expected)",
            d.len()
        );
    }
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
    if !(settings.grow_contrast.is_finite()
        && settings.grow_contrast > 1.0
        && settings.grow_contrast <= settings.contrast)
    {
        bail!(
            "phase groups: growth threshold {} is not a finite number in (1, {}] (the contrast \
             threshold)",
            settings.grow_contrast,
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
        grown: 0,
        small_groups: 0,
        too_large: Vec::new(),
        position_scale: lx,
        velocity_scale: lv,
        disc_background: 0,
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
    let background = Background::fit(positions, velocities, &radii, &sph, roles)?;
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
    let threshold = settings.grow_contrast.ln();
    // The background at every particle, particles per kpc³ per (km/s)³.
    let f_bg: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| background.density(&positions[i], &velocities[i], radii[i], &sph[i]))
        .collect();
    // Contrast per particle, and the neighbour list of each that may join a group.
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
    // Candidates (those with a neighbour list) linked to each other; a connected set is a
    // group when it holds a seed.
    let seed = settings.contrast.ln();
    let mut parent: Vec<usize> = (0..n).collect();
    for (i, (_, nb)) in found.iter().enumerate() {
        let Some(nb) = nb else { continue };
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
        if !m.iter().any(|&i| found[i].0 >= seed) {
            continue;
        }
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
        outliers: found.iter().filter(|(c, _)| *c >= seed).count(),
        grown: groups
            .iter()
            .flatten()
            .filter(|&&i| found[i].0 < seed)
            .count(),
        groups,
        small_groups,
        too_large,
        disc_background: match (&background.disc, roles) {
            (Some(_), Some(r)) => r.iter().filter(|&&b| b == BackgroundRole::Rings).count(),
            _ => 0,
        },
        ..empty(found.iter().map(|(c, _)| c.exp()).collect())
    })
}

/// Substructure decomposition: the phase-space groups of [`find_phase_groups`] become clusters
/// of their own (no ghosts, no core: their stars are not cut; a group more elongated than
/// [`ELONGATED`] is cut into [`stream_pieces`] cells of its own particles with ghost
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
    // The first pass, against spherical shells, takes seeds only (module docs, "Why growth
    // only against the rings"): growth there adds halo particles to complete groups, and
    // percolates through a cold disc.
    let strict = PhaseGroupSettings {
        grow_contrast: settings.contrast,
        ..settings.clone()
    };
    let mut found = find_phase_groups(positions, velocities, &strict, None)?;
    // A disc galaxy's disc joins the background as axisymmetric rings (against spherical shells
    // alone a thin cold disc resolved by ~10^6 particles stands out as "groups"). The second
    // pass's background is the smooth galaxy: which particles are disc is fitted on what the
    // first pass left smooth, as the cells' split is, and its groups are left out of both the
    // shells and the rings, so that a stream or a satellite cannot pass for background. Its
    // groups grow through `grow_contrast`.
    if let Some(s) = split {
        let grouped = found.in_groups();
        let smooth: Vec<usize> = (0..positions.len()).filter(|&i| !grouped[i]).collect();
        let flags = super::components::disc_flags(
            positions,
            velocities,
            s.weights,
            s.uids,
            s.ellipsoids,
            &smooth,
        );
        if let Some(disc) = flags {
            let roles: Vec<BackgroundRole> = (0..positions.len())
                .map(|i| match (disc[i], grouped[i]) {
                    (_, true) => BackgroundRole::Skip,
                    (true, false) => BackgroundRole::Rings,
                    (false, false) => BackgroundRole::Shells,
                })
                .collect();
            found = find_phase_groups(positions, velocities, settings, Some(&roles))?;
        }
    }
    let in_group = found.in_groups();
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
         grown through contrast {}, {} smaller sets left to the cells{}), metric scales {:.3} \
         kpc and {:.2} km/s, background {}",
        found.groups.len(),
        positions.len() - rest.len(),
        found.outliers,
        settings.contrast,
        found.grown,
        settings.grow_contrast,
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
        found.velocity_scale,
        match found.disc_background {
            0 => String::from("spherical shells"),
            d => format!("spheroid shells + disc rings ({d} disc particles)"),
        }
    );
    let n_groups = found.groups.len();
    for (g, members) in found.groups.into_iter().enumerate() {
        let group_positions: Vec<[f64; 3]> = members.iter().map(|&i| positions[i]).collect();
        let elongation = elongation(&group_positions);
        let pieces = stream_pieces(members.len(), elongation, settings.min_members);
        if pieces == 1 {
            clusters.push(Cluster {
                label: format!(
                    "phase group {g} of {n_groups} ({} particles)",
                    members.len()
                ),
                members,
                ghosts: Vec::new(),
                core: None,
                component: None,
                own_frame: true,
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

/// Elongation (principal spread ratio) of each piece a stream is cut into, about: the pieces
/// follow the stream's shape, not its particle count.
pub const PIECE_ELONGATION: f64 = 4.0;

/// Pieces of a group of `members` particles and `elongation`: 1 unless it is more elongated
/// than [`ELONGATED`]; else ⌈elongation / [`PIECE_ELONGATION`]⌉, but no piece under
/// `min_members` particles. Galaxy (c)'s stream (1 507 particles, elongation 65): 15 pieces of
/// ~100. The same stream resolved by 20× the particles gets 17 pieces, not 300 of 100 particles
/// each (a tiny flow per piece, trained for `min_steps`).
pub fn stream_pieces(members: usize, elongation: f64, min_members: usize) -> usize {
    if elongation.is_nan() || elongation <= ELONGATED {
        return 1;
    }
    let by_shape = (elongation / PIECE_ELONGATION).ceil().min(members as f64) as usize;
    (members / min_members.max(1)).clamp(1, by_shape.max(1))
}

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
