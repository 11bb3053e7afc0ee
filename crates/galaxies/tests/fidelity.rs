//! `upsample::fidelity` on galaxy (a): shell profiles against the analytic σ_r(r), β(r) and
//! ρ(r); the 6D two-sample statistic against an independent draw and a narrowed one; the
//! smoothness ratio of independent draws against stars huddled around their parents; the
//! mass-weighted two-sample statistic on the spheroid whose particle masses grow outwards.

use galaxies::{generate, MassWeights, Model, Options, Spheroid};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use upsample::fidelity::{
    evaluate, local_mass, radius, shell_profile, smoothness, two_sample, two_sample_mass_weighted,
    FidelityConfig, LocalMass, PhaseSpace, ShellConfig, SmoothnessConfig, TwoSampleConfig,
    LOCAL_MASS_NEIGHBOURS,
};

#[test]
fn shell_profiles_of_the_spheroid_match_its_analytic_sigma_r_beta_and_density() {
    let model = Spheroid::default();
    let g = generate(Model::Spheroid(model), Options::new(50_000, 11));
    let p = &g.sample.particles;
    let a = model.df.profile.scale;
    let cfg = ShellConfig {
        r_min: 0.1 * a,
        r_max: 10.0 * a,
        n_shells: 10,
        ..ShellConfig::default()
    };
    let set = PhaseSpace {
        position: &p.position,
        velocity: &p.velocity,
        mass: Some(&p.mass),
    };
    let profile = shell_profile(set, &cfg).unwrap();
    assert!(profile.mass_weighted);
    let df = model.df;
    let (mut worst_sr, mut worst_beta, mut worst_rho) = (0.0f64, 0.0f64, 0.0f64);
    for s in &profile.shells {
        // Analytic values averaged over the shell's particles (σ² weighted like the sample).
        let rows: Vec<f64> = p
            .position
            .iter()
            .map(|&x| radius(x))
            .filter(|r| (s.r_inner..s.r_outer).contains(r))
            .collect();
        assert_eq!(rows.len(), s.count);
        let sr2 = rows.iter().map(|&r| df.sigma_r(r).powi(2)).sum::<f64>() / rows.len() as f64;
        let st2 = rows.iter().map(|&r| df.sigma_t(r).powi(2)).sum::<f64>() / rows.len() as f64;
        let (sigma_r, beta) = (sr2.sqrt(), 1.0 - st2 / sr2);
        let volume = 4.0 / 3.0 * std::f64::consts::PI * (s.r_outer.powi(3) - s.r_inner.powi(3));
        let rho =
            (df.profile.enclosed_mass(s.r_outer) - df.profile.enclosed_mass(s.r_inner)) / volume;
        let k = s.kinematics.unwrap();
        let (zs, zb, zr) = (
            (k.sigma_r - sigma_r) / k.sigma_r_err,
            (k.beta - beta) / k.beta_err,
            (s.density - rho) / s.density_err,
        );
        eprintln!(
            "r {:.2}-{:.2} kpc n {}: σ_r {:.2}±{:.2} vs {sigma_r:.2}, β {:.3}±{:.3} vs {beta:.3}, ρ/truth {:.3}±{:.3}",
            s.r_inner, s.r_outer, s.count, k.sigma_r, k.sigma_r_err, k.beta, k.beta_err,
            s.density / rho, s.density_err / rho
        );
        (worst_sr, worst_beta, worst_rho) = (
            worst_sr.max(zs.abs()),
            worst_beta.max(zb.abs()),
            worst_rho.max(zr.abs()),
        );
        assert!(
            zs.abs() < 3.5 && zb.abs() < 3.5 && zr.abs() < 3.5,
            "shell {s:?}: z {zs} {zb} {zr}"
        );
        // The bootstrap error is the sampling error: σ_r/√(2n) within 25%.
        let expect = k.sigma_r / (2.0 * s.count as f64).sqrt();
        assert!(
            (k.sigma_r_err / expect - 1.0).abs() < 0.25,
            "σ_r error {} vs {expect}",
            k.sigma_r_err
        );
    }
    eprintln!("worst |z|: σ_r {worst_sr:.2}, β {worst_beta:.2}, ρ {worst_rho:.2}");
    let json = serde_json::to_string(&profile).unwrap();
    let back: upsample::fidelity::Profile = serde_json::from_str(&json).unwrap();
    assert_eq!(back.shells.len(), profile.shells.len());
    for (b, s) in back.shells.iter().zip(&profile.shells) {
        let (kb, ks) = (b.kinematics.unwrap(), s.kinematics.unwrap());
        assert!((b.density / s.density - 1.0).abs() < 1e-12 && (kb.beta - ks.beta).abs() < 1e-12);
    }
}

#[test]
fn two_sample_and_smoothness_on_the_spheroid() {
    let model = Model::Spheroid(Spheroid::default());
    let g = generate(model.clone(), Options::new(20_000, 12));
    let other = model.draw(20_000, 99, None).particles;
    let (train, truth) = (&g.sample.particles, &g.truth.particles);
    let reference = PhaseSpace::new(&truth.position, &truth.velocity);
    let cfg = TwoSampleConfig::default();
    let same = two_sample(
        PhaseSpace::new(&other.position, &other.velocity),
        reference,
        &cfg,
    )
    .unwrap();
    // The same galaxy with velocities 15% too cold, or 20% too compact.
    let cold: Vec<[f64; 3]> = other.velocity.iter().map(|v| v.map(|c| 0.85 * c)).collect();
    let narrowed = two_sample(PhaseSpace::new(&other.position, &cold), reference, &cfg).unwrap();
    let small: Vec<[f64; 3]> = other.position.iter().map(|x| x.map(|c| 0.8 * c)).collect();
    let compact = two_sample(PhaseSpace::new(&small, &other.velocity), reference, &cfg).unwrap();
    eprintln!(
        "two-sample z: same {:.2}, 15% colder {:.1}, 20% smaller {:.1}",
        same.z, narrowed.z, compact.z
    );
    assert!(same.z.abs() < 2.0, "{same:?}");
    assert!(narrowed.z > 5.0, "{narrowed:?}");
    assert!(compact.z > 5.0, "{compact:?}");
    // Smoothness: independent stars ≈ 1; stars spawned tightly around the training particles < 1.
    let training = PhaseSpace::new(&train.position, &train.velocity);
    let sc = SmoothnessConfig::default();
    let smooth = smoothness(
        PhaseSpace::new(&other.position, &other.velocity),
        reference,
        training,
        &sc,
    )
    .unwrap();
    let near: Vec<[f64; 3]> = train
        .position
        .iter()
        .zip(&other.position)
        .map(|(x, o)| std::array::from_fn(|c| x[c] + 0.01 * o[c]))
        .collect();
    let near_v: Vec<[f64; 3]> = train
        .velocity
        .iter()
        .zip(&other.velocity)
        .map(|(v, o)| std::array::from_fn(|c| v[c] + 0.01 * o[c]))
        .collect();
    let huddled = smoothness(PhaseSpace::new(&near, &near_v), reference, training, &sc).unwrap();
    eprintln!("smoothness: independent {smooth:?}\n huddled {huddled:?}");
    assert!(
        (smooth.ratio - 1.0).abs() < 0.05 && smooth.ks < 0.03,
        "{smooth:?}"
    );
    assert!(huddled.ratio < 0.5, "{huddled:?}");
}

#[test]
fn an_independent_draw_of_the_spheroid_passes_every_shell_comparison() {
    let model = Model::Spheroid(Spheroid::default());
    let g = generate(model.clone(), Options::new(30_000, 13));
    let stars = model.draw(30_000, 77, None).particles;
    let (train, truth) = (&g.sample.particles, &g.truth.particles);
    let config = FidelityConfig {
        shells: ShellConfig {
            r_min: 0.2,
            r_max: 20.0,
            n_shells: 10,
            ..ShellConfig::default()
        },
        ..FidelityConfig::default()
    };
    let f = evaluate(
        PhaseSpace::new(&stars.position, &stars.velocity),
        PhaseSpace::new(&truth.position, &truth.velocity),
        PhaseSpace::new(&train.position, &train.velocity),
        &config,
    )
    .unwrap();
    assert_eq!(f.shells.len(), 10);
    for c in &f.shells {
        let z = [
            (c.share_ratio - 1.0) / c.share_ratio_err,
            (c.sigma_r_ratio - 1.0) / c.sigma_r_ratio_err,
            (c.sigma_t_ratio - 1.0) / c.sigma_t_ratio_err,
            c.beta_diff / c.beta_diff_err,
            c.vphi_diff / c.vphi_diff_err,
        ];
        assert!(
            z.iter().all(|z| z.abs() < 3.5),
            "shell at {} kpc: z {z:?}",
            c.r_mid
        );
    }
    assert!(f.two_sample.z.abs() < 2.5, "{:?}", f.two_sample);
    assert!(
        (f.smoothness.ratio - 1.0).abs() < 0.05,
        "{:?}",
        f.smoothness
    );
}

#[test]
fn mass_weighted_two_sample_on_the_spheroid_with_unequal_masses() {
    // Particle masses ∝ 1 + r / 2 kpc (the heaviest ~16× the lightest) and counts ∝ ρ / mass:
    // a quarter of the particles held out, the rest train the local masses. The truth draw
    // (the mass density) passes against every held-out particle; a second draw of the
    // particles' number density (a flow that ignored the masses) fails, and more clearly than
    // the unweighted statistic against the held-out particles thinned ∝ mass.
    let model = Model::Spheroid(Spheroid::default());
    let weights = MassWeights {
        gamma: 1.0,
        scale: 2.0,
    };
    let options = Options {
        n_truth: 10_000,
        mass_weights: Some(weights),
        ..Options::new(40_000, 21)
    };
    let g = generate(model.clone(), options);
    let p = &g.sample.particles;
    let pick = |keep: &dyn Fn(usize) -> bool| -> (Vec<[f64; 3]>, Vec<[f64; 3]>, Vec<f64>) {
        let rows: Vec<usize> = (0..p.len()).filter(|&i| keep(i)).collect();
        (
            rows.iter().map(|&i| p.position[i]).collect(),
            rows.iter().map(|&i| p.velocity[i]).collect(),
            rows.iter().map(|&i| p.initial_mass[i]).collect(),
        )
    };
    let (hx, hv, hm) = pick(&|i| i % 4 == 0);
    let (tx, tv, tm) = pick(&|i| i % 4 != 0);
    let training = PhaseSpace {
        mass: Some(&tm),
        ..PhaseSpace::new(&tx, &tv)
    };
    let held = PhaseSpace::new(&hx, &hv);
    let held_local = local_mass(held, training, LOCAL_MASS_NEIGHBOURS).unwrap();
    let cfg = TwoSampleConfig::default();
    let weighted = |stars: PhaseSpace<'_>| {
        let m = local_mass(stars, training, LOCAL_MASS_NEIGHBOURS).unwrap();
        let local = LocalMass {
            stars: &m,
            reference: &held_local,
        };
        two_sample_mass_weighted(stars, held, local, &cfg, None).unwrap()
    };
    // The held-out particles thinned ∝ mass (the unweighted statistic's reference).
    let m_max = hm.iter().copied().fold(0.0, f64::max);
    let mut rng = StdRng::seed_from_u64(21);
    let thin: Vec<usize> = (0..hx.len())
        .filter(|&i| rng.random::<f64>() * m_max <= hm[i])
        .collect();
    let (thx, thv): (Vec<[f64; 3]>, Vec<[f64; 3]>) = thin.iter().map(|&i| (hx[i], hv[i])).unzip();
    let thinned = PhaseSpace::new(&thx, &thv);
    let truth = &g.truth.particles;
    let faithful = PhaseSpace::new(&truth.position, &truth.velocity);
    let counts = model.draw(10_000, 99, Some(&weights)).particles;
    let ignoring = PhaseSpace::new(&counts.position, &counts.velocity);
    let (f, c) = (weighted(faithful), weighted(ignoring));
    let (pf, pc) = (
        two_sample(faithful, thinned, &cfg).unwrap(),
        two_sample(ignoring, thinned, &cfg).unwrap(),
    );
    eprintln!(
        "weighted, {} held-out: truth z {:.2}, counts z {:.1}; thinned, {}: truth z {:.2}, \
         counts z {:.1}",
        f.n_reference, f.z, c.z, pf.n_reference, pf.z, pc.z
    );
    assert!(f.mass_weighted && f.n_reference == hx.len());
    assert!(f.z.abs() < 3.0, "{f:?}");
    assert!(c.z > 5.0 && c.z > pc.z, "{c:?} {pc:?}");
    assert!(pf.z.abs() < 3.0 && pf.n_reference < hx.len() / 2, "{pf:?}");
}
