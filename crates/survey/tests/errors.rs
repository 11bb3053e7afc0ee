//! Gaia error model: published relations at chosen magnitudes, and the scatter of draws.

use rand::SeedableRng;
use survey::errors::*;

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs()
}

#[test]
fn parallax_sigma_matches_the_published_relation() {
    // sqrt(40 + 800 z + 30 z^2) µas, z = 10^(0.4 (G - 15)), computed by hand:
    // G = 15: z = 1 -> sqrt(870); G = 17: z = 10^0.8; G = 20: z = 100 -> sqrt(380040).
    let dr3 = GaiaRelease::Dr3;
    assert!(close(
        parallax_sigma_uas(15.0, dr3),
        29.49576240750525,
        1e-12
    ));
    assert!(close(
        parallax_sigma_uas(17.0, dr3),
        79.25894440062925,
        1e-12
    ));
    assert!(close(
        parallax_sigma_uas(20.0, dr3),
        616.4738437273718,
        1e-12
    ));
    // Bright floor at G = 13.
    assert_eq!(parallax_sigma_uas(8.0, dr3), parallax_sigma_uas(13.0, dr3));
    assert!(close(
        parallax_sigma_uas(10.0, dr3),
        12.943918314264115,
        1e-12
    ));
    // Positions and proper motions scale the parallax σ: 0.80/0.70 and 1.03/0.89.
    let (a, d) = position_sigma_uas(17.0, dr3);
    assert!(close(a, 0.80 * 79.25894440062925, 1e-12) && close(d, 0.70 * 79.25894440062925, 1e-12));
    let (pa, pd) = proper_motion_sigma_uasyr(17.0, dr3);
    assert!(
        close(pa, 1.03 * 79.25894440062925, 1e-12) && close(pd, 0.89 * 79.25894440062925, 1e-12)
    );
    // DR4 / DR5: sqrt(33.12 / T) on parallaxes, (33.12 / T)^1.5 on proper motions.
    let f4 = 0.7492368999211062;
    let f5 = 0.5275597859305544;
    assert!(close(
        parallax_sigma_uas(17.0, GaiaRelease::Dr4),
        f4 * 79.25894440062925,
        1e-12
    ));
    assert!(close(
        parallax_sigma_uas(17.0, GaiaRelease::Dr5),
        f5 * 79.25894440062925,
        1e-12
    ));
    let (pa4, _) = proper_motion_sigma_uasyr(17.0, GaiaRelease::Dr4);
    assert!(close(pa4, 1.03 * f4.powi(3) * 79.25894440062925, 1e-12));
    // The performance pages' rounded DR4 factor 0.58 × σ_ϖ(DR4).
    assert!((pa4 / parallax_sigma_uas(17.0, GaiaRelease::Dr4) - 0.58).abs() < 0.005);
    assert_eq!(GaiaRelease::parse("DR4").unwrap(), GaiaRelease::Dr4);
    assert!(GaiaRelease::parse("dr9").is_err());
}

#[test]
fn photometric_splines_match_scipy() {
    // log10 σ from scipy.interpolate.BSpline(knots, coeffs, 3) on the DPAC tables (n_ref obs),
    // then scaled to the DR3 median numbers of observations (G 351, BP/RP 40).
    let cases = [
        (GaiaBand::G, 5.5, -3.2157212458641475, 200.0 / 351.0),
        (GaiaBand::G, 10.3, -3.524708795555556, 200.0 / 351.0),
        (GaiaBand::G, 17.0, -3.0104315566666666, 200.0 / 351.0),
        (GaiaBand::G, 20.95, -1.9308218702387536, 200.0 / 351.0),
        (GaiaBand::Bp, 15.0, -2.7469169300000003, 0.5),
        (GaiaBand::Bp, 20.0, -1.2019882705377438, 0.5),
        (GaiaBand::Rp, 10.3, -3.405844087516667, 0.5),
        (GaiaBand::Rp, 20.0, -0.9933188124523568, 0.5),
    ];
    for (band, m, log_sigma, ratio) in cases {
        let want = 10f64.powf(log_sigma) * f64::sqrt(ratio);
        let got = photometric_sigma_mag(band, m, GaiaRelease::Dr3);
        assert!(close(got, want, 1e-10), "{band:?} {m}: {got} vs {want}");
    }
    // Clamped outside [4.02, 20.98]; DR5 has 1240/351 times the G observations.
    let g = |m, r| photometric_sigma_mag(GaiaBand::G, m, r);
    assert_eq!(g(23.0, GaiaRelease::Dr3), g(20.98333, GaiaRelease::Dr3));
    assert!(close(
        g(17.0, GaiaRelease::Dr5),
        g(17.0, GaiaRelease::Dr3) * (351.0f64 / 1240.0).sqrt(),
        1e-12
    ));
}

#[test]
fn radial_velocity_model() {
    let dr3 = GaiaRelease::Dr3;
    // Dwarf 5500 K, log g 4.4 (group 5000-6000 K): 0.13 + 7 exp(0.9 (12 - 14)).
    assert!(close(
        radial_velocity_sigma_kms(12.0, 5500.0, 4.4, dr3),
        1.287092217551106,
        1e-12
    ));
    // Giant 4500 K, log g 2.5: 0.12 + 6 exp(12 - 14).
    assert!(close(
        radial_velocity_sigma_kms(12.0, 4500.0, 2.5, dr3),
        0.9320116994196762,
        1e-12
    ));
    // Too faint for DR3, too hot for the model.
    assert!(radial_velocity_sigma_kms(14.5, 5500.0, 4.4, dr3).is_nan());
    assert!(radial_velocity_sigma_kms(10.0, 20000.0, 4.0, dr3).is_nan());
    // DR4 reaches G_RVS = 16 ... but σ > 20 km/s is not published: 0.13 + 7 e^{1.8} ≈ 42.
    assert!(radial_velocity_sigma_kms(16.0, 5500.0, 4.4, GaiaRelease::Dr4).is_nan());
    // G_RVS: G − G_RP = 0.5 -> G_RP − 0.0397 − 0.1426 − 0.00825 − 0.0108375.
    assert!((grvs_from_g_rp(15.0, 14.5) - (14.5 - 0.2013875)).abs() < 1e-12);
}

fn batch(n: usize, g: f64) -> Vec<Vec<f64>> {
    vec![
        vec![120.0; n],
        vec![-30.0; n],
        vec![0.5; n],
        vec![-3.0; n],
        vec![2.0; n],
        vec![15.0; n],
        vec![g; n],
        vec![g + 0.4; n],
        vec![g - 0.55; n],
        vec![5500.0; n],
        vec![4.4; n],
    ]
}

fn truth(c: &[Vec<f64>]) -> TrueObservables<'_> {
    TrueObservables {
        ra_deg: &c[0],
        dec_deg: &c[1],
        parallax_mas: &c[2],
        pmra_cosdec_masyr: &c[3],
        pmdec_masyr: &c[4],
        radial_velocity_kms: &c[5],
        g_mag: &c[6],
        bp_mag: &c[7],
        rp_mag: &c[8],
        teff_k: &c[9],
        logg: &c[10],
    }
}

#[test]
fn observed_minus_true_scatter_equals_sigma() {
    let n = 200_000;
    let cols = batch(n, 13.8);
    let t = truth(&cols);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let o = observe(&t, GaiaRelease::Dr3, &mut rng).unwrap();
    let check = |name: &str, obs: &[f64], tru: &[f64], sig: &[f64], scale: f64| {
        let r: Vec<f64> = (0..n).map(|i| (obs[i] - tru[i]) * scale / sig[i]).collect();
        let mean = r.iter().sum::<f64>() / n as f64;
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
        // Standard errors: mean 1/sqrt(n) = 0.0022, sd 1/sqrt(2n) = 0.0016.
        assert!(
            mean.abs() < 0.01 && (sd - 1.0).abs() < 0.008,
            "{name}: mean {mean}, sd {sd}"
        );
    };
    check(
        "parallax",
        &o.parallax_mas,
        t.parallax_mas,
        &o.parallax_error_mas,
        1.0,
    );
    check(
        "pmra",
        &o.pmra_cosdec_masyr,
        t.pmra_cosdec_masyr,
        &o.pmra_error_masyr,
        1.0,
    );
    check(
        "pmdec",
        &o.pmdec_masyr,
        t.pmdec_masyr,
        &o.pmdec_error_masyr,
        1.0,
    );
    check(
        "rv",
        &o.radial_velocity_kms,
        t.radial_velocity_kms,
        &o.radial_velocity_error_kms,
        1.0,
    );
    check("G", &o.g_mag, t.g_mag, &o.g_mag_error, 1.0);
    check("BP", &o.bp_mag, t.bp_mag, &o.bp_mag_error, 1.0);
    check("RP", &o.rp_mag, t.rp_mag, &o.rp_mag_error, 1.0);
    let cosd = 30f64.to_radians().cos();
    check("dec", &o.dec_deg, t.dec_deg, &o.dec_error_mas, 3.6e6);
    check(
        "ra",
        &o.ra_deg,
        t.ra_deg,
        &o.ra_cosdec_error_mas,
        3.6e6 * cosd,
    );
    // σ are the model's at this magnitude.
    assert!(close(
        o.parallax_error_mas[0],
        parallax_sigma_uas(13.8, GaiaRelease::Dr3) * 1e-3,
        1e-12
    ));
    assert!(o.radial_velocity_error_kms[0].is_finite());
}

#[test]
fn draws_are_reproducible_and_independent_of_batching() {
    let n = 1000;
    let cols = batch(n, 16.0);
    let ids: Vec<u64> = (0..n as u64).map(|i| 1_000_000 + 7 * i).collect();
    let all = observe_per_star(&truth(&cols), GaiaRelease::Dr3, 42, &ids).unwrap();
    // The same stars in two batches.
    let half: Vec<Vec<f64>> = cols.iter().map(|c| c[600..].to_vec()).collect();
    let part = observe_per_star(&truth(&half), GaiaRelease::Dr3, 42, &ids[600..]).unwrap();
    assert_eq!(&all.parallax_mas[600..], &part.parallax_mas[..]);
    assert_eq!(&all.g_mag[600..], &part.g_mag[..]);
    // Another seed, other draws.
    let other = observe_per_star(&truth(&cols), GaiaRelease::Dr3, 43, &ids).unwrap();
    assert_ne!(all.parallax_mas, other.parallax_mas);
    // A batch rng with the same seed gives the same draws.
    let mut r1 = rand::rngs::StdRng::seed_from_u64(5);
    let mut r2 = rand::rngs::StdRng::seed_from_u64(5);
    let a = observe(&truth(&cols), GaiaRelease::Dr4, &mut r1).unwrap();
    let b = observe(&truth(&cols), GaiaRelease::Dr4, &mut r2).unwrap();
    assert_eq!(a.pmdec_masyr, b.pmdec_masyr);
    // Mismatched lengths are an error naming the counts.
    let e = observe_per_star(&truth(&cols), GaiaRelease::Dr3, 1, &ids[..5])
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 star ids for 1000 stars"), "{e}");
}
