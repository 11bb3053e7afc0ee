//! The composed chain on a star cluster 1 kpc from the Sun.

use rand::{RngExt, SeedableRng};
use survey::extinction::{DustModel, NH_PER_AV_GUVER_OZEL};
use survey::gas_column::ColumnGrid;
use survey::isochrone::shipped_gaia_edr3_dir;
use survey::isochrone_interp::FLAG_REMNANT;
use survey::selection::MagnitudeCut;
use survey::*;

/// Positions, velocities, initial masses and ids of a cluster.
type Cluster = (Vec<[f64; 3]>, Vec<[f64; 3]>, Vec<f64>, Vec<u64>);

fn cluster(n: usize) -> Cluster {
    let sun = Observer::default();
    let p = sun.position_galaxy_kpc();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    // 1 kpc from the Sun toward the galaxy centre (+x from the Sun at φ = 180°), 5 pc wide.
    let pos = (0..n)
        .map(|_| {
            [
                p[0] + 1.0 + 0.005 * (rng.random::<f64>() - 0.5),
                p[1] + 0.005 * (rng.random::<f64>() - 0.5),
                p[2] + 0.005 * (rng.random::<f64>() - 0.5),
            ]
        })
        .collect();
    let vel = vec![[0.0, -230.0, 0.0]; n];
    // Salpeter-like masses 0.1-3 Msun.
    let mass = (0..n)
        .map(|_| {
            let (a, b) = (0.1f64.powf(-1.35), 3f64.powf(-1.35));
            (a + rng.random::<f64>() * (b - a)).powf(-1.0 / 1.35)
        })
        .collect();
    (pos, vel, mass, (0..n as u64).collect())
}

#[test]
fn cluster_at_one_kpc() {
    let iso = IsochroneGrid::new(read_isochrone_dir(&shipped_gaia_edr3_dir()).unwrap()).unwrap();
    let n = 5000;
    let (pos, vel, mass, ids) = cluster(n);
    let age = vec![3.0; n];
    let z = vec![0.0105; n];
    let stars = StarBatch {
        pos_kpc: &pos,
        vel_kms: &vel,
        initial_mass_msun: &mass,
        age_gyr: &age,
        metallicity: &z,
        ids: &ids,
    };
    let sky = SkyProjector::new(&Observer::default());
    let mut settings = MockSettings {
        release: errors::GaiaRelease::Dr3,
        dust: Dust::Model(DustModel::None),
        cut: MagnitudeCut::default(),
        seed: 99,
    };
    let clean = mock_observe(&iso, &sky, &settings, &stars).unwrap();
    // Toward the centre: l ≈ 0, distance ≈ 1 kpc, distance modulus ≈ 10.
    let i = 0;
    assert!((clean.astrometry.distance_kpc[i] - 1.0).abs() < 0.01);
    assert!((clean.astrometry.distance_modulus[i] - 10.0).abs() < 0.03);
    assert!(clean.astrometry.l_deg[i] < 1.0 || clean.astrometry.l_deg[i] > 359.0);
    // Intrinsic apparent = absolute + distance modulus; no dust: reddened = intrinsic.
    let g_abs = &clean.photometry.abs_mag[0];
    let remnants = clean
        .photometry
        .flags
        .iter()
        .filter(|f| **f & FLAG_REMNANT != 0)
        .count();
    #[allow(clippy::needless_range_loop)] // several parallel columns
    for k in 0..n {
        if clean.photometry.flags[k] & FLAG_REMNANT != 0 {
            assert!(!clean.selected[k]);
            continue;
        }
        let want = g_abs[k] + clean.astrometry.distance_modulus[k];
        assert!((clean.intrinsic_g[k] - want).abs() < 1e-12);
        assert_eq!(clean.reddened.g[k], clean.intrinsic_g[k]);
        assert_eq!(clean.selected[k], clean.observed.g_mag[k] <= 21.0);
    }
    // Turnoff at 3 Gyr ~1.35 Msun: a few percent of 0.1-3 Msun stars are remnants.
    assert!(remnants > 50 && remnants < 600, "{remnants}");
    // Stars above ~0.25 Msun (M_G < 11) make the cut at 1 kpc: about 28% of Salpeter 0.1-3 Msun.
    let kept = clean.n_selected();
    assert!(kept > n / 5 && kept < n / 3, "kept {kept} of {n}");
    // Far from the limit, the observed cut agrees with the true magnitude.
    for k in 0..n {
        let g = clean.intrinsic_g[k];
        if g < 20.8 {
            assert!(clean.selected[k], "G {g}");
        } else if g > 21.2 {
            assert!(!clean.selected[k], "G {g}");
        }
    }

    // A uniform screen of 1 mag/kpc: A_G ≈ 0.8-1 for these stars, fewer stars kept.
    settings.dust = Dust::Model(DustModel::PerKpc(1.0));
    let dusty = mock_observe(&iso, &sky, &settings, &stars).unwrap();
    let k = (0..n).find(|&k| clean.selected[k]).unwrap();
    let ag = dusty.reddened.g[k] - dusty.intrinsic_g[k];
    assert!((0.6..1.0).contains(&ag), "{ag}");
    assert!(dusty.n_selected() < kept);

    // A0 given per star (the pipeline's gas columns): equal to the screen's A0, same output.
    let a0: Vec<f64> = clean.astrometry.distance_kpc.to_vec();
    settings.dust = Dust::PerStar(&a0);
    let given = mock_observe(&iso, &sky, &settings, &stars).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert!(bits(&given.reddened.g) == bits(&dusty.reddened.g));
    assert!(bits(&given.observed.g_mag) == bits(&dusty.observed.g_mag));
    assert_eq!(given.selected, dusty.selected);
    settings.dust = Dust::PerStar(&a0[1..]);
    let e = mock_observe(&iso, &sky, &settings, &stars).unwrap_err();
    assert!(e.to_string().contains("A0 values"), "{e}");

    // Gas with no atoms: A0 = 0, identical to no dust (same seed, same draws).
    let empty =
        ColumnGrid::from_density([-20.0; 3], 1.0, [40; 3], vec![0.0; 40 * 40 * 40]).unwrap();
    settings.dust = Dust::Gas {
        grid: &empty,
        nh_per_av: NH_PER_AV_GUVER_OZEL,
    };
    let gas = mock_observe(&iso, &sky, &settings, &stars).unwrap();
    assert!(gas.reddened.a_g.iter().all(|a| *a == 0.0));
    assert_eq!(gas.observed.g_mag[k], clean.observed.g_mag[k]);
    assert_eq!(gas.selected, clean.selected);
}

#[test]
fn shared_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<IsochroneGrid>();
    check::<SkyProjector>();
    check::<ColumnGrid>();
    check::<MockSettings<'static>>();
}

#[test]
#[ignore = "benchmark: cargo test -p survey --release --test mock -- --ignored --nocapture"]
fn bench_mock_observe() {
    let iso = IsochroneGrid::new(read_isochrone_dir(&shipped_gaia_edr3_dir()).unwrap()).unwrap();
    let n = 1_000_000;
    let (pos, vel, mass, ids) = cluster(n);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let age: Vec<f64> = (0..n).map(|_| 0.1 + 12.0 * rng.random::<f64>()).collect();
    let z: Vec<f64> = (0..n)
        .map(|_| 10f64.powf(-3.0 + 1.5 * rng.random::<f64>()))
        .collect();
    let stars = StarBatch {
        pos_kpc: &pos,
        vel_kms: &vel,
        initial_mass_msun: &mass,
        age_gyr: &age,
        metallicity: &z,
        ids: &ids,
    };
    let sky = SkyProjector::new(&Observer::default());
    let settings = MockSettings {
        release: errors::GaiaRelease::Dr3,
        dust: Dust::Model(DustModel::PerKpc(0.5)),
        cut: MagnitudeCut::default(),
        seed: 1,
    };
    let t = std::time::Instant::now();
    let cols = mock_observe(&iso, &sky, &settings, &stars).unwrap();
    let dt = t.elapsed().as_secs_f64();
    println!(
        "mock_observe: {n} stars in {dt:.2} s = {:.2e} stars/s on one core ({} selected)",
        n as f64 / dt,
        cols.n_selected()
    );
}
