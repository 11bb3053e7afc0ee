//! The flow method's fidelity report (issue 12): which particles no flow ever sees, each
//! cluster's figures against its held-out members, and the run's figures pooled from the
//! clusters' samples at merge time (so a sharded run gets them without re-reading the snapshot).
//!
//! Per cluster: the reference is its held-out members (at most `fidelity.max_points`, a seeded
//! subset); the stars are as many fresh draws from the cluster's flows, drawn as its catalogue
//! stars are (core rejection, ensemble members in turn) but before any IMF or lifetime cut; the
//! training set is what its flows trained on. Stars follow the particles' initial *mass*: where
//! masses differ, the shells and the smoothness figures weigh each held-out particle by its
//! mass, and the two-sample statistic compares with every one of them given the local mean
//! mass of the training particles at each point ([`two_sample_mass_weighted`]). The samples,
//! with their nearest-training distances and local masses, are kept in
//! `parts/cluster_NNNN.fidelity_{stars,reference}.hdf5` (the reference a subset thinned ∝ mass
//! where masses differ, what the statistic compared with before local masses were kept, and
//! still does for parts without them) and `…fidelity_reference_weighted.hdf5` (every held-out
//! particle with its mass, where masses differ).
//!
//! [`two_sample_mass_weighted`]: crate::fidelity::two_sample_mass_weighted

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use snapio::{read_table, write_table, StarParticles, TableColumn, TableValues};
use std::path::Path;

use super::run_dir::{ClusterReport, RunPaths};
use crate::config::Config;
use crate::decompose::Cluster;
use crate::fidelity::{
    evaluate_against, local_mass, masses_differ, nearest_distances, pool_counts, subsample,
    Fidelity, FidelityConfig, LocalMass, NearestDistances, PhaseSpace, ShellConfig,
    SmoothnessConfig, TwoSampleConfig, LOCAL_MASS_NEIGHBOURS,
};
use crate::seed::{fidelity_seed, held_out, mix_seed};
use crate::stars::{draw_phase_sample, PhaseSampler};

/// Fewest held-out particles a cluster needs for its figures (fewer: no figures, a warning).
const MIN_REFERENCE: usize = 50;

/// Which particles are held out of every flow's training.
#[derive(Debug, Clone)]
pub(crate) struct Holdout {
    held: Vec<bool>,
    /// The run's seed.
    seed: u64,
    /// `fidelity.max_points` and `fidelity.shells`.
    max_points: usize,
    shells: usize,
    /// The mean initial mass of the run's particles, Msun (sizes the clusters' star samples).
    mean_mass: f64,
}

impl Holdout {
    /// The held-out particles of `stars` under the run's seed and `fidelity.holdout_fraction`.
    pub(crate) fn new(stars: &StarParticles, cfg: &Config) -> Holdout {
        let f = cfg.fidelity.holdout_fraction;
        Holdout {
            held: (0..stars.len())
                .map(|i| f > 0.0 && held_out(cfg.seed, stars.uid(i), f))
                .collect(),
            seed: cfg.seed,
            max_points: cfg.fidelity.max_points,
            shells: cfg.fidelity.shells,
            mean_mass: mean(&stars.initial_mass),
        }
    }

    /// Whether particle `i` is held out.
    pub(crate) fn is_held(&self, i: usize) -> bool {
        self.held[i]
    }

    /// Whether any particle is held out (the report is on).
    pub(crate) fn active(&self) -> bool {
        self.held.iter().any(|&h| h)
    }
}

/// The mean of `values` (0 when empty).
fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Stars a cluster draws for its figures: as many as its `held` reference rows, times its
/// particles' mean initial mass over the run's (`cluster_mean / run_mean`) where that is above
/// 1, at most `max`. The run pools stars ∝ the clusters' initial mass, so a cluster heavier per
/// particle than the run's mean needs that many for the pool to match every held-out particle.
fn star_sample_size(held: usize, cluster_mean: f64, run_mean: f64, max: usize) -> usize {
    let ratio = cluster_mean / run_mean;
    if !(ratio.is_finite() && ratio > 1.0) {
        return held;
    }
    ((held as f64 * ratio).round() as usize).clamp(held, max.max(held))
}

/// The fidelity configuration of one sample (at most `max_points` points, `shells` shells
/// spanning the reference's radii).
fn fidelity_config(
    max_points: usize,
    shells: usize,
    reference: &[[f64; 3]],
    seed: u64,
) -> FidelityConfig {
    FidelityConfig {
        two_sample: TwoSampleConfig {
            max_per_sample: max_points,
            seed: mix_seed(seed, 1),
            ..TwoSampleConfig::default()
        },
        smoothness: SmoothnessConfig {
            max_points,
            seed: mix_seed(seed, 2),
        },
        shells: ShellConfig {
            seed: mix_seed(seed, 3),
            ..ShellConfig::spanning(reference, shells, 0.01, 0.99)
        },
    }
}

/// A cluster's held-out reference, as rows of the particles.
struct ReferenceRows {
    /// At most `max` of its held-out members (a seeded subset, in particle order): the shell
    /// profiles' reference (and, when `weighted`, the smoothness one), each weighing its
    /// initial mass when `weighted`.
    all: Vec<usize>,
    /// Those of `all` kept with probability m / m_max of their initial mass, a sample of the
    /// mass density the stars follow (every one of `all` when masses are equal): the
    /// reference of the unweighted two-sample statistic (and the smoothness one when not
    /// `weighted`).
    thinned: Vec<usize>,
    /// Whether the initial masses of `all` differ ([`masses_differ`]).
    weighted: bool,
}

/// A cluster's held-out reference (see [`ReferenceRows`]).
fn reference_rows(
    parents: &StarParticles,
    cluster: &Cluster,
    holdout: &Holdout,
    max: usize,
    seed: u64,
) -> ReferenceRows {
    let mut rng = StdRng::seed_from_u64(mix_seed(seed, 4));
    let held: Vec<usize> = cluster
        .members
        .iter()
        .copied()
        .filter(|&i| holdout.is_held(i))
        .collect();
    // A uniform subset of at most `max`, in particle order.
    let all: Vec<usize> = subsample(held.len(), max, mix_seed(seed, 6))
        .into_iter()
        .map(|k| held[k])
        .collect();
    let mass: Vec<f64> = all.iter().map(|&i| parents.initial_mass[i]).collect();
    let m_max = mass.iter().copied().fold(0.0, f64::max);
    let thinned: Vec<usize> = all
        .iter()
        .zip(&mass)
        .filter(|&(_, &m)| rng.random::<f64>() * m_max <= m)
        .map(|(&i, _)| i)
        .collect();
    let weighted = masses_differ(&mass);
    ReferenceRows {
        all,
        thinned,
        weighted,
    }
}

/// Cluster `index`'s fidelity figures: fresh draws from its flows `members` against its
/// held-out members, `training` the rows its flows trained on; the samples are written to
/// `paths.fidelity_samples(index)` (and, where masses differ,
/// `paths.fidelity_profile_reference(index)`). `None` (with a warning) when it has too few
/// held-out members.
pub(crate) fn cluster_fidelity<S: PhaseSampler>(
    parents: &StarParticles,
    cluster: &Cluster,
    index: usize,
    members: &[S],
    training: &[usize],
    holdout: &Holdout,
    paths: &RunPaths,
) -> Result<Option<Fidelity>> {
    let seed = fidelity_seed(holdout.seed, index);
    let rows = reference_rows(parents, cluster, holdout, holdout.max_points, seed);
    if rows.all.len() < MIN_REFERENCE {
        tracing::warn!(
            "{} (cluster {index}): {} held-out particles, fewer than {MIN_REFERENCE}: no \
             fidelity figures (raise fidelity.holdout_fraction)",
            cluster.label,
            rows.all.len(),
        );
        return Ok(None);
    }
    let pick = |r: &[usize]| Sample {
        position: r.iter().map(|&i| parents.position[i]).collect(),
        velocity: r.iter().map(|&i| parents.velocity[i]).collect(),
        ..Sample::default()
    };
    let mut reference = pick(&rows.thinned);
    let mut profile_reference = pick(&rows.all);
    if rows.weighted {
        profile_reference.mass = rows.all.iter().map(|&i| parents.initial_mass[i]).collect();
    }
    let trained = Sample {
        mass: training.iter().map(|&i| parents.initial_mass[i]).collect(),
        ..pick(training)
    };
    // As many stars as the profiles' reference has particles, more in a cluster heavier per
    // particle than the run (the unweighted two-sample statistic takes as many of them as its
    // reference has; the weighted one takes them all).
    let cluster_mass: Vec<f64> = cluster
        .members
        .iter()
        .map(|&i| parents.initial_mass[i])
        .collect();
    let n_stars = star_sample_size(
        rows.all.len(),
        mean(&cluster_mass),
        holdout.mean_mass,
        holdout.max_points,
    );
    let (sx, sv) = draw_phase_sample(cluster, index, members, n_stars, mix_seed(seed, 5))?;
    let mut stars = Sample {
        position: sx,
        velocity: sv,
        ..Sample::default()
    };
    let config = fidelity_config(
        holdout.max_points,
        holdout.shells,
        &profile_reference.position,
        seed,
    );
    let context = || format!("fidelity figures of {} (cluster {index})", cluster.label);
    // The local mean mass at each star and held-out particle (kept for the run's figures, which
    // weigh where any cluster's masses differ). Equal masses: their mean everywhere, no search.
    if rows.weighted {
        let local = |set: &Sample| {
            local_mass(
                set.phase_space(),
                trained.phase_space(),
                LOCAL_MASS_NEIGHBOURS,
            )
            .with_context(context)
        };
        stars.local_mass = local(&stars)?;
        profile_reference.local_mass = local(&profile_reference)?;
    } else {
        let m = mean(&trained.mass);
        stars.local_mass = vec![m; stars.position.len()];
        reference.local_mass = vec![m; reference.position.len()];
    }
    // Smoothness weighs, as the shells do, every held-out particle where masses differ.
    let distances = nearest_distances(
        stars.phase_space(),
        if rows.weighted {
            profile_reference.phase_space()
        } else {
            reference.phase_space()
        },
        trained.phase_space(),
        &config.smoothness,
    )
    .with_context(context)?;
    let fidelity = evaluate_against(
        stars.phase_space(),
        reference.phase_space(),
        profile_reference.phase_space(),
        rows.weighted.then(|| LocalMass {
            stars: &stars.local_mass,
            reference: &profile_reference.local_mass,
        }),
        &distances,
        &config,
    )
    .with_context(context)?;
    let (star_file, reference_file) = paths.fidelity_samples(index);
    stars.distance.clone_from(&distances.stars);
    if rows.weighted {
        profile_reference.distance.clone_from(&distances.reference);
    } else {
        reference.distance.clone_from(&distances.reference);
    }
    write_sample(&star_file, &stars, distances.n_training)?;
    write_sample(&reference_file, &reference, distances.n_training)?;
    if rows.weighted {
        write_sample(
            &paths.fidelity_profile_reference(index),
            &profile_reference,
            distances.n_training,
        )?;
    }
    Ok(Some(fidelity))
}

/// A fidelity sample on disk: positions, velocities and, where measured or weighted,
/// nearest-training distances and initial masses (empty when not).
#[derive(Default, Clone)]
struct Sample {
    /// Positions, kpc (galaxy frame).
    position: Vec<[f64; 3]>,
    /// Velocities, km/s (galaxy frame).
    velocity: Vec<[f64; 3]>,
    /// 6D distance to the nearest training particle (standardised units); empty: none.
    distance: Vec<f64>,
    /// Initial masses, Msun (the profiles' weights); empty: every point weighs the same.
    mass: Vec<f64>,
    /// Local mean initial mass of the training particles, Msun ([`local_mass`]); empty: not
    /// measured.
    local_mass: Vec<f64>,
}

impl Sample {
    /// The sample as a [`PhaseSpace`], weighted by its masses when it has them.
    fn phase_space(&self) -> PhaseSpace<'_> {
        PhaseSpace {
            mass: (!self.mass.is_empty()).then_some(self.mass.as_slice()),
            ..PhaseSpace::new(&self.position, &self.velocity)
        }
    }
}

/// Writes one fidelity sample (atomically).
fn write_sample(path: &Path, sample: &Sample, n_training: usize) -> Result<()> {
    let column = TableColumn::new;
    let mut columns = vec![
        column(
            "position",
            "kpc",
            "galaxy frame",
            TableValues::Float3(sample.position.clone()),
        ),
        column(
            "velocity",
            "km/s",
            "galaxy frame",
            TableValues::Float3(sample.velocity.clone()),
        ),
    ];
    // The optional per-point columns, where measured.
    for (name, unit, meaning, values) in [
        (
            "nearest_training_distance",
            "dimensionless",
            "6D distance to the nearest training particle, axes divided by the held-out \
             particles' robust spreads",
            &sample.distance,
        ),
        (
            "initial_mass",
            "Msun",
            "the particle's initial mass, its weight in the shell profiles",
            &sample.mass,
        ),
        (
            "local_mass",
            "Msun",
            "mean initial mass of the nearest training particles in 6D: up to a constant, the \
             stars' density over the particles' number density here",
            &sample.local_mass,
        ),
    ] {
        if !values.is_empty() {
            columns.push(column(
                name,
                unit,
                meaning,
                TableValues::Float(values.clone()),
            ));
        }
    }
    write_table(
        path,
        &columns,
        &[(
            "n_training".into(),
            snapio::AttrValue::Int(n_training as i64),
        )],
    )
    .with_context(|| format!("writing the fidelity sample {}", path.display()))
}

/// Reads a sample written by [`write_sample`].
fn read_sample(path: &Path) -> Result<Sample> {
    let mut s = Sample::default();
    for c in read_table(path).with_context(|| format!("fidelity sample {}", path.display()))? {
        match (c.name.as_str(), c.values) {
            ("position", TableValues::Float3(v)) => s.position = v,
            ("velocity", TableValues::Float3(v)) => s.velocity = v,
            ("nearest_training_distance", TableValues::Float(v)) => s.distance = v,
            ("initial_mass", TableValues::Float(v)) => s.mass = v,
            ("local_mass", TableValues::Float(v)) => s.local_mass = v,
            (name, _) => anyhow::bail!(
                "{}: unexpected dataset {name} (expected position, velocity, \
                 nearest_training_distance, initial_mass, local_mass)",
                path.display()
            ),
        }
    }
    let n = s.position.len();
    let fits = |v: &[f64]| v.is_empty() || v.len() == n;
    if s.velocity.len() != n || !fits(&s.distance) || !fits(&s.mass) || !fits(&s.local_mass) {
        anyhow::bail!(
            "{}: datasets of different lengths: the file is damaged; delete the cluster's part \
             files and resume",
            path.display()
        );
    }
    Ok(s)
}

/// The run's fidelity figures, pooled from the clusters that have them: each cluster enters
/// with a share of the pooled stars and references proportional to its particles' initial mass
/// (what its stars are drawn from). Where some cluster's masses differ, the shells' reference
/// pools every row of the clusters' weighted profile references (up to `max_points`; a cluster
/// without one enters with its reference at equal weights), each row weighing its initial mass
/// scaled so that a cluster's rows weigh its particles' initial mass in all; the smoothness
/// figures pool the same way. `None` when no cluster has figures.
pub(crate) fn run_fidelity(
    paths: &RunPaths,
    clusters: &[ClusterReport],
    cfg: &Config,
) -> Result<Option<Fidelity>> {
    let with: Vec<&ClusterReport> = clusters.iter().filter(|c| c.fidelity.is_some()).collect();
    if with.is_empty() {
        return Ok(None);
    }
    let mut stars = Vec::with_capacity(with.len());
    let mut references = Vec::with_capacity(with.len());
    let mut profile_references = Vec::with_capacity(with.len());
    for c in &with {
        let (s, r) = paths.fidelity_samples(c.record.index);
        stars.push(read_sample(&s)?);
        references.push(read_sample(&r)?);
        let w = paths.fidelity_profile_reference(c.record.index);
        profile_references.push(if w.exists() {
            Some(read_sample(&w)?)
        } else {
            None
        });
    }
    let weights: Vec<f64> = with
        .iter()
        .map(|c| c.stars.particle_initial_mass_msun)
        .collect();
    let n_training: Vec<usize> = with
        .iter()
        .map(|c| c.fidelity.as_ref().map_or(0, |f| f.smoothness.n_training))
        .collect();
    let pooled = Pooled {
        stars: &stars,
        references: &references,
        profile_references: &profile_references,
        weights: &weights,
        n_training: &n_training,
    };
    pooled
        .fidelity(cfg)
        .context("the run's fidelity figures")
        .map(Some)
}

/// The clusters' fidelity samples, read back for the run's figures.
struct Pooled<'a> {
    /// Each cluster's star sample.
    stars: &'a [Sample],
    /// Each cluster's (thinned) reference.
    references: &'a [Sample],
    /// Each cluster's weighted profile reference, where its masses differ.
    profile_references: &'a [Option<Sample>],
    /// Each cluster's particles' initial mass, Msun (its share of the pooled samples).
    weights: &'a [f64],
    /// Each cluster's training particles.
    n_training: &'a [usize],
}

impl Pooled<'_> {
    /// The run's fidelity figures (see [`run_fidelity`]).
    fn fidelity(&self, cfg: &Config) -> Result<Fidelity, crate::fidelity::FidelityError> {
        let (stars, references, profile_references, weights) = (
            self.stars,
            self.references,
            self.profile_references,
            self.weights,
        );
        let seed = fidelity_seed(cfg.seed, usize::MAX);
        // A pooled sample, its rows weighted (see above) when `weighted`.
        let pool = |samples: &[&Sample], stream: u64, weighted: bool| {
            let lens: Vec<usize> = samples.iter().map(|s| s.position.len()).collect();
            // Unweighted, a cluster's rows are its share; weighted, its weights are, and every
            // cluster gives the same fraction of its rows (all of them, up to max_points).
            let shares: Vec<f64> = if weighted {
                lens.iter().map(|&n| n as f64).collect()
            } else {
                weights.to_vec()
            };
            let counts = pool_counts(&lens, &shares, cfg.fidelity.max_points);
            let mut out = Sample::default();
            for (c, (s, &k)) in samples.iter().zip(&counts).enumerate() {
                let rows = subsample(s.position.len(), k, mix_seed(seed, stream + c as u64 * 2));
                let mass = |i: usize| s.mass.get(i).copied().unwrap_or(1.0);
                let scale = weights[c] / rows.iter().map(|&i| mass(i)).sum::<f64>();
                for i in rows {
                    out.position.push(s.position[i]);
                    out.velocity.push(s.velocity[i]);
                    if weighted {
                        out.mass.push(mass(i) * scale);
                    }
                    out.local_mass.extend(s.local_mass.get(i));
                }
            }
            // Local masses only where every row has one (parts written before them lack it).
            if out.local_mass.len() != out.position.len() {
                out.local_mass.clear();
            }
            out
        };
        let pooled_stars = pool(&stars.iter().collect::<Vec<_>>(), 10, false);
        let pooled_reference = pool(&references.iter().collect::<Vec<_>>(), 11, false);
        let pooled_profile_reference = profile_references.iter().any(Option::is_some).then(|| {
            let sets: Vec<&Sample> = profile_references
                .iter()
                .zip(references)
                .map(|(w, r)| w.as_ref().unwrap_or(r))
                .collect();
            pool(&sets, 12, true)
        });
        let profile_reference = pooled_profile_reference
            .as_ref()
            .unwrap_or(&pooled_reference);
        // Held-out distances: the weighted profile reference's where a cluster has one.
        let sets: Vec<NearestDistances> = stars
            .iter()
            .zip(references.iter().zip(profile_references))
            .zip(self.n_training)
            .map(|((s, (r, w)), &n_training)| {
                let held = w.as_ref().unwrap_or(r);
                NearestDistances {
                    stars: s.distance.clone(),
                    reference: held.distance.clone(),
                    reference_weight: held.mass.clone(),
                    n_training,
                }
            })
            .collect();
        let distances = NearestDistances::pool(&sets.iter().collect::<Vec<_>>(), weights);
        let config = fidelity_config(
            cfg.fidelity.max_points,
            cfg.fidelity.shells,
            &profile_reference.position,
            seed,
        );
        // Mass-weighted two-sample statistic where masses differ and every row has its local
        // mass; parts without them compare with the thinned references, as before.
        let local = pooled_profile_reference.as_ref().and_then(|r| {
            (!r.local_mass.is_empty() && !pooled_stars.local_mass.is_empty()).then(|| LocalMass {
                stars: &pooled_stars.local_mass,
                reference: &r.local_mass,
            })
        });
        evaluate_against(
            pooled_stars.phase_space(),
            pooled_reference.phase_space(),
            profile_reference.phase_space(),
            local,
            &distances,
            &config,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::test_spheres::star_particles;
    use rand_distr::{Distribution, StandardNormal};

    /// Draws from an isotropic Gaussian galaxy: positions σ `sx` kpc, velocities σ `sv` km/s.
    struct Gaussian {
        sx: f64,
        sv: f64,
    }

    fn normal3(rng: &mut StdRng, s: f64) -> [f64; 3] {
        std::array::from_fn(|_| {
            let g: f64 = StandardNormal.sample(&mut *rng);
            s * g
        })
    }

    impl PhaseSampler for Gaussian {
        fn positions(&self, n: usize, seed: u64) -> Result<Vec<[f64; 3]>> {
            let mut rng = StdRng::seed_from_u64(seed);
            Ok((0..n).map(|_| normal3(&mut rng, self.sx)).collect())
        }
        fn velocities(&self, x: &[[f64; 3]], seed: u64) -> Result<Vec<[f64; 3]>> {
            let mut rng = StdRng::seed_from_u64(seed);
            Ok(x.iter().map(|_| normal3(&mut rng, self.sv)).collect())
        }
    }

    /// Stars spawned around training particles (the kernel method's defect).
    struct Huddled<'a> {
        particles: &'a StarParticles,
        rows: Vec<usize>,
    }

    impl PhaseSampler for Huddled<'_> {
        fn positions(&self, n: usize, seed: u64) -> Result<Vec<[f64; 3]>> {
            let mut rng = StdRng::seed_from_u64(seed);
            Ok((0..n)
                .map(|_| {
                    let p =
                        self.particles.position[self.rows[rng.random_range(0..self.rows.len())]];
                    let d = normal3(&mut rng, 0.03);
                    std::array::from_fn(|k| p[k] + d[k])
                })
                .collect())
        }
        fn velocities(&self, x: &[[f64; 3]], _seed: u64) -> Result<Vec<[f64; 3]>> {
            // The velocity of the particle each position was spawned around (nearest).
            Ok(x.iter()
                .map(|p| {
                    let i = self
                        .rows
                        .iter()
                        .copied()
                        .min_by(|&a, &b| {
                            let d = |i: usize| {
                                (0..3)
                                    .map(|k| (self.particles.position[i][k] - p[k]).powi(2))
                                    .sum::<f64>()
                            };
                            d(a).total_cmp(&d(b))
                        })
                        .unwrap();
                    self.particles.velocity[i]
                })
                .collect())
        }
    }

    /// `n` particles of a Gaussian galaxy (σ 1 kpc, 50 km/s); with `weighted`, particle
    /// masses ∝ exp(−r²/2 (1/0.7² − 1)), so the *mass* density is a Gaussian of σ 0.7 kpc.
    fn galaxy(n: usize, weighted: bool) -> StarParticles {
        let mut rng = StdRng::seed_from_u64(11);
        let (mut x, mut v, mut m) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let p = normal3(&mut rng, 1.0);
            let r2: f64 = p.iter().map(|c| c * c).sum();
            m.push(if weighted {
                (-0.5 * r2 * (1.0 / 0.49 - 1.0)).exp()
            } else {
                1.0
            });
            x.push(p);
            v.push(normal3(&mut rng, 50.0));
        }
        star_particles(x, v, m)
    }

    fn setup(
        p: &StarParticles,
    ) -> (
        Config,
        Cluster,
        Holdout,
        Vec<usize>,
        tempfile::TempDir,
        RunPaths,
    ) {
        let cfg = Config::default();
        let cluster = Cluster {
            label: "all".into(),
            members: (0..p.len()).collect(),
            ghosts: Vec::new(),
            core: None,
            component: None,
            own_frame: false,
        };
        let holdout = Holdout::new(p, &cfg);
        // What `training::training_rows` gives without a subset: the members not held out.
        let training: Vec<usize> = (0..p.len()).filter(|&i| !holdout.is_held(i)).collect();
        let dir = tempfile::tempdir().unwrap();
        let paths = RunPaths {
            snapshot: dir.path().join("snap.hdf5"),
            out: dir.path().to_path_buf(),
        };
        std::fs::create_dir_all(paths.parts()).unwrap();
        (cfg, cluster, holdout, training, dir, paths)
    }

    #[test]
    fn held_out_particles_never_train_and_are_the_reference() {
        let p = galaxy(20_000, false);
        let (cfg, cluster, holdout, training, _dir, _paths) = setup(&p);
        let held = (0..p.len()).filter(|&i| holdout.is_held(i)).count();
        assert!((held as f64 - 2000.0).abs() < 200.0, "{held} held out");
        assert!(training.iter().all(|&i| !holdout.is_held(i)));
        assert_eq!(training.len() + held, p.len());
        let rows = reference_rows(&p, &cluster, &holdout, cfg.fidelity.max_points, 1);
        assert_eq!(rows.all.len(), held);
        assert_eq!(
            rows.thinned, rows.all,
            "equal masses: every held-out particle"
        );
        assert!(!rows.weighted);
        assert!(rows.all.iter().all(|&i| holdout.is_held(i)));
    }

    #[test]
    fn the_report_passes_a_faithful_sampler_and_catches_a_huddled_one() {
        let p = galaxy(20_000, false);
        let (_cfg, cluster, holdout, training, _dir, paths) = setup(&p);
        let truth = [Gaussian { sx: 1.0, sv: 50.0 }];
        let f = cluster_fidelity(&p, &cluster, 0, &truth, &training, &holdout, &paths)
            .unwrap()
            .unwrap();
        assert!(f.two_sample.z.abs() < 3.0, "{:?}", f.two_sample);
        assert!(
            (f.smoothness.ratio - 1.0).abs() < 0.05,
            "{:?}",
            f.smoothness
        );
        for s in &f.shells {
            assert!(
                (s.sigma_r_ratio - 1.0).abs() < 4.0 * s.sigma_r_ratio_err + 0.01,
                "{s:?}"
            );
        }
        // Files for the merge: both samples, as many stars as reference points.
        let (st, re) = paths.fidelity_samples(0);
        let (a, b) = (read_sample(&st).unwrap(), read_sample(&re).unwrap());
        assert_eq!(a.position.len(), b.position.len());
        assert!(b.mass.is_empty() && !f.reference.mass_weighted);
        assert!(!paths.fidelity_profile_reference(0).exists());

        let huddled = [Huddled {
            particles: &p,
            rows: training.clone(),
        }];
        let g = cluster_fidelity(&p, &cluster, 0, &huddled, &training, &holdout, &paths)
            .unwrap()
            .unwrap();
        assert!(g.smoothness.ratio < 0.6, "{:?}", g.smoothness);
        // A narrower galaxy is told apart.
        let narrow = [Gaussian { sx: 0.8, sv: 50.0 }];
        let h = cluster_fidelity(&p, &cluster, 0, &narrow, &training, &holdout, &paths)
            .unwrap()
            .unwrap();
        assert!(h.two_sample.z > 4.0, "{:?}", h.two_sample);
    }

    #[test]
    fn unequal_masses_make_the_reference_follow_the_mass_density() {
        // Particles are Gaussian of σ 1 kpc in number but 0.7 kpc in mass: the stars (drawn per
        // unit initial mass) should follow the mass. The report must pass flows of the mass
        // density and fail flows of the particle counts.
        let p = galaxy(40_000, true);
        let (_cfg, cluster, holdout, training, _dir, paths) = setup(&p);
        let mass = [Gaussian { sx: 0.7, sv: 50.0 }];
        let f = cluster_fidelity(&p, &cluster, 0, &mass, &training, &holdout, &paths)
            .unwrap()
            .unwrap();
        assert!(f.two_sample.z.abs() < 3.0, "{:?}", f.two_sample);
        // Every held-out particle counts, through its local mass (not the third drawn by mass).
        let held = (0..p.len()).filter(|&i| holdout.is_held(i)).count();
        assert!(f.two_sample.mass_weighted && f.two_sample.n_reference == held);
        let counts = [Gaussian { sx: 1.0, sv: 50.0 }];
        let g = cluster_fidelity(&p, &cluster, 0, &counts, &training, &holdout, &paths)
            .unwrap()
            .unwrap();
        assert!(g.two_sample.z > 5.0, "{:?}", g.two_sample);
        // The unweighted statistic against the thinned reference (what the report gave before)
        // tells the counts flow apart too, from a third of the points.
        let (st, re) = paths.fidelity_samples(0);
        let (stars, thinned) = (read_sample(&st).unwrap(), read_sample(&re).unwrap());
        let plain = crate::fidelity::two_sample(
            stars.phase_space(),
            PhaseSpace::new(&thinned.position, &thinned.velocity),
            &TwoSampleConfig::default(),
        )
        .unwrap();
        eprintln!(
            "counts flow: z {:.1} on {} held-out particles with local masses, {:.1} on {} drawn \
             by mass",
            g.two_sample.z, g.two_sample.n_reference, plain.z, plain.n_reference
        );
        assert!(plain.z > 3.0 && plain.n_reference < held / 2, "{plain:?}");
    }

    /// The shells of the counts-density sampler against those of the mass-density one: the
    /// inner shells' share ratio is below 1 by more than `k` errors, never above it.
    fn counts_flow_is_short_in_the_centre(f: &Fidelity, g: &Fidelity, k: f64) {
        let inner = &g.shells[..3];
        assert!(
            inner
                .iter()
                .all(|s| s.share_ratio < 1.0 - k * s.share_ratio_err),
            "{inner:?}"
        );
        for s in &f.shells {
            assert!(
                (s.share_ratio - 1.0).abs() < 4.0 * s.share_ratio_err + 0.02,
                "{s:?}"
            );
        }
    }

    #[test]
    fn unequal_masses_weigh_every_held_out_particle_in_the_shells() {
        // The same galaxy as above: masses ∝ exp(−r²/2 (1/0.7² − 1)), whose mean is ≈ 0.34 of
        // the heaviest, so drawing the reference by mass keeps about a third of the held-out
        // particles; the shells must use them all, weighted.
        let p = galaxy(40_000, true);
        let (cfg, cluster, holdout, training, _dir, paths) = setup(&p);
        let rows = reference_rows(&p, &cluster, &holdout, cfg.fidelity.max_points, 1);
        let held = (0..p.len()).filter(|&i| holdout.is_held(i)).count();
        assert!(rows.weighted && rows.all.len() == held, "{held}");
        let kept = rows.thinned.len() as f64 / held as f64;
        assert!((kept - 0.34).abs() < 0.03, "kept {kept}");

        let mass = [Gaussian { sx: 0.7, sv: 50.0 }];
        let f = cluster_fidelity(&p, &cluster, 0, &mass, &training, &holdout, &paths)
            .unwrap()
            .unwrap();
        assert!(f.reference.mass_weighted && !f.stars.mass_weighted);
        assert_eq!(f.smoothness.n_reference, held, "smoothness weighs them all");
        assert!(
            (f.smoothness.ratio - 1.0).abs() < 0.03,
            "{:?}",
            f.smoothness
        );
        let in_shells: usize = f.reference.shells.iter().map(|s| s.count).sum();
        assert!(
            in_shells as f64 > 0.95 * held as f64,
            "{in_shells} of {held}"
        );
        // The profile reference on disk: every held-out particle with its mass.
        let w = read_sample(&paths.fidelity_profile_reference(0)).unwrap();
        assert_eq!(w.position.len(), held);
        assert_eq!(w.mass.len(), held);
        let (st, re) = paths.fidelity_samples(0);
        assert_eq!(read_sample(&st).unwrap().position.len(), held);
        let drawn = read_sample(&re).unwrap().position.len() as f64 / held as f64;
        assert!(
            (drawn - 0.34).abs() < 0.03,
            "two-sample reference {drawn} of the held-out"
        );

        let counts = [Gaussian { sx: 1.0, sv: 50.0 }];
        let g = cluster_fidelity(&p, &cluster, 0, &counts, &training, &holdout, &paths)
            .unwrap()
            .unwrap();
        counts_flow_is_short_in_the_centre(&f, &g, 3.0);
    }

    #[test]
    fn heavier_clusters_draw_more_stars() {
        assert_eq!(star_sample_size(1_000, 1.5, 1.0, 20_000), 1_500);
        assert_eq!(star_sample_size(1_000, 0.5, 1.0, 20_000), 1_000);
        assert_eq!(star_sample_size(1_000, 1.0 + 1e-12, 1.0, 20_000), 1_000);
        assert_eq!(star_sample_size(1_000, 30.0, 1.0, 20_000), 20_000);
        assert_eq!(star_sample_size(1_000, 1.0, 0.0, 20_000), 1_000);
    }

    /// Rows of the samples there are.
    fn rows_of(samples: &[Option<Sample>]) -> usize {
        samples.iter().flatten().map(|w| w.position.len()).sum()
    }

    #[test]
    fn the_run_pools_weighted_clusters_by_their_mass() {
        // Two clusters, the even and the odd particles of the weighted galaxy (each the whole
        // galaxy's shape), the odd ones three times heavier; the pooled shells weigh every
        // held-out particle, cluster by cluster scaled to the cluster's initial mass.
        let mut p = galaxy(40_000, true);
        for m in p.initial_mass.iter_mut().skip(1).step_by(2) {
            *m *= 3.0;
        }
        let (cfg, _cluster, holdout, training, _dir, paths) = setup(&p);
        let pooled_with = |sx: f64| -> Fidelity {
            let mut samples = (Vec::new(), Vec::new(), Vec::new());
            let mut weights = Vec::new();
            let mut n_training = Vec::new();
            for parity in 0..2 {
                let members: Vec<usize> = (parity..p.len()).step_by(2).collect();
                let cluster = Cluster {
                    label: format!("half {parity}"),
                    members: members.clone(),
                    ghosts: Vec::new(),
                    core: None,
                    component: None,
                    own_frame: false,
                };
                let trained: Vec<usize> = training
                    .iter()
                    .copied()
                    .filter(|i| i % 2 == parity)
                    .collect();
                let flows = [Gaussian { sx, sv: 50.0 }];
                cluster_fidelity(&p, &cluster, parity, &flows, &trained, &holdout, &paths)
                    .unwrap()
                    .unwrap();
                let (s, r) = paths.fidelity_samples(parity);
                samples.0.push(read_sample(&s).unwrap());
                samples.1.push(read_sample(&r).unwrap());
                let w = read_sample(&paths.fidelity_profile_reference(parity)).unwrap();
                samples.2.push(Some(w));
                weights.push(members.iter().map(|&i| p.initial_mass[i]).sum::<f64>());
                n_training.push(trained.len());
            }
            let pooled = Pooled {
                stars: &samples.0,
                references: &samples.1,
                profile_references: &samples.2,
                weights: &weights,
                n_training: &n_training,
            };
            let f = pooled.fidelity(&cfg).unwrap();
            // Parts written before local masses were kept: the thinned references, unweighted.
            let mut old = (samples.0.clone(), samples.2.clone());
            for s in old.0.iter_mut().chain(old.1.iter_mut().flatten()) {
                s.local_mass.clear();
            }
            let before = Pooled {
                stars: &old.0,
                profile_references: &old.1,
                ..pooled
            };
            let b = before.fidelity(&cfg).unwrap();
            assert!(!b.two_sample.mass_weighted);
            let thinned: usize = samples.1.iter().map(|r| r.position.len()).sum();
            assert!(b.two_sample.n_reference <= thinned && thinned < rows_of(&samples.2) / 2);
            // The pooled reference weighs the galaxy's initial mass, from every held-out row.
            let total: f64 = weights.iter().sum();
            assert!((f.reference.total_weight / total - 1.0).abs() < 1e-9);
            let rows = rows_of(&samples.2);
            let in_shells: usize = f.reference.shells.iter().map(|s| s.count).sum();
            assert!(
                in_shells as f64 > 0.9 * rows as f64,
                "{in_shells} of {rows}"
            );
            assert!(f.smoothness.n_reference as f64 > 0.95 * rows as f64);
            f
        };
        let f = pooled_with(0.7);
        assert!(f.two_sample.z.abs() < 3.0, "{:?}", f.two_sample);
        // Every held-out particle, beside the stars pooled ∝ the clusters' mass: the heavy
        // cluster drew 1.5 times its held-out count, so the pool is not short of its stars
        // (without that, 1/1.5 of the held-out count).
        let held = (0..p.len()).filter(|&i| holdout.is_held(i)).count();
        assert!(f.two_sample.mass_weighted, "{:?}", f.two_sample);
        assert_eq!(f.two_sample.n_reference, held, "{:?}", f.two_sample);
        assert!(
            f.two_sample.n_stars as f64 > 0.97 * held as f64,
            "{:?}",
            f.two_sample
        );
        assert!(
            (f.smoothness.ratio - 1.0).abs() < 0.03,
            "{:?}",
            f.smoothness
        );
        let g = pooled_with(1.0);
        assert!(g.two_sample.z > 5.0, "{:?}", g.two_sample);
        counts_flow_is_short_in_the_centre(&f, &g, 3.0);
    }
}
