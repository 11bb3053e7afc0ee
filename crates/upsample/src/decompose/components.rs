//! Disc and spheroid: a kinematic split of the smooth particles into a rotating component and
//! a non-rotating one, each then cut into cells of its own (issue 12, galaxy (b)).
//!
//! Why: in a disc galaxy every spatial cell holds both the cold, flat disc and the hot, round
//! spheroid (bulge, stellar halo). A cell's radial profile is fitted to both and its extent is
//! the disc's, so the spheroid's own end (a truncated bulge, a halo's edge) is something the
//! flow must learn from a few dozen envelope particles, and it smooths it away. Split, the
//! spheroid's cells get a profile and an extent of their own.
//!
//! How: the circularity ε = v_φ / |v| (v_φ about the frame's z axis) of a non-rotating
//! population is symmetric about 0 whatever its anisotropy, so in a radial shell the excess of
//! prograde over retrograde particles at the same |ε| is the rotating component (the mirror
//! argument of Abadi et al. 2003). Binned in (ln r, ε), the disc probability is
//!
//! ```text
//! p(ε, r) = clamp(1 − (h(−ε) + k √h(−ε)) / h(ε), 0, 1)   for ε > 0,   0 for ε ≤ 0,
//! ```
//!
//! h the weighted particle count of the bin, k = [`MIRROR_NOISE`] standard deviations of the
//! mirror's own Poisson noise (so a non-rotating galaxy gets p ≈ 0, and where nothing
//! counter-rotates p = 1). The mirror calls disc only the prograde *excess*, so a hot disc's
//! counter-rotating tail (and as many of its slow prograde particles) goes to the spheroid;
//! so where a shell rotates significantly (`[clusters] component_ellipsoids`, on by default),
//! p is instead the posterior of a fitted pair of velocity ellipsoids, a rotating disc and a
//! non-rotating spheroid, started from the mirror's p and kept only if the disc is
//! rotation-supported (`ellipsoids.rs`). p is interpolated bilinearly between bin centres and
//! linearly in ln r between shells, so it is continuous in phase space. Each particle goes to
//! the disc with probability p, by a hash of its identity: the two components' densities are
//! p f and (1 − p) f, both smooth, and their sum is f whatever p is. A wrong p makes the
//! components less clean, never the catalogue wrong.
//!
//! Near the centre the spheroid dominates, and p alone leaves the disc component a central hole
//! in position and a steep edge at ε ≈ 0 in velocity, which the disc's cells (wedges with the
//! centre at a corner) follow less well than the spheroid's round cell around it
//! (docs/ACCURACY.md, twenty-sixth and twenty-seventh sessions). So inside the radius where the
//! rotating population first makes up half its shell, the disc component hands the spheroid
//! the share 1 − λ(r) of its particles, λ = p̄(r) / [`HANDOVER_UNTIL`] (p̄ the shell's mean p):
//!
//! ```text
//! p'(ε, r) = λ(r) p
//! ```
//!
//! The disc component keeps the shape of its velocities, its density thinned by the smooth
//! λ(r); the spheroid takes the rest, rotation and all, where it is most of the galaxy anyway.
//!
//! Units: positions kpc, velocities km/s (galaxy frame: centre at the origin, z along the
//! angular momentum).

use super::ellipsoids::ShellMixture;
use crate::fidelity::radius;
use crate::seed::mix_seed;

/// Standard deviations of the retrograde count's Poisson noise added to it before the mirror
/// subtraction: a non-rotating galaxy's random prograde excess stays below it.
pub(crate) const MIRROR_NOISE: f64 = 2.0;
/// Least share of the particles in each component for a split (below it the galaxy is one
/// component and keeps plain cells).
pub(crate) const MIN_COMPONENT_SHARE: f64 = 0.05;
/// Most particles in a radial shell of the (ln r, ε) histogram.
const SHELL_COUNT: usize = 4000;
/// Widest radial shell, in ln r (22%): where a spheroid ends inside a larger disc, p reaches 1
/// within about a shell of its edge, so the spheroid's cells end near it.
const SHELL_WIDTH: f64 = 0.2;
/// Fewest particles in a shell (the outermost is merged into its neighbour below it).
const SHELL_MIN: usize = 100;
/// Bins of ε in (0, 1] (and as many mirrored in [−1, 0)).
const EPS_BINS: usize = 8;
/// Tag of the components' assignment draws ("comp").
const COMPONENTS: u64 = 0x636f_6d70;
/// Mean p of a shell from which outwards the disc component keeps all of its particles;
/// inside, it keeps the share p̄ / HANDOVER_UNTIL (module doc).
const HANDOVER_UNTIL: f64 = 0.5;

/// The particles of a split, as indices into the arrays given to [`split_disc_spheroid`].
#[derive(Debug, Clone, PartialEq)]
pub struct Components {
    /// The rotating component's particles (ascending).
    pub disc: Vec<usize>,
    /// The non-rotating component's particles (ascending).
    pub spheroid: Vec<usize>,
    /// Expected share of the particles in the rotating population, Σ p / N (dimensionless); the
    /// disc component holds a little less, having handed the spheroid part of the centre
    /// (module doc).
    pub disc_share: f64,
    /// Radial shells whose p came from the velocity ellipsoids, and all shells.
    pub ellipsoid_shells: (usize, usize),
}

/// Circularity ε = v_φ / |v| of a particle at `x` (kpc) with velocity `v` (km/s): in [−1, 1],
/// 0 on the z axis or at rest.
pub fn circularity(x: [f64; 3], v: [f64; 3]) -> f64 {
    let big_r = x[0].hypot(x[1]);
    let speed = radius(v);
    if big_r == 0.0 || speed == 0.0 {
        return 0.0;
    }
    ((x[0] * v[1] - x[1] * v[0]) / (big_r * speed)).clamp(-1.0, 1.0)
}

/// How one radial shell gives p.
#[derive(Debug, Clone)]
enum ShellModel {
    /// The mirror's p at the ε bins' centres (0 for ε ≤ 0).
    Mirror([f64; EPS_BINS]),
    /// The posterior of a disc and a spheroid velocity ellipsoid.
    Mixture(ShellMixture),
}

impl ShellModel {
    /// p at circularity `e` of a particle at `x` (kpc) with velocity `v` (km/s).
    fn at(&self, e: f64, x: [f64; 3], v: [f64; 3]) -> f64 {
        match self {
            ShellModel::Mixture(m) => m.disc_probability(x, v),
            ShellModel::Mirror(row) => {
                if e <= 0.0 {
                    return 0.0;
                }
                // Linear between neighbouring bin centres, held beyond the last; at ε = 0 the
                // value is 0 (the mirror of itself).
                let centre0 = 0.5 / EPS_BINS as f64;
                let pos = e * EPS_BINS as f64 - 0.5;
                if pos < 0.0 {
                    return e / centre0 * row[0];
                }
                let b = (pos.floor() as usize).min(EPS_BINS - 1);
                let b1 = (b + 1).min(EPS_BINS - 1);
                let t = (pos - b as f64).min(1.0);
                (1.0 - t) * row[b] + t * row[b1]
            }
        }
    }
}

/// The disc probability p on radial shells (module doc), interpolated linearly in ln r.
#[derive(Debug, Clone)]
pub struct DiscProbability {
    /// ln r at the shells' centres (ln kpc), ascending.
    ln_r: Vec<f64>,
    /// Each shell's p.
    shells: Vec<ShellModel>,
    /// Each shell's share λ of the rotating population kept in the disc component (module
    /// doc), in [0, 1].
    kept: Vec<f64>,
}

impl DiscProbability {
    /// Fits p on particles at `positions` (kpc) with `velocities` (km/s), counted with `weights`
    /// (their likelihood weights, e.g. initial masses; None: one each); with `ellipsoids`, the
    /// velocity ellipsoids' p where a shell rotates, else the mirror's. No particles: p = 0.
    pub fn fit(
        positions: &[[f64; 3]],
        velocities: &[[f64; 3]],
        weights: Option<&[f64]>,
        ellipsoids: bool,
    ) -> Self {
        let n = positions.len();
        if n == 0 {
            return DiscProbability {
                ln_r: vec![0.0],
                shells: vec![ShellModel::Mirror([0.0; EPS_BINS])],
                kept: vec![1.0],
            };
        }
        let r: Vec<f64> = positions.iter().map(|&x| radius(x).max(1e-12)).collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| r[a].total_cmp(&r[b]));
        let ln_r_of = |k: usize| r[order[k]].ln();
        // Shell boundaries (ranks in `order`): a new shell when one is full or too wide.
        let mut bounds = vec![0];
        for k in 1..n {
            let start = *bounds.last().unwrap_or(&0);
            let count = k - start;
            if count >= SHELL_COUNT
                || (count >= SHELL_MIN && ln_r_of(k) - ln_r_of(start) > SHELL_WIDTH)
            {
                bounds.push(k);
            }
        }
        if bounds.len() > 1 && n - bounds[bounds.len() - 1] < SHELL_MIN {
            bounds.pop();
        }
        bounds.push(n);
        let mut ln_r = Vec::with_capacity(bounds.len());
        let mut shells = Vec::with_capacity(bounds.len());
        let mut mean_p = Vec::with_capacity(bounds.len());
        for pair in bounds.windows(2) {
            let rows = &order[pair[0]..pair[1]];
            ln_r.push(r[rows[rows.len() / 2]].ln());
            // Prograde and retrograde weights per |ε| bin.
            let (mut pro, mut retro) = ([0.0; EPS_BINS], [0.0; EPS_BINS]);
            let mut w_sum = 0.0;
            let eps: Vec<f64> = rows
                .iter()
                .map(|&i| circularity(positions[i], velocities[i]))
                .collect();
            for (&i, &e) in rows.iter().zip(&eps) {
                let w = weights.map_or(1.0, |w| w[i]);
                let b = ((e.abs() * EPS_BINS as f64) as usize).min(EPS_BINS - 1);
                if e > 0.0 {
                    pro[b] += w;
                } else if e < 0.0 {
                    retro[b] += w;
                }
                w_sum += w;
            }
            // Weights in units of a mean particle, so that √h is the count's Poisson noise.
            let unit = if w_sum > 0.0 {
                rows.len() as f64 / w_sum
            } else {
                1.0
            };
            let mut row = [0.0; EPS_BINS];
            for (b, pb) in row.iter_mut().enumerate() {
                let (h_pro, h_retro) = (pro[b] * unit, retro[b] * unit);
                let excess = h_pro - h_retro - MIRROR_NOISE * h_retro.sqrt();
                *pb = if h_pro > 0.0 {
                    (excess / h_pro).clamp(0.0, 1.0)
                } else {
                    0.0
                };
            }
            let mirror = ShellModel::Mirror(row);
            let model = if ellipsoids {
                let start: Vec<f64> = rows
                    .iter()
                    .zip(&eps)
                    .map(|(&i, &e)| mirror.at(e, positions[i], velocities[i]))
                    .collect();
                match ShellMixture::fit(rows, positions, velocities, weights, &start) {
                    Some(m) => ShellModel::Mixture(m),
                    None => mirror,
                }
            } else {
                mirror
            };
            let p_sum: f64 = rows
                .iter()
                .zip(&eps)
                .map(|(&i, &e)| {
                    weights.map_or(1.0, |w| w[i]) * model.at(e, positions[i], velocities[i])
                })
                .sum();
            mean_p.push(if w_sum > 0.0 { p_sum / w_sum } else { 0.0 });
            shells.push(model);
        }
        let kept = kept_near_centre(&mean_p);
        DiscProbability { ln_r, shells, kept }
    }

    /// The rotating population's probability p(ε, r) for a particle at `x` (kpc) with velocity
    /// `v` (km/s), in [0, 1].
    pub fn rotating(&self, x: [f64; 3], v: [f64; 3]) -> f64 {
        self.rotating_and_kept(x, v).0
    }

    /// The disc component's probability p'(ε, r) = λ(r) p (module doc) for a particle at `x`
    /// (kpc) with velocity `v` (km/s), in [0, 1]: what the split draws with.
    pub fn at(&self, x: [f64; 3], v: [f64; 3]) -> f64 {
        self.rotating_and_kept(x, v).1
    }

    /// p and p' (module doc) of a particle at `x` (kpc) with velocity `v` (km/s), from one
    /// evaluation of the shells' p: each interpolated linearly in ln r between the shells'
    /// centres and held constant beyond the end ones.
    fn rotating_and_kept(&self, x: [f64; 3], v: [f64; 3]) -> (f64, f64) {
        let e = circularity(x, v);
        let r = radius(x).max(1e-12);
        let (s0, s1, ts) = bracket(&self.ln_r, r.ln());
        let p0 = self.shells[s0].at(e, x, v);
        let p1 = if ts > 0.0 {
            self.shells[s1].at(e, x, v)
        } else {
            0.0
        };
        let between = |a: f64, b: f64| ((1.0 - ts) * a + ts * b).clamp(0.0, 1.0);
        (
            between(p0, p1),
            between(self.kept[s0] * p0, self.kept[s1] * p1),
        )
    }

    /// Shells whose p is a fitted pair of velocity ellipsoids rather than the mirror, and all
    /// shells.
    pub fn ellipsoid_shells(&self) -> (usize, usize) {
        let fitted = self
            .shells
            .iter()
            .filter(|s| matches!(s, ShellModel::Mixture(_)))
            .count();
        (fitted, self.shells.len())
    }
}

/// Each shell's kept share λ from the shells' mean p (ascending radius, module doc): p̄ /
/// [`HANDOVER_UNTIL`] inside the first shell where p̄ reaches [`HANDOVER_UNTIL`], 1 from there
/// out. A disc that is nowhere half its shell (a spheroid's prograde excess, a disc lost in a
/// halo) keeps everything: there is no centre where it is the lesser part.
fn kept_near_centre(mean_p: &[f64]) -> Vec<f64> {
    let until = mean_p
        .iter()
        .position(|&p| p >= HANDOVER_UNTIL)
        .unwrap_or(0);
    mean_p
        .iter()
        .enumerate()
        .map(|(s, &p)| {
            if s < until {
                (p / HANDOVER_UNTIL).min(1.0)
            } else {
                1.0
            }
        })
        .collect()
}

/// The two grid points around `x` in ascending `grid` and the weight of the second (the end
/// point twice, weight 0, beyond either end).
pub(crate) fn bracket(grid: &[f64], x: f64) -> (usize, usize, f64) {
    let last = grid.len() - 1;
    if x <= grid[0] {
        return (0, 0, 0.0);
    }
    if x >= grid[last] {
        return (last, last, 0.0);
    }
    let j = grid.partition_point(|&g| g <= x).min(last);
    let (a, b) = (grid[j - 1], grid[j]);
    let t = if b > a { (x - a) / (b - a) } else { 0.0 };
    (j - 1, j, t)
}

/// Splits the particles at `positions` (kpc) with `velocities` (km/s) and likelihood
/// `weights` into a rotating disc and a non-rotating spheroid (module doc). None when either
/// would hold less than [`MIN_COMPONENT_SHARE`] of the particles: a spheroid without a disc,
/// a disc without a spheroid. Each particle's draw is a hash of its unique identity in `uids`,
/// so the split depends on neither file order nor threads. `ellipsoids`: see
/// [`DiscProbability::fit`].
pub fn split_disc_spheroid(
    positions: &[[f64; 3]],
    velocities: &[[f64; 3]],
    weights: Option<&[f64]>,
    uids: &[u64],
    ellipsoids: bool,
) -> Option<Components> {
    if positions.is_empty() {
        return None;
    }
    let prob = DiscProbability::fit(positions, velocities, weights, ellipsoids);
    let (in_disc, disc_share) = draw_components(&prob, positions, velocities, uids, true)?;
    let (mut disc, mut spheroid) = (Vec::new(), Vec::new());
    for (i, d) in in_disc.into_iter().enumerate() {
        if d {
            disc.push(i);
        } else {
            spheroid.push(i);
        }
    }
    Some(Components {
        disc,
        spheroid,
        disc_share,
        ellipsoid_shells: prob.ellipsoid_shells(),
    })
}

/// Every particle's draw of [`split_disc_spheroid`] (true: disc) with the disc probability
/// fitted on the particles `fit_on` only (indices into `positions`, kpc, and `velocities`,
/// km/s; `weights` and `uids` of all particles). None where the split of `fit_on` alone is
/// None. The phase-space group finder fits on the particles its first pass left smooth, so
/// that a cold stream cannot pass for a disc, and draws for all of them. The draw is of the
/// rotating population, without the central hand-over (module doc): the finder's background
/// models the disc as rings and the spheroid as shells; the hand-over is for the flows.
pub(crate) fn disc_flags(
    positions: &[[f64; 3]],
    velocities: &[[f64; 3]],
    weights: Option<&[f64]>,
    uids: &[u64],
    ellipsoids: bool,
    fit_on: &[usize],
) -> Option<Vec<bool>> {
    let pick = |a: &[[f64; 3]]| fit_on.iter().map(|&i| a[i]).collect::<Vec<_>>();
    let (pos, vel) = (pick(positions), pick(velocities));
    if pos.is_empty() {
        return None;
    }
    let w: Option<Vec<f64>> = weights.map(|w| fit_on.iter().map(|&i| w[i]).collect());
    let ids: Vec<u64> = fit_on.iter().map(|&i| uids[i]).collect();
    let prob = DiscProbability::fit(&pos, &vel, w.as_deref(), ellipsoids);
    draw_components(&prob, &pos, &vel, &ids, false)?;
    draw_components(&prob, positions, velocities, uids, false).map(|(d, _)| d)
}

/// Each particle's component draw under `prob` (true: disc), with the central hand-over if
/// `handed_over`, and the rotating population's mean probability; None when either holds less than
/// [`MIN_COMPONENT_SHARE`].
fn draw_components(
    prob: &DiscProbability,
    positions: &[[f64; 3]],
    velocities: &[[f64; 3]],
    uids: &[u64],
    handed_over: bool,
) -> Option<(Vec<bool>, f64)> {
    let n = positions.len();
    let both: Vec<(f64, f64)> = (0..n)
        .map(|i| prob.rotating_and_kept(positions[i], velocities[i]))
        .collect();
    let disc_share = both.iter().map(|b| b.0).sum::<f64>() / n as f64;
    if !(MIN_COMPONENT_SHARE..=1.0 - MIN_COMPONENT_SHARE).contains(&disc_share) {
        return None;
    }
    let p: Vec<f64> = both
        .iter()
        .map(|&(p, kept)| if handed_over { kept } else { p })
        .collect();
    let in_disc: Vec<bool> = p
        .iter()
        .zip(uids)
        .map(|(&pi, &uid)| ((mix_seed(COMPONENTS, uid) >> 11) as f64 / (1u64 << 53) as f64) < pi)
        .collect();
    let discs = in_disc.iter().filter(|&&d| d).count();
    let share = |k: usize| k as f64 / n as f64;
    if share(discs) < MIN_COMPONENT_SHARE || share(n - discs) < MIN_COMPONENT_SHARE {
        return None;
    }
    Some((in_disc, disc_share))
}
