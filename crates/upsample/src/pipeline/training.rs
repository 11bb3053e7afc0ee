//! Training one cluster: a position flow p_c(x) and a velocity flow conditioned on position
//! p_c(v | x), both 3D with the exact trace (crate `cnf`), on the cluster's training particles
//! (its own plus, for cells, the ghosts of its margin). Positions in kpc, velocities in km/s.

use anyhow::{Context, Result};
use cnf::{Device, Flow, FlowConfig, LrSchedule, TrainConfig};
use rand::RngExt;
use snapio::StarParticles;
use std::collections::BTreeMap;
use std::time::Instant;

use super::holdout::Holdout;
use crate::config::{Config, Weighting};
use crate::decompose::{Cluster, DISC_COMPONENT};
use crate::models::{
    norm, FlowMetrics, LocalDispersion, Member, Origin, RadialProfile, TrainingRecord,
    VelocityContext, EXTENT_MARGIN,
};
use crate::seed::{flow_seed, subset_rng, Role};
use snapio::{FrameOptions, GalaxyFrame};

/// Held-out particles a velocity flow needs for its gain over the local dispersion model to be
/// tested (`training.min_gain_z`); smaller clusters train as before the test existed. The test
/// has little power on fewer: a 14-row piece of stream showed real gains of only 3.0–4.9
/// standard errors, and a 600-particle satellite's position flow failed it.
const MIN_GAIN_TEST_ROWS: usize = 200;

/// Radial bins of the local velocity dispersion profiles (equal counts; fewer for small
/// clusters, at least 50 particles each).
const DISPERSION_BINS: usize = 16;

/// Largest ratio of a cluster's innermost to outermost radius (about the galaxy's centre) for
/// which a cluster that does not surround the centre is still Gaussianised about it
/// ([`gaussianised_about_centre`]): galaxy (b)'s outer disc cells 0.01–0.13, galaxy (c)'s
/// stream pieces and satellite 0.75–0.96.
const REACH_FROM_CENTRE: f64 = 0.25;

/// Flow architecture of a role from the configuration (position: no context; velocity:
/// context = position, 3 coordinates).
pub(crate) fn flow_config(cfg: &Config, role: Role) -> FlowConfig {
    FlowConfig {
        dim: 3,
        context_dim: if role == Role::Velocity { 3 } else { 0 },
        width: cfg.flow.width,
        depth: cfg.flow.depth,
        activation: cfg.flow.activation,
        rk4_steps: cfg.flow.rk4_steps,
        rtol: cfg.flow.rtol,
        atol: cfg.flow.atol,
        compress_data: role == Role::Position && cfg.flow.compress_positions,
        compress_context: role == Role::Velocity && cfg.flow.compress_positions,
        ..FlowConfig::default()
    }
}

/// Epochs of a flow trained on `rows` particles: `training.epochs`, or more for a small cluster
/// so that it takes at least `training.min_steps` optimiser steps.
pub(crate) fn epochs_for(cfg: &Config, rows: usize) -> usize {
    let t = &cfg.training;
    let train_rows = (rows as f64 * (1.0 - t.val_fraction)).ceil() as usize;
    let per_epoch = train_rows.div_ceil(t.batch_size).max(1);
    t.epochs.max(t.min_steps.div_ceil(per_epoch))
}

/// Early-stopping patience of a flow trained on `rows` particles, in epochs: `training.patience`,
/// stretched by the same factor as its epochs (`epochs_for`). Patience is a share of the
/// schedule: a 100-particle piece of stream runs 600 one-step epochs, and 8 of them (8 optimiser
/// steps) stopped such flows after 8–33 epochs, long before the learning rate had decayed.
pub(crate) fn patience_for(cfg: &Config, rows: usize) -> usize {
    let t = &cfg.training;
    let stretch = epochs_for(cfg, rows) as f64 / t.epochs.max(1) as f64;
    (t.patience as f64 * stretch.max(1.0)).ceil() as usize
}

/// Training hyper-parameters of one flow on `rows` particles from the configuration; up to
/// `threads` CPU threads compute the parts of each mini-batch's gradient (0: the backend's
/// default).
pub(crate) fn train_config(cfg: &Config, rows: usize, seed: u64, threads: usize) -> TrainConfig {
    let t = &cfg.training;
    TrainConfig {
        epochs: epochs_for(cfg, rows),
        batch_size: t.batch_size,
        learning_rate: t.learning_rate,
        schedule: LrSchedule::Cosine { min_factor: 0.02 },
        val_fraction: t.val_fraction,
        patience: patience_for(cfg, rows),
        min_epochs: (t.early_stop_from * epochs_for(cfg, rows) as f64).ceil() as usize,
        seed,
        kinetic_reg: t.kinetic_reg,
        jacobian_reg: t.jacobian_reg,
        batch_parts: t.batch_parts,
        threads,
        min_gain_z: t.min_gain_z,
        ..TrainConfig::default()
    }
}

/// The rows cluster `index` trains on: members and ghosts that are not held out, at most `max`
/// of them (a random subset under the job's `seed`, in ascending order) when `max > 0`.
pub(crate) fn training_rows(
    cluster: &Cluster,
    index: usize,
    max: usize,
    seed: u64,
    holdout: &Holdout,
) -> Vec<usize> {
    let mut rows = cluster.training();
    rows.retain(|&i| !holdout.is_held(i));
    if max > 0 && rows.len() > max {
        let mut rng = subset_rng(seed, index);
        // Partial Fisher–Yates: the first `max` entries become a uniform random subset.
        for i in 0..max {
            let j = rng.random_range(i..rows.len());
            rows.swap(i, j);
        }
        rows.truncate(max);
    }
    rows.sort_unstable();
    rows
}

/// Every particle's likelihood weight as configured: its initial mass (Msun), or `None` when
/// every particle counts once.
pub(crate) fn particle_weights(stars: &StarParticles, w: Weighting) -> Option<&[f64]> {
    match w {
        Weighting::Count => None,
        Weighting::InitialMass => Some(&stars.initial_mass),
    }
}

/// The likelihood weights of the training `rows` ([`particle_weights`]), or `None` when every
/// row counts once (by configuration, or because all initial masses are equal, which trains
/// exactly as no weights do).
fn training_weights(stars: &StarParticles, rows: &[usize], w: Weighting) -> Option<Vec<f64>> {
    let all = particle_weights(stars, w)?;
    let m: Vec<f64> = rows.iter().map(|&i| all[i]).collect();
    m.iter().any(|&v| v != m[0]).then_some(m)
}

/// Positions (kpc) and velocities (km/s) of the particles `rows` of `stars`, in that order.
fn phase_space_of(stars: &StarParticles, rows: &[usize]) -> (Vec<[f64; 3]>, Vec<[f64; 3]>) {
    (
        rows.iter().map(|&i| stars.position[i]).collect(),
        rows.iter().map(|&i| stars.velocity[i]).collect(),
    )
}

/// Fewest particles the shrinking spheres keep when they find a cluster's own centre
/// ([`own_origin`]), and the least fraction of its rows.
const OWN_CENTRE_MIN: (usize, f64) = (50, 0.2);

/// A cluster's own frame ([`Cluster::own_frame`]): its centre by shrinking spheres (the
/// galaxy frame's method, down to a fifth of its training rows) and its particles' mean
/// velocity, both in the galaxy frame.
fn own_origin(stars: &StarParticles, rows: &[usize]) -> Result<Origin> {
    let opts = FrameOptions {
        min_stars: OWN_CENTRE_MIN.0,
        min_fraction: OWN_CENTRE_MIN.1,
        min_radius: 0.0,
        velocity_radius: f64::INFINITY,
        angular_momentum_radius: f64::INFINITY,
        ..FrameOptions::default()
    };
    let frame = GalaxyFrame::find(&stars.select(rows), &opts)?;
    Ok(Origin {
        position: frame.center,
        velocity: frame.bulk_velocity,
    })
}

/// The velocity standardisation of each smooth component among `clusters` (by
/// [`Cluster::component`]), fitted on all its cells' members that are not held out: the
/// cells around the centre share it (`[flow] pooled_dispersion`; [`train_cluster`]). Empty
/// when velocities are not standardised or the option is off.
pub(crate) fn pooled_dispersions(
    stars: &StarParticles,
    clusters: &[Cluster],
    cfg: &Config,
    holdout: &Holdout,
) -> Result<BTreeMap<&'static str, LocalDispersion>> {
    let mut pools: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
    if cfg.flow.standardise_velocities && cfg.flow.pooled_dispersion {
        for c in clusters {
            if let Some(name) = c.component {
                let rows = pools.entry(name).or_default();
                rows.extend(c.members.iter().filter(|&&i| !holdout.is_held(i)));
            }
        }
    }
    pools
        .into_iter()
        .map(|(name, mut rows)| {
            // Members of one component's cells are disjoint; sorted, the fit sees the same
            // particles in the same order whatever the cells.
            rows.sort_unstable();
            let (x, v) = phase_space_of(stars, &rows);
            let weights = training_weights(stars, &rows, cfg.training.weighting);
            let fit = LocalDispersion::fit(&x, &v, weights.as_deref(), DISPERSION_BINS)
                .with_context(|| format!("local velocity dispersion of the {name} component"))?;
            Ok((name, fit))
        })
        .collect()
}

/// Whether a cluster's training positions `x` (kpc) are Gaussianised by a radial profile about
/// the galaxy's centre (the frame's origin): those of a cell around the centre (the centre lies
/// inside their bounding box), and those of a cell that reaches from near the centre to the
/// galaxy's outskirts (its innermost position within [`REACH_FROM_CENTRE`] of its outermost
/// radius: the outer cells of a disc). The profile's extent cut then ends the cell where its
/// outermost particle is, as the galaxy does: without it, galaxy (b)'s stars between 16 and 18
/// kpc were 0.42–0.72 of the truth's count and 0.3% of all lay beyond the disc's edge; with it
/// 0.62–1.11 (the particles 0.95–1.03) and none beyond (docs/ACCURACY.md, seventeenth
/// session). A compact cluster far out (a piece of a stream, a satellite: innermost/outermost
/// radius 0.75–0.96 on galaxy (c)) keeps its own coordinates: about the galaxy's centre it
/// would be a thin shell.
fn gaussianised_about_centre(x: &[[f64; 3]]) -> bool {
    let surrounds = (0..3).all(|k| x.iter().any(|p| p[k] < 0.0) && x.iter().any(|p| p[k] > 0.0));
    let (inner, outer) = x
        .iter()
        .map(|&p| norm(p))
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), r| {
            (lo.min(r), hi.max(r))
        });
    surrounds || inner <= REACH_FROM_CENTRE * outer
}

/// The radial profile that Gaussianises a cluster's training positions `x` (kpc, with their
/// likelihood `weights`), fitted on those inside its core cell: the ghosts crowd the cell's
/// faces, which meet near the centre, and would steepen the fitted cusp.
fn radial_profile(
    x: &[[f64; 3]],
    weights: Option<&[f64]>,
    cluster: &Cluster,
) -> Result<RadialProfile> {
    // Cut beyond every training position, ghosts included, so that each maps to a finite y.
    let extent = EXTENT_MARGIN * x.iter().map(|&p| norm(p)).fold(0.0, f64::max);
    let inside: Vec<usize> = (0..x.len())
        .filter(|&i| cluster.core.as_ref().is_none_or(|c| c.contains(&x[i])))
        .collect();
    if inside.len() < 100 {
        return RadialProfile::fit(x, weights, Some(extent));
    }
    let xs: Vec<[f64; 3]> = inside.iter().map(|&i| x[i]).collect();
    let ws: Option<Vec<f64>> = weights.map(|w| inside.iter().map(|&i| w[i]).collect());
    RadialProfile::fit(&xs, ws.as_deref(), Some(extent))
}

/// Whether a flow of `role` on `rows` particles (its data standardised by a local dispersion
/// model when `standardised`) starts from that model unwhitened and must beat it by
/// `training.min_gain_z` standard errors: velocity flows of standardised velocities with at
/// least [`MIN_GAIN_TEST_ROWS`] held-out particles.
fn tests_gain(cfg: &Config, role: Role, standardised: bool, rows: usize) -> bool {
    let held_out = cnf::train::held_out_count(rows, cfg.training.val_fraction);
    role == Role::Velocity && standardised && held_out >= MIN_GAIN_TEST_ROWS
}

/// Where a cluster's flows train: the backend device and the CPU threads each mini-batch may
/// use (0: the backend's default).
#[derive(Clone, Copy)]
pub(crate) struct Compute<'a> {
    /// The backend device.
    pub device: &'a Device,
    /// CPU threads per mini-batch (0: the backend's default).
    pub threads: usize,
}

/// Trains every ensemble member of cluster `index` on `compute` on the particles `rows`
/// ([`training_rows`]). `pooled` is the velocity standardisation of the cluster's component
/// ([`pooled_dispersions`]), used if the cluster lies around the centre.
pub(crate) fn train_cluster(
    stars: &StarParticles,
    cluster: &Cluster,
    index: usize,
    rows: &[usize],
    pooled: Option<&LocalDispersion>,
    cfg: &Config,
    compute: Compute<'_>,
) -> Result<(Vec<Member>, TrainingRecord)> {
    let Compute { device, threads } = compute;
    let t0 = Instant::now();
    let (x, v) = phase_space_of(stars, rows);
    // A compact group learns about its own centre: from here on x and v are in its frame.
    let origin = if cluster.own_frame {
        let o = own_origin(stars, rows)
            .with_context(|| format!("the centre of {} (cluster {index})", cluster.label))?;
        tracing::info!(
            "{} ({index}): trained about its own centre ({:.2}, {:.2}, {:.2}) kpc, mean velocity \
             ({:.1}, {:.1}, {:.1}) km/s",
            cluster.label,
            o.position[0],
            o.position[1],
            o.position[2],
            o.velocity[0],
            o.velocity[1],
            o.velocity[2],
        );
        Some(o)
    } else {
        None
    };
    let (x, v) = match &origin {
        None => (x, v),
        Some(o) => (
            x.iter().map(|&p| o.to_local(p)).collect(),
            v.iter().map(|&u| o.to_local_velocity(u)).collect(),
        ),
    };
    let weights = training_weights(stars, rows, cfg.training.weighting);
    let about_centre = gaussianised_about_centre(&x);
    // What the velocity flow learns: v, or v standardised by the local dispersion: the
    // component's around the centre, where the cells meet, otherwise the cluster's own.
    let dispersion = match (cfg.flow.standardise_velocities, pooled) {
        (false, _) => None,
        (true, Some(d)) if about_centre => {
            tracing::info!(
                "{} ({index}): velocities standardised by its component's shared profiles",
                cluster.label
            );
            Some(d.clone())
        }
        (true, _) => Some(
            LocalDispersion::fit(&x, &v, weights.as_deref(), DISPERSION_BINS).with_context(
                || {
                    format!(
                        "local velocity dispersion of {} (cluster {index})",
                        cluster.label
                    )
                },
            )?,
        ),
    };
    // What the position flow learns: x, or x Gaussianised by a radial profile.
    let radial = if cfg.flow.gaussianise_radii && about_centre {
        Some(
            radial_profile(&x, weights.as_deref(), cluster).with_context(|| {
                format!("radial profile of {} (cluster {index})", cluster.label)
            })?,
        )
    } else {
        None
    };
    let flow_x: Vec<[f64; 3]> = match &radial {
        Some(p) => x.iter().map(|&a| p.gaussianise(a).0).collect(),
        None => x.clone(),
    };
    // What the velocity flow is conditioned on: x, or y(x) where positions are Gaussianised.
    let velocity_context = if cfg.flow.gaussianised_context && radial.is_some() {
        VelocityContext::Gaussianised
    } else {
        VelocityContext::Position
    };
    let context: Vec<f64> = x
        .iter()
        .flat_map(|&p| velocity_context.at(radial.as_ref(), p))
        .collect();
    let flow_v: Vec<[f64; 3]> = match &dispersion {
        Some(d) => x
            .iter()
            .zip(&v)
            .map(|(&a, &b)| d.standardise(a, b).0)
            .collect(),
        None => v.clone(),
    };
    let mut members = Vec::with_capacity(cfg.training.ensemble);
    let mut record = TrainingRecord {
        index,
        position: Vec::new(),
        velocity: Vec::new(),
        seconds: 0.0,
    };
    for m in 0..cfg.training.ensemble {
        let mut fit = |role: Role, data: &[[f64; 3]], ctx: Option<&[f64]>| -> Result<Flow> {
            let name = match role {
                Role::Position => "position",
                Role::Velocity => "velocity",
            };
            let seed = flow_seed(cfg.seed, index, m, role);
            let mut flow_cfg = flow_config(cfg, role);
            // The radial profile has already taken the tails in: no compression on top.
            if role == Role::Position && radial.is_some() {
                flow_cfg.compress_data = false;
                if !cfg.flow.whiten_gaussianised {
                    if cluster.component == Some(DISC_COMPONENT) {
                        // Centred, and scaled along the disc's normal (the frame's z) only.
                        flow_cfg.scale_only_axes = vec![2];
                    } else {
                        flow_cfg.whiten_data = false;
                    }
                }
            }
            if role == Role::Velocity && velocity_context == VelocityContext::Gaussianised {
                flow_cfg.compress_context = false;
            }
            let mut train_cfg = train_config(cfg, data.len(), seed, threads);
            // Standardised velocities are N(0, I) where the local dispersion fits: where the
            // held-out particles can test it, that is the start, and the flow must beat it by
            // `min_gain_z` standard errors to replace it. A cluster-wide whitening would start
            // every place from the cluster's pooled moments instead (a few % off the local ones
            // in a disc cell that spans the cusp and the edge), and training that cannot beat
            // the start significantly draws the optimiser's noise. Elsewhere (positions, and
            // small clusters whose few held-out particles could not tell a real gain: a stream's
            // piece, a satellite) flows start from the pooled moments and any gain counts.
            if tests_gain(cfg, role, dispersion.is_some(), data.len()) {
                flow_cfg.whiten_data = false;
            } else {
                train_cfg.min_gain_z = 0.0;
            }
            let (flow, report) = Flow::fit_weighted(
                data,
                ctx,
                weights.as_deref(),
                &flow_cfg,
                &train_cfg,
                device,
                |r| {
                    tracing::info!(
                        "{} ({}) {name} flow{}: epoch {}/{} train NLL {:.4} held-out {:.4} (best {:.4}), {:.0} samples/s",
                        cluster.label,
                        index,
                        if cfg.training.ensemble > 1 { format!(" member {m}") } else { String::new() },
                        r.epoch + 1,
                        r.epochs,
                        r.train_nll,
                        r.val_nll,
                        r.best_val_nll,
                        r.samples_per_s
                    )
                },
            )
            .with_context(|| {
                format!(
                    "training the {name} flow of {} (cluster {index}, {} particles)",
                    cluster.label,
                    data.len()
                )
            })?;
            let metrics = FlowMetrics::from(&report);
            if metrics.kept_start {
                let by = match train_cfg.min_gain_z {
                    z if z > 0.0 => format!(" by {z} standard errors"),
                    _ => String::new(),
                };
                tracing::info!(
                    "{} ({}) {name} flow: no epoch beat its start{by} on the held-out \
                     particles; kept the start",
                    cluster.label,
                    index,
                );
            }
            match role {
                Role::Position => record.position.push(metrics),
                Role::Velocity => record.velocity.push(metrics),
            }
            Ok(flow)
        };
        let position = fit(Role::Position, &flow_x, None)?;
        let velocity = fit(Role::Velocity, &flow_v, Some(&context))?;
        members.push(Member {
            position,
            velocity,
            dispersion: dispersion.clone(),
            radial: radial.clone(),
            context: velocity_context,
            origin,
        });
    }
    record.seconds = t0.elapsed().as_secs_f64();
    Ok((members, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decompose::decompose_smooth;
    use crate::models::test_spheres::{hernquist_radius, isotropic_sphere, star_particles};

    /// σ_r of a standardisation at radius `r` (kpc, on the z axis, where no rotation enters).
    fn sigma_r_at(d: &LocalDispersion, r: f64) -> f64 {
        1.0 / d.standardise([0.0, 0.0, r], [0.0, 0.0, 1.0]).0[2]
    }

    /// The eight cells around a galaxy's centre share their component's fit: on an isotropic
    /// Hernquist sphere (a = 2 kpc, σ rising into the cusp, 96 000 particles) the shared σ_r
    /// at 0.6–4.5 scale radii is within 0.3% of the truth (rms of ln σ_r over the cells and
    /// radii), the cells' own fits, each on its octant and a ghost margin, 1.2%. (Inside ~0.5
    /// scale radii the margins hold the whole cusp, and the two agree: 1.2–1.8% each, this
    /// sphere's own noise.) Off, nothing is pooled.
    #[test]
    fn cells_around_the_centre_share_their_components_dispersion() {
        let (a, gm) = (2.0, 43_000.0);
        let sigma =
            |r: f64| (gm / (6.0 * a) * (r / (r + a)).sqrt() * (1.0 + r / a).min(1.5)).sqrt();
        let (x, v) = isotropic_sphere(7, 96_000, |u| hernquist_radius(a, u), sigma);
        let n = x.len();
        let stars = star_particles(x, v, vec![1e4; n]);
        let mut cfg = Config::default();
        let all: Vec<usize> = (0..n).collect();
        let (x, v) = (&stars.position, &stars.velocity);
        let cells = decompose_smooth(x, v, &all, 8, cfg.clusters.margin, None).unwrap();
        assert!(cells.iter().all(|c| c.component == Some("smooth")));
        let holdout = Holdout::new(&stars, &cfg);
        let pooled = pooled_dispersions(&stars, &cells, &cfg, &holdout).unwrap();
        let shared = &pooled["smooth"];
        let radii = [1.2, 1.8, 2.7, 4.0, 6.0, 9.0];
        let err = |d: &LocalDispersion, r: f64| (sigma_r_at(d, r) / sigma(r)).ln();
        let (mut own, mut common) = (0.0, 0.0);
        for (k, c) in cells.iter().enumerate() {
            let rows = training_rows(c, k, 0, cfg.seed, &holdout);
            let (xs, vs) = phase_space_of(&stars, &rows);
            assert!(gaussianised_about_centre(&xs), "cell {k}");
            let fit = LocalDispersion::fit(&xs, &vs, None, DISPERSION_BINS).unwrap();
            for &r in &radii {
                own += err(&fit, r).powi(2);
                common += err(shared, r).powi(2);
            }
        }
        let n = (cells.len() * radii.len()) as f64;
        let (own, common) = ((own / n).sqrt(), (common / n).sqrt());
        eprintln!("rms error of ln sigma_r: own fits {own:.4}, shared {common:.4}");
        assert!(
            common < 0.4 * own && common < 0.005,
            "own {own}, shared {common}"
        );
        cfg.flow.pooled_dispersion = false;
        assert!(pooled_dispersions(&stars, &cells, &cfg, &holdout)
            .unwrap()
            .is_empty());
    }

    /// The gain test applies to standardised velocity flows with 200 held-out particles (2 000
    /// rows at the default 10%), never to positions, raw velocities or smaller clusters.
    #[test]
    fn gain_test_needs_standardised_velocities_and_enough_held_out_particles() {
        let cfg = Config::default();
        assert!(tests_gain(&cfg, Role::Velocity, true, 2_000));
        assert!(!tests_gain(&cfg, Role::Velocity, true, 1_990));
        assert!(!tests_gain(&cfg, Role::Velocity, false, 100_000));
        assert!(!tests_gain(&cfg, Role::Position, true, 100_000));
    }

    /// Gaussianised about the centre: a cell around it, an outer disc wedge from 2 to 18 kpc
    /// (inner/outer 0.11); not a clump 13–14 kpc out (0.93).
    #[test]
    fn cells_reaching_from_the_centre_are_gaussianised_about_it() {
        let ring = |r0: f64, r1: f64, phi0: f64, phi1: f64, z: f64| -> Vec<[f64; 3]> {
            (0..200)
                .map(|k| {
                    let u = (k as f64 + 0.5) / 200.0;
                    let (r, phi) = (r0 + (r1 - r0) * u, phi0 + (phi1 - phi0) * (1.0 - u));
                    [r * phi.cos(), r * phi.sin(), z * (2.0 * u - 1.0)]
                })
                .collect()
        };
        let around: Vec<[f64; 3]> = ring(0.1, 5.0, -0.3, 1.8, 0.5);
        assert!(gaussianised_about_centre(&around));
        let wedge = ring(2.0, 18.0, 0.2, 1.4, 0.3);
        assert!(!wedge.iter().any(|p| p[0] < 0.0 || p[1] < 0.0));
        assert!(gaussianised_about_centre(&wedge));
        let clump = ring(13.0, 14.0, 0.6, 0.7, 0.2);
        assert!(!gaussianised_about_centre(&clump));
    }

    /// The default schedule's numbers with `epochs` epochs: batches of 512, 10% held out,
    /// `min_steps` 600, patience 8, early stopping from half the schedule.
    fn schedule(epochs: usize) -> Config {
        let mut cfg = Config::default();
        let t = &mut cfg.training;
        t.epochs = epochs;
        t.batch_size = 512;
        t.val_fraction = 0.1;
        t.min_steps = 600;
        t.patience = 8;
        t.early_stop_from = 0.5;
        cfg
    }

    #[test]
    fn small_clusters_get_at_least_min_steps() {
        let mut cfg = schedule(30);
        // Off: every cluster runs `epochs`.
        cfg.training.min_steps = 0;
        assert_eq!(epochs_for(&cfg, 1502), 30);
        cfg.training.min_steps = 600;
        // 1352 training rows: 3 batches per epoch, 200 epochs for 600 steps.
        assert_eq!(epochs_for(&cfg, 1502), 200);
        // A 100-particle piece of stream: one batch per epoch.
        assert_eq!(epochs_for(&cfg, 100), 600);
        // A big cell already takes 46 x 30 = 1380 steps.
        assert_eq!(epochs_for(&cfg, 26_000), 30);
    }

    #[test]
    fn patience_stretches_with_the_schedule() {
        let mut cfg = schedule(40);
        // A big cell: unchanged.
        assert_eq!(patience_for(&cfg, 26_000), 8);
        // The satellite: 200 epochs of 3 steps, 5x the schedule, 40 epochs of patience.
        assert_eq!(patience_for(&cfg, 1502), 40);
        // A piece of stream: 600 one-step epochs, 15x, 120 epochs (= steps) of patience.
        assert_eq!(patience_for(&cfg, 100), 120);
        cfg.training.min_steps = 0;
        assert_eq!(patience_for(&cfg, 100), 8);
    }

    #[test]
    fn early_stopping_waits_for_a_share_of_the_schedule() {
        let mut cfg = schedule(40);
        let min_epochs = |cfg: &Config, rows| train_config(cfg, rows, 1, 1).min_epochs;
        assert_eq!(min_epochs(&cfg, 26_000), 20);
        // The satellite's stretched schedule of 200 epochs: its first half.
        assert_eq!(min_epochs(&cfg, 1502), 100);
        cfg.training.early_stop_from = 0.0;
        assert_eq!(min_epochs(&cfg, 26_000), 0);
        cfg.training.early_stop_from = 1.0;
        assert_eq!(min_epochs(&cfg, 26_000), 40);
    }
}
