//! Fidelity statistics on Gaussian samples whose answers are known.

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::*;

/// `n` points with independent normal coordinates: position σ `sx` kpc about `shift`, velocity
/// σ `sv` km/s.
fn gaussian(n: usize, seed: u64, sx: f64, sv: f64, shift: f64) -> (Vec<[f64; 3]>, Vec<[f64; 3]>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut g = || -> f64 { StandardNormal.sample(&mut rng) };
    let x = (0..n)
        .map(|_| [sx * g() + shift, sx * g(), sx * g()])
        .collect();
    let v = (0..n).map(|_| [sv * g(), sv * g(), sv * g()]).collect();
    (x, v)
}

#[test]
fn two_sample_of_one_distribution_is_within_noise_of_its_null() {
    let (ax, av) = gaussian(5000, 1, 2.0, 50.0, 0.0);
    let (bx, bv) = gaussian(5000, 2, 2.0, 50.0, 0.0);
    let t = two_sample(
        PhaseSpace::new(&ax, &av),
        PhaseSpace::new(&bx, &bv),
        &TwoSampleConfig::default(),
    )
    .unwrap();
    let n = 5000.0;
    assert!((t.null_mean - (n - 1.0) / (2.0 * n - 1.0)).abs() < 1e-12);
    assert!(t.null_sd > 0.0005 && t.null_sd < 0.005, "{t:?}");
    assert!(t.z.abs() < 2.0, "same distribution: {t:?}");
}

#[test]
fn two_sample_detects_a_shift_and_a_narrowing() {
    let (bx, bv) = gaussian(5000, 2, 2.0, 50.0, 0.0);
    let (sx, sv) = gaussian(5000, 3, 2.0, 50.0, 0.8); // shifted by 0.4 σ in x
    let (nx, nv) = gaussian(5000, 4, 2.0, 40.0, 0.0); // velocity dispersion 20% narrower
    let cfg = TwoSampleConfig::default();
    let reference = PhaseSpace::new(&bx, &bv);
    let shifted = two_sample(PhaseSpace::new(&sx, &sv), reference, &cfg).unwrap();
    let narrow = two_sample(PhaseSpace::new(&nx, &nv), reference, &cfg).unwrap();
    eprintln!("shifted z {:.1}, narrowed z {:.1}", shifted.z, narrow.z);
    assert!(shifted.z > 5.0, "shifted: {shifted:?}");
    assert!(narrow.z > 5.0, "narrowed: {narrow:?}");
}

#[test]
fn two_sample_balances_unequal_sizes_and_is_deterministic() {
    let (ax, av) = gaussian(20000, 5, 1.0, 10.0, 0.0);
    let (bx, bv) = gaussian(3000, 6, 1.0, 10.0, 0.0);
    let cfg = TwoSampleConfig::default();
    let run = || two_sample(PhaseSpace::new(&ax, &av), PhaseSpace::new(&bx, &bv), &cfg).unwrap();
    let (t1, t2) = (run(), run());
    assert_eq!(t1, t2);
    assert_eq!((t1.n_stars, t1.n_reference), (3000, 3000));
    assert!(t1.z.abs() < 2.0, "{t1:?}");
}

#[test]
fn smoothness_is_one_for_independent_draws_and_low_for_jittered_parents() {
    let (tx, tv) = gaussian(5000, 7, 2.0, 50.0, 0.0);
    let (rx, rv) = gaussian(5000, 8, 2.0, 50.0, 0.0);
    let (ix, iv) = gaussian(5000, 9, 2.0, 50.0, 0.0);
    let training = PhaseSpace::new(&tx, &tv);
    let reference = PhaseSpace::new(&rx, &rv);
    let cfg = SmoothnessConfig::default();
    let smooth = smoothness(PhaseSpace::new(&ix, &iv), reference, training, &cfg).unwrap();
    assert!(
        (smooth.ratio - 1.0).abs() < 0.05,
        "independent draw: {smooth:?}"
    );
    assert!(smooth.ks < 0.05, "independent draw: {smooth:?}");
    // Stars around their parents: each training particle moved by ~0.05 σ per axis.
    let (jx, jv) = gaussian(5000, 10, 0.1, 2.5, 0.0);
    let sx: Vec<[f64; 3]> = tx
        .iter()
        .zip(&jx)
        .map(|(a, b)| std::array::from_fn(|k| a[k] + b[k]))
        .collect();
    let sv: Vec<[f64; 3]> = tv
        .iter()
        .zip(&jv)
        .map(|(a, b)| std::array::from_fn(|k| a[k] + b[k]))
        .collect();
    let huddled = smoothness(PhaseSpace::new(&sx, &sv), reference, training, &cfg).unwrap();
    assert!(huddled.ratio < 0.5, "jittered parents: {huddled:?}");
    assert!(huddled.ks > 0.5, "jittered parents: {huddled:?}");
}

#[test]
fn ks_two_sample_measures_the_largest_cdf_gap() {
    assert_eq!(
        ks_two_sample(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 3.0, 4.0]),
        0.0
    );
    assert_eq!(ks_two_sample(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
    assert!((ks_two_sample(&[1.0, 2.0, 3.0, 4.0], &[2.5, 3.5]) - 0.5).abs() < 1e-12);
}

#[test]
fn weighted_ks_counts_a_weight_as_repeated_values() {
    // A value of weight 3 is the same value three times.
    let (a, wa) = ([1.0, 2.0, 5.0], [3.0, 1.0, 2.0]);
    let repeated = [1.0, 1.0, 1.0, 2.0, 5.0, 5.0];
    let b = [1.5, 2.5, 3.5, 4.5, 5.5];
    let weighted = ks_two_sample_weighted(&a, Some(&wa), &b, None);
    assert!((weighted - ks_two_sample(&repeated, &b)).abs() < 1e-12);
    // By hand: from 1 to 1.5 the weighted CDF is 3/6, b's 0 (unweighted, a's largest gap is
    // 2/3 − 1/5 from 2 to 2.5).
    assert!((weighted - 0.5).abs() < 1e-12, "{weighted}");
    assert!((ks_two_sample(&a, &b) - (2.0 / 3.0 - 0.2)).abs() < 1e-12);
    // Weights on both sides: from 5 to 5.5, a 1 and b 4/10.
    let wb = [1.0, 1.0, 1.0, 1.0, 6.0];
    let both = ks_two_sample_weighted(&a, Some(&wa), &b, Some(&wb));
    assert!((both - 0.6).abs() < 1e-12, "{both}");
    // A sample that weighs nothing.
    assert_eq!(ks_two_sample_weighted(&a, Some(&[0.0; 3]), &b, None), 0.0);
}

#[test]
fn shell_profile_recovers_dispersions_rotation_and_density() {
    // Isotropic Gaussian velocities, σ = 30 km/s, rotating at 40 km/s about +z.
    let n = 40000;
    let (x, mut v) = gaussian(n, 11, 3.0, 30.0, 0.0);
    for (xi, vi) in x.iter().zip(v.iter_mut()) {
        let big_r = xi[0].hypot(xi[1]);
        vi[0] -= 40.0 * xi[1] / big_r;
        vi[1] += 40.0 * xi[0] / big_r;
    }
    let mass = vec![2.0; n];
    let set = PhaseSpace {
        position: &x,
        velocity: &v,
        mass: Some(&mass),
    };
    let cfg = ShellConfig {
        r_min: 1.0,
        r_max: 8.0,
        n_shells: 4,
        ..ShellConfig::default()
    };
    let p = shell_profile(set, &cfg).unwrap();
    assert!(p.mass_weighted && (p.total_weight - 2.0 * n as f64).abs() < 1e-9);
    for s in &p.shells {
        let k = s.kinematics.unwrap();
        assert!(
            (k.sigma_r - 30.0).abs() < 3.0 * k.sigma_r_err + 0.1,
            "{s:?}"
        );
        assert!(
            (k.sigma_t - 30.0).abs() < 3.0 * k.sigma_t_err + 0.1,
            "{s:?}"
        );
        assert!(k.beta.abs() < 3.0 * k.beta_err + 0.005, "{s:?}");
        assert!(
            (k.mean_vphi - 40.0).abs() < 3.0 * k.mean_vphi_err + 0.1,
            "{s:?}"
        );
        assert!(k.sigma_r_err > 0.05 && k.sigma_r_err < 3.0, "{s:?}");
        // Analytic density of the 3D Gaussian at the shell: ∫ ρ dV / V.
        let sig = 3.0f64;
        let cdf = |r: f64| {
            let u = r / (sig * 2f64.sqrt());
            erf(u)
                - (2.0 / std::f64::consts::PI).sqrt() * r / sig * (-r * r / (2.0 * sig * sig)).exp()
        };
        let expect = 2.0 * n as f64 * (cdf(s.r_outer) - cdf(s.r_inner));
        let vol = 4.0 / 3.0 * std::f64::consts::PI * (s.r_outer.powi(3) - s.r_inner.powi(3));
        assert!(
            (s.density - expect / vol).abs() < 3.0 * s.density_err,
            "{s:?} expected {}",
            expect / vol
        );
    }
}

#[test]
fn mismatched_lengths_name_the_set() {
    let x = vec![[0.0; 3]; 5];
    let v = vec![[0.0; 3]; 4];
    let e = shell_profile(PhaseSpace::new(&x, &v), &ShellConfig::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("shell profile sample: 5 positions, 4 velocities"),
        "{e}"
    );
}

/// Error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.3275911 * x.abs());
    let y = 1.0
        - t * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
            * (-x * x).exp();
    y.copysign(x)
}

#[test]
fn evaluate_compares_an_independent_draw_shell_by_shell_and_serialises() {
    let (sx, sv) = gaussian(8000, 12, 3.0, 30.0, 0.0);
    let (rx, rv) = gaussian(8000, 13, 3.0, 30.0, 0.0);
    let (tx, tv) = gaussian(8000, 14, 3.0, 30.0, 0.0);
    let config = FidelityConfig {
        shells: ShellConfig {
            r_min: 1.0,
            r_max: 9.0,
            n_shells: 5,
            ..ShellConfig::default()
        },
        ..FidelityConfig::default()
    };
    let f = evaluate(
        PhaseSpace::new(&sx, &sv),
        PhaseSpace::new(&rx, &rv),
        PhaseSpace::new(&tx, &tv),
        &config,
    )
    .unwrap();
    assert_eq!(f.shells.len(), 5);
    for c in &f.shells {
        assert!(
            (c.share_ratio - 1.0).abs() < 3.5 * c.share_ratio_err,
            "{c:?}"
        );
        assert!(
            (c.sigma_r_ratio - 1.0).abs() < 3.5 * c.sigma_r_ratio_err,
            "{c:?}"
        );
        assert!(c.beta_diff.abs() < 3.5 * c.beta_diff_err, "{c:?}");
    }
    let json = serde_json::to_value(&f).unwrap();
    for key in ["two_sample", "smoothness", "stars", "reference", "shells"] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    assert!(json["two_sample"]["z"].is_number() && json["smoothness"]["ratio"].is_number());
}

#[test]
fn pool_counts_follow_the_weights_and_fit_every_set() {
    // Set 1 has half the weight but a third of the rows of set 0: it limits the pooled size.
    let c = pool_counts(&[900, 300, 50, 0], &[1.0, 0.5, 0.0, 1.0], usize::MAX);
    assert_eq!(c, vec![600, 300, 0, 0]);
    assert_eq!(pool_counts(&[900, 300], &[1.0, 0.5], 30), vec![20, 10]);
}

#[test]
fn weighted_held_out_distances_count_as_repeated_values() {
    // A held-out distance of weight 3 is that distance three times: median, KS and pooling.
    let stars = vec![0.5, 1.2, 1.8, 2.6, 3.3];
    let weighted = NearestDistances {
        stars: stars.clone(),
        reference: vec![1.0, 2.0, 3.0, 4.0],
        reference_weight: vec![3.0, 1.0, 1.0, 1.0],
        n_training: 10,
    };
    let repeated = NearestDistances {
        stars,
        reference: vec![1.0, 1.0, 1.0, 2.0, 3.0, 4.0],
        reference_weight: Vec::new(),
        n_training: 10,
    };
    let (w, r) = (Smoothness::from(&weighted), Smoothness::from(&repeated));
    // By hand: half the weight (3 of 6) is reached at 1, exactly: (1 + 2)/2.
    assert_eq!(w.median_reference, 1.5);
    assert_eq!((w.median_reference, w.ratio), (r.median_reference, r.ratio));
    assert!((w.ks - r.ks).abs() < 1e-12, "{w:?} {r:?}");
    // Unweighted, the median of the four values is 2.5 and the ratio another one.
    let plain = Smoothness::from(&NearestDistances {
        reference_weight: Vec::new(),
        ..weighted.clone()
    });
    assert_eq!(plain.median_reference, 2.5);
    // Pooled with an unweighted set, each set's weights sum to its pooled rows, and the
    // weighted set's distances come in its own weighted median's units.
    let pooled = NearestDistances::pool(&[&weighted, &repeated], &[4.0, 6.0]);
    assert_eq!(pooled.reference.len(), pooled.reference_weight.len());
    let (first, second) = pooled.reference_weight.split_at(4);
    assert!((first.iter().sum::<f64>() - 4.0).abs() < 1e-12, "{first:?}");
    assert!(second.iter().all(|&x| x == 1.0), "{second:?}");
    assert!(pooled.reference[..4].contains(&(1.0 / 1.5)));
}

#[test]
fn pooled_smoothness_keeps_each_clusters_verdict() {
    // Two "clusters" at very different scales: one smooth (independent draw), one huddled
    // (jittered training particles). Pooled in units of each one's reference median, the run's
    // ratio lies between theirs, and a run of two smooth clusters stays ≈ 1.
    let cfg = SmoothnessConfig::default();
    let cluster = |seed: u64, scale: f64, huddle: bool| {
        let (tx, tv) = gaussian(3000, seed, 2.0 * scale, 50.0 * scale, 0.0);
        let (rx, rv) = gaussian(3000, seed + 1, 2.0 * scale, 50.0 * scale, 0.0);
        let (mut sx, mut sv) = gaussian(3000, seed + 2, 2.0 * scale, 50.0 * scale, 0.0);
        if huddle {
            let (jx, jv) = gaussian(3000, seed + 3, 0.1 * scale, 2.5 * scale, 0.0);
            sx = tx
                .iter()
                .zip(&jx)
                .map(|(a, b)| std::array::from_fn(|k| a[k] + b[k]))
                .collect();
            sv = tv
                .iter()
                .zip(&jv)
                .map(|(a, b)| std::array::from_fn(|k| a[k] + b[k]))
                .collect();
        }
        nearest_distances(
            PhaseSpace::new(&sx, &sv),
            PhaseSpace::new(&rx, &rv),
            PhaseSpace::new(&tx, &tv),
            &cfg,
        )
        .unwrap()
    };
    let smooth = cluster(20, 1.0, false);
    let smooth_far = cluster(30, 10.0, false);
    let huddled = cluster(40, 10.0, true);
    let both = Smoothness::from(&NearestDistances::pool(
        &[&smooth, &smooth_far],
        &[1.0, 1.0],
    ));
    assert!((both.ratio - 1.0).abs() < 0.06, "{both:?}");
    assert!((both.median_reference - 1.0).abs() < 0.05, "{both:?}");
    let mixed = Smoothness::from(&NearestDistances::pool(&[&smooth, &huddled], &[1.0, 1.0]));
    let alone = Smoothness::from(&huddled);
    assert!(alone.ratio < 0.5, "{alone:?}");
    assert!(
        mixed.ratio > alone.ratio + 0.1 && mixed.ratio < 0.95,
        "{mixed:?}"
    );
    assert_eq!(mixed.n_stars, 6000);
}

#[test]
fn records_with_nan_survive_json() {
    // serde_json writes NaN as null; parts/cluster_NNNN.json must read back (merge).
    let t = TwoSample {
        k: 10,
        n_stars: 5,
        n_reference: 5,
        statistic: 0.5,
        null_mean: 0.5,
        null_sd: 0.0,
        z: f64::NAN,
        shells: Vec::new(),
        mass_weighted: false,
    };
    let text = serde_json::to_string(&t).unwrap();
    assert!(text.contains("null"), "{text}");
    let back: TwoSample = serde_json::from_str(&text).unwrap();
    assert!(back.z.is_nan() && back.statistic == 0.5);
    // Reports written before the per-shell statistic and the mass-weighted one read back with
    // no shells, unweighted.
    let old = text
        .replace(",\"shells\":[]", "")
        .replace(",\"mass_weighted\":false", "");
    assert!(
        !old.contains("shells") && !old.contains("mass_weighted"),
        "{old}"
    );
    let back: TwoSample = serde_json::from_str(&old).unwrap();
    assert!(back.shells.is_empty() && !back.mass_weighted);
}

#[test]
fn two_sample_by_shell_finds_where_the_samples_differ() {
    // Stars half as hot inside r = 2.5 only (position spread 2 per axis): the inner shells
    // carry the difference, the outer ones are within noise, and the parts add up to the z.
    let (bx, bv) = gaussian(8000, 2, 2.0, 50.0, 0.0);
    let (sx, mut sv) = gaussian(8000, 3, 2.0, 50.0, 0.0);
    for (x, v) in sx.iter().zip(sv.iter_mut()) {
        if radius(*x) < 2.5 {
            *v = v.map(|c| 0.5 * c);
        }
    }
    let shells = ShellConfig {
        r_min: 0.25,
        r_max: 12.0,
        n_shells: 6,
        ..ShellConfig::default()
    };
    let with = |shells: Option<&ShellConfig>| {
        two_sample_by_shell(
            PhaseSpace::new(&sx, &sv),
            PhaseSpace::new(&bx, &bv),
            &TwoSampleConfig::default(),
            shells,
        )
        .unwrap()
    };
    let t = with(Some(&shells));
    for s in &t.shells {
        eprintln!(
            "r {:.2}: {} + {} points, z {:.1}, part of z {:.2}",
            s.r_mid, s.n_stars, s.n_reference, s.z, s.z_part
        );
    }
    let inner = t
        .shells
        .iter()
        .filter(|s| s.r_mid < 1.5 && s.n_stars + s.n_reference > 100);
    let outer = t.shells.iter().filter(|s| s.r_mid > 4.0);
    assert!(
        inner.clone().count() >= 2 && outer.clone().count() >= 2,
        "{t:?}"
    );
    assert!(inner.clone().all(|s| s.z > 4.0), "{t:?}");
    assert!(outer.clone().all(|s| s.z.abs() < 3.0), "{t:?}");
    let inside: f64 = t
        .shells
        .iter()
        .filter(|s| s.r_mid < 3.0)
        .map(|s| s.z_part)
        .sum();
    assert!(inside > 0.9 * t.z, "inner parts {inside} of z {}", t.z);
    // Without shells, the same z; with shells that hold every point, parts that add up to it.
    let unbinned = with(None);
    assert_eq!(unbinned.z, t.z);
    assert!(unbinned.shells.is_empty());
    let everything = ShellConfig {
        r_min: 1e-6,
        r_max: 1e6,
        n_shells: 4,
        ..ShellConfig::default()
    };
    let all = with(Some(&everything));
    let parts: f64 = all.shells.iter().map(|s| s.z_part).sum();
    assert!(
        (parts - t.z).abs() < 1e-9 * t.z.abs(),
        "parts {parts} against z {}",
        t.z
    );
}

/// A particle's mass on a galaxy whose heavy particles sit outside: 1 at the centre, up to 16
/// far out (r in kpc).
fn mass_at(x: [f64; 3]) -> f64 {
    let r2 = x.iter().map(|c| c * c).sum::<f64>();
    1.0 + 15.0 * r2 / (4.0 + r2)
}

/// `n` points of the mass density of [`gaussian`] (σ 1 kpc, 50 km/s) with masses
/// [`mass_at`]: Gaussian draws kept with probability m / 16.
fn mass_density(n: usize, seed: u64) -> (Vec<[f64; 3]>, Vec<[f64; 3]>) {
    let (x, v) = gaussian(8 * n, seed, 1.0, 50.0, 0.0);
    let mut rng = StdRng::seed_from_u64(seed ^ 77);
    let keep: Vec<usize> = (0..x.len())
        .filter(|&i| rand::RngExt::random::<f64>(&mut rng) * 16.0 <= mass_at(x[i]))
        .take(n)
        .collect();
    assert_eq!(keep.len(), n);
    (
        keep.iter().map(|&i| x[i]).collect(),
        keep.iter().map(|&i| v[i]).collect(),
    )
}

#[test]
fn mass_weighted_two_sample_equals_the_plain_one_at_equal_masses() {
    // With one mass everywhere every π is 1/2: the residual product of two neighbours is +1/4
    // when they share a label and −1/4 when not, so the statistic is (2 f − 1) / 4 of the
    // same-neighbour fraction f on the same balanced rows and graph.
    let (bx, bv) = gaussian(3000, 2, 2.0, 50.0, 0.0);
    let (sx, sv) = gaussian(3000, 3, 2.0, 50.0, 1.0);
    let (stars, reference) = (PhaseSpace::new(&sx, &sv), PhaseSpace::new(&bx, &bv));
    let cfg = TwoSampleConfig::default();
    let shells = ShellConfig::spanning(&bx, 4, 0.01, 0.99);
    let plain = two_sample_by_shell(stars, reference, &cfg, Some(&shells)).unwrap();
    let (ms, mr) = (vec![2.0; sx.len()], vec![2.0; bx.len()]);
    let local = LocalMass {
        stars: &ms,
        reference: &mr,
    };
    let w = two_sample_mass_weighted(stars, reference, local, &cfg, Some(&shells)).unwrap();
    eprintln!("plain {plain:?}\nweighted {w:?}");
    assert!(w.mass_weighted && !plain.mass_weighted);
    assert_eq!((w.n_stars, w.n_reference), (3000, 3000));
    assert!((w.statistic - (2.0 * plain.statistic - 1.0) / 4.0).abs() < 1e-12);
    // The exact Bernoulli null and the permutation null agree on the spread (to their noise).
    assert!(
        (w.null_sd / (plain.null_sd / 2.0) - 1.0).abs() < 0.15,
        "{w:?} {plain:?}"
    );
    assert!(w.z > 5.0 && (w.z / plain.z - 1.0).abs() < 0.15);
    // Shell parts add up to the whole z (every point here lies in some shell or not: the rest).
    assert_eq!(w.shells.len(), plain.shells.len());
    for (a, b) in w.shells.iter().zip(&plain.shells) {
        assert!((a.statistic - (2.0 * b.statistic - 1.0) / 4.0).abs() < 1e-12);
        assert_eq!((a.n_stars, a.n_reference), (b.n_stars, b.n_reference));
    }
}

#[test]
fn mass_weighted_two_sample_has_a_unit_normal_null_and_catches_a_flow_of_the_counts() {
    // Stars of the mass density against particles of the number density: 30 independent
    // pairs (800 stars, 1 200 particles: the samples need not be balanced) give z of mean 0
    // and spread 1 (exact local masses; 200 balanced pairs gave mean −0.04, spread 0.98), and
    // so do local masses estimated from 30 000 training particles; stars of the number
    // density (a flow that ignored the masses) fail.
    let cfg = TwoSampleConfig::default();
    let exact = |x: &[[f64; 3]]| x.iter().map(|&p| mass_at(p)).collect::<Vec<f64>>();
    let z_of = |s: u64| {
        let (sx, sv) = mass_density(800, 100 + s);
        let (bx, bv) = gaussian(1200, 200 + s, 1.0, 50.0, 0.0);
        let (ms, mr) = (exact(&sx), exact(&bx));
        let local = LocalMass {
            stars: &ms,
            reference: &mr,
        };
        let (stars, reference) = (PhaseSpace::new(&sx, &sv), PhaseSpace::new(&bx, &bv));
        let t = two_sample_mass_weighted(stars, reference, local, &cfg, None).unwrap();
        assert_eq!((t.n_stars, t.n_reference), (800, 1200));
        t.z
    };
    let zs: Vec<f64> = (0..30).map(z_of).collect();
    let mean = zs.iter().sum::<f64>() / 30.0;
    let sd = (zs.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / 29.0).sqrt();
    eprintln!("null z: mean {mean:.2}, sd {sd:.2}");
    assert!(mean.abs() < 0.6 && (0.65..1.4).contains(&sd), "{zs:?}");

    let (tx, tv) = gaussian(30_000, 7, 1.0, 50.0, 0.0);
    let tm = exact(&tx);
    let training = PhaseSpace {
        mass: Some(&tm),
        ..PhaseSpace::new(&tx, &tv)
    };
    let (bx, bv) = gaussian(8000, 8, 1.0, 50.0, 0.0);
    let reference = PhaseSpace::new(&bx, &bv);
    let mr = local_mass(reference, training, LOCAL_MASS_NEIGHBOURS).unwrap();
    let exact_r = exact(&bx);
    let worst = mr
        .iter()
        .zip(&exact_r)
        .map(|(a, b)| (a / b - 1.0).abs())
        .fold(0.0, f64::max);
    let typical = mr
        .iter()
        .zip(&exact_r)
        .map(|(a, b)| (a / b - 1.0).abs())
        .sum::<f64>()
        / 8000.0;
    eprintln!("local mass vs exact: mean |error| {typical:.3}, worst {worst:.3}");
    // Masses from 1 to 16 within 2 kpc: the 6D neighbours' mean is off by ~10% on average.
    assert!(typical < 0.12, "{typical}");
    let z_with = |sx: &[[f64; 3]], sv: &[[f64; 3]]| {
        let stars = PhaseSpace::new(sx, sv);
        let ms = local_mass(stars, training, LOCAL_MASS_NEIGHBOURS).unwrap();
        let local = LocalMass {
            stars: &ms,
            reference: &mr,
        };
        two_sample_mass_weighted(stars, reference, local, &cfg, None).unwrap()
    };
    let (sx, sv) = mass_density(8000, 9);
    let faithful = z_with(&sx, &sv);
    let (cx, cv) = gaussian(8000, 10, 1.0, 50.0, 0.0);
    let counts = z_with(&cx, &cv);
    eprintln!("faithful {faithful:?}\ncounts {counts:?}");
    assert!(faithful.z.abs() < 3.0, "{faithful:?}");
    assert!(counts.z > 5.0, "{counts:?}");
}

#[test]
fn local_mass_averages_the_nearest_training_masses() {
    // Training particles in two clumps far apart in position, masses 1 and 3: points near each
    // clump get its mass; with fewer training particles than k, the mean of all of them.
    let (ax, av) = gaussian(400, 31, 1.0, 50.0, -20.0);
    let (bx, bv) = gaussian(400, 32, 1.0, 50.0, 20.0);
    let x: Vec<[f64; 3]> = ax.iter().chain(&bx).copied().collect();
    let v: Vec<[f64; 3]> = av.iter().chain(&bv).copied().collect();
    let m: Vec<f64> = (0..800).map(|i| if i < 400 { 1.0 } else { 3.0 }).collect();
    let training = PhaseSpace {
        mass: Some(&m),
        ..PhaseSpace::new(&x, &v)
    };
    let points = [[-20.0, 0.0, 0.0], [20.0, 0.0, 0.0]];
    let zero = [[0.0; 3]; 2];
    let got = local_mass(PhaseSpace::new(&points, &zero), training, 16).unwrap();
    assert_eq!(got, vec![1.0, 3.0]);
    let few = PhaseSpace {
        mass: Some(&m[395..405]),
        ..PhaseSpace::new(&x[395..405], &v[395..405])
    };
    let all = local_mass(PhaseSpace::new(&points, &zero), few, 16).unwrap();
    assert!(all.iter().all(|&a| (a - 2.0).abs() < 1e-12), "{all:?}");
    let none = PhaseSpace {
        mass: Some(&m[..0]),
        ..PhaseSpace::new(&x[..0], &v[..0])
    };
    let unweighed = PhaseSpace::new(&x, &v);
    for bad in [none, unweighed] {
        assert!(local_mass(PhaseSpace::new(&points, &zero), bad, 16).is_err());
    }
}
