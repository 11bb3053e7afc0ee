//! The flow method's fidelity report (issue 12): which particles no flow ever sees, each
//! cluster's figures against its held-out members, and the run's figures pooled from the
//! clusters' samples at merge time (so a sharded run gets them without re-reading the snapshot).
//!
//! Per cluster: the reference is its held-out members (at most `fidelity.max_points`, a seeded
//! subset, thinned ∝ initial mass so that it follows the mass density the stars follow); the
//! stars are as many fresh draws from the cluster's flows, drawn as its catalogue stars are
//! (core rejection, ensemble members in turn) but before any IMF or lifetime cut; the training
//! set is what its flows trained on. Both samples, with their nearest-training distances, are
//! kept in `parts/cluster_NNNN.fidelity_{stars,reference}.hdf5`.

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use snapio::{read_table, write_table, StarParticles, TableColumn, TableValues};
use std::path::Path;

use super::run_dir::{ClusterReport, RunPaths};
use crate::config::Config;
use crate::decompose::Cluster;
use crate::fidelity::{
    evaluate_with, nearest_distances, pool_counts, subsample, Fidelity, FidelityConfig,
    NearestDistances, PhaseSpace, ShellConfig, SmoothnessConfig, TwoSampleConfig,
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

/// A cluster's held-out reference: at most `max` of its held-out members (a seeded subset),
/// each kept with probability m / m_max of its initial mass (a sample of the mass density).
fn reference_rows(
    parents: &StarParticles,
    cluster: &Cluster,
    holdout: &Holdout,
    max: usize,
    seed: u64,
) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(mix_seed(seed, 4));
    let held: Vec<usize> = cluster
        .members
        .iter()
        .copied()
        .filter(|&i| holdout.is_held(i))
        .collect();
    let m_max = held
        .iter()
        .map(|&i| parents.initial_mass[i])
        .fold(0.0, f64::max);
    let n_held = held.len();
    let rows: Vec<usize> = held
        .iter()
        .copied()
        .filter(|&i| rng.random::<f64>() * m_max <= parents.initial_mass[i])
        .collect();
    if 2 * rows.len() < n_held {
        let m_mean = held.iter().map(|&i| parents.initial_mass[i]).sum::<f64>() / n_held as f64;
        tracing::warn!(
            "{}: its particles' initial masses differ (the heaviest {:.1} × their mean): the \
             fidelity reference, drawn by mass, keeps {} of its {n_held} held-out particles, so \
             its figures are as noisy as that (raise fidelity.holdout_fraction for firmer ones)",
            cluster.label,
            m_max / m_mean,
            rows.len()
        );
    }
    // A uniform subset of at most `max`, in particle order.
    subsample(rows.len(), max, mix_seed(seed, 6))
        .into_iter()
        .map(|k| rows[k])
        .collect()
}

/// Cluster `index`'s fidelity figures: fresh draws from its flows `members` against its
/// held-out members, `training` the rows its flows trained on; the samples are written to
/// `paths.fidelity_samples(index)`. `None` (with a warning) when it has too few held-out
/// members.
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
    if rows.len() < MIN_REFERENCE {
        tracing::warn!(
            "{} (cluster {index}): {} held-out particles, fewer than {MIN_REFERENCE}: no fidelity \
             figures (raise fidelity.holdout_fraction)",
            cluster.label,
            rows.len()
        );
        return Ok(None);
    }
    let pick = |a: &[[f64; 3]], r: &[usize]| -> Vec<[f64; 3]> { r.iter().map(|&i| a[i]).collect() };
    let (rx, rv) = (
        pick(&parents.position, &rows),
        pick(&parents.velocity, &rows),
    );
    let (tx, tv) = (
        pick(&parents.position, training),
        pick(&parents.velocity, training),
    );
    let (sx, sv) = draw_phase_sample(cluster, index, members, rows.len(), mix_seed(seed, 5))?;
    let (stars, reference, trained) = (
        PhaseSpace::new(&sx, &sv),
        PhaseSpace::new(&rx, &rv),
        PhaseSpace::new(&tx, &tv),
    );
    let config = fidelity_config(holdout.max_points, holdout.shells, &rx, seed);
    let context = || format!("fidelity figures of {} (cluster {index})", cluster.label);
    let distances =
        nearest_distances(stars, reference, trained, &config.smoothness).with_context(context)?;
    let fidelity = evaluate_with(stars, reference, &distances, &config).with_context(context)?;
    let (star_file, reference_file) = paths.fidelity_samples(index);
    write_sample(&star_file, sx, sv, &distances.stars, distances.n_training)?;
    write_sample(
        &reference_file,
        rx,
        rv,
        &distances.reference,
        distances.n_training,
    )?;
    Ok(Some(fidelity))
}

/// A fidelity sample on disk: positions, velocities and nearest-training distances.
struct Sample {
    position: Vec<[f64; 3]>,
    velocity: Vec<[f64; 3]>,
    distance: Vec<f64>,
}

/// Writes one fidelity sample (atomically).
fn write_sample(
    path: &Path,
    position: Vec<[f64; 3]>,
    velocity: Vec<[f64; 3]>,
    distance: &[f64],
    n_training: usize,
) -> Result<()> {
    let column = |name: &str, units: &str, description: &str, values| TableColumn {
        name: name.into(),
        units: units.into(),
        description: description.into(),
        values,
    };
    write_table(
        path,
        &[
            column(
                "position",
                "kpc",
                "galaxy frame",
                TableValues::Float3(position),
            ),
            column(
                "velocity",
                "km/s",
                "galaxy frame",
                TableValues::Float3(velocity),
            ),
            column(
                "nearest_training_distance",
                "dimensionless",
                "6D distance to the nearest training particle, axes divided by the held-out \
                 particles' robust spreads",
                TableValues::Float(distance.to_vec()),
            ),
        ],
        &[(
            "n_training".into(),
            snapio::AttrValue::Int(n_training as i64),
        )],
    )
    .with_context(|| format!("writing the fidelity sample {}", path.display()))
}

/// Reads a sample written by [`write_sample`].
fn read_sample(path: &Path) -> Result<Sample> {
    let mut s = Sample {
        position: Vec::new(),
        velocity: Vec::new(),
        distance: Vec::new(),
    };
    for c in read_table(path).with_context(|| format!("fidelity sample {}", path.display()))? {
        match (c.name.as_str(), c.values) {
            ("position", TableValues::Float3(v)) => s.position = v,
            ("velocity", TableValues::Float3(v)) => s.velocity = v,
            ("nearest_training_distance", TableValues::Float(v)) => s.distance = v,
            (name, _) => anyhow::bail!(
                "{}: unexpected dataset {name} (expected position, velocity, \
                 nearest_training_distance)",
                path.display()
            ),
        }
    }
    if s.position.len() != s.velocity.len() || s.position.len() != s.distance.len() {
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
/// (what its stars are drawn from). `None` when no cluster has figures.
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
    for c in &with {
        let (s, r) = paths.fidelity_samples(c.record.index);
        stars.push(read_sample(&s)?);
        references.push(read_sample(&r)?);
    }
    let weights: Vec<f64> = with
        .iter()
        .map(|c| c.stars.particle_initial_mass_msun)
        .collect();
    let seed = fidelity_seed(cfg.seed, usize::MAX);
    let pool = |samples: &[Sample], stream: u64| {
        let lens: Vec<usize> = samples.iter().map(|s| s.position.len()).collect();
        let counts = pool_counts(&lens, &weights, cfg.fidelity.max_points);
        let (mut x, mut v) = (Vec::new(), Vec::new());
        for (c, (s, &k)) in samples.iter().zip(&counts).enumerate() {
            for i in subsample(s.position.len(), k, mix_seed(seed, stream + c as u64 * 2)) {
                x.push(s.position[i]);
                v.push(s.velocity[i]);
            }
        }
        (x, v)
    };
    let (sx, sv) = pool(&stars, 10);
    let (rx, rv) = pool(&references, 11);
    let sets: Vec<NearestDistances> = stars
        .iter()
        .zip(&references)
        .zip(&with)
        .map(|((s, r), c)| NearestDistances {
            stars: s.distance.clone(),
            reference: r.distance.clone(),
            n_training: c.fidelity.as_ref().map_or(0, |f| f.smoothness.n_training),
        })
        .collect();
    let distances = NearestDistances::pool(&sets.iter().collect::<Vec<_>>(), &weights);
    let config = fidelity_config(cfg.fidelity.max_points, cfg.fidelity.shells, &rx, seed);
    let fidelity = evaluate_with(
        PhaseSpace::new(&sx, &sv),
        PhaseSpace::new(&rx, &rv),
        &distances,
        &config,
    )
    .context("the run's fidelity figures")?;
    Ok(Some(fidelity))
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
        assert_eq!(rows.len(), held, "equal masses: every held-out particle");
        assert!(rows.iter().all(|&i| holdout.is_held(i)));
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
        let counts = [Gaussian { sx: 1.0, sv: 50.0 }];
        let g = cluster_fidelity(&p, &cluster, 0, &counts, &training, &holdout, &paths)
            .unwrap()
            .unwrap();
        assert!(g.two_sample.z > 5.0, "{:?}", g.two_sample);
    }
}
