//! Astrometry against astropy 8 (fixtures/astrometry_astropy.csv, from
//! fixtures/make_astropy_fixtures.py): 1e-9 rad on angles, 1e-6 relative on the rest.

use survey::astrometry::SkyProjector;
use survey::observer::Observer;

struct Row {
    observer: Observer,
    pos: [f64; 3],
    vel: [f64; 3],
    expect: [f64; 10],
}

fn fixture() -> Vec<Row> {
    let text = include_str!("../fixtures/astrometry_astropy.csv");
    let mut rows = vec![];
    for line in text.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let x: Vec<f64> = f[1..].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(x.len(), 22);
        rows.push(Row {
            observer: Observer {
                azimuth_deg: x[0],
                r0_kpc: x[1],
                z_sun_kpc: x[2],
                v_sun_kms: [x[3], x[4], x[5]],
            },
            pos: [x[6], x[7], x[8]],
            vel: [x[9], x[10], x[11]],
            expect: x[12..22].try_into().unwrap(),
        });
    }
    rows
}

/// Angle difference in radians, wrapped.
fn dang(a_deg: f64, b_deg: f64) -> f64 {
    let d = (a_deg - b_deg).rem_euclid(360.0);
    d.min(360.0 - d).to_radians()
}

#[test]
fn matches_astropy_icrs_and_galactic() {
    let rows = fixture();
    assert_eq!(rows.len(), 160);
    let (mut worst_ang, mut worst_rel) = (0.0f64, 0.0f64);
    for (i, r) in rows.iter().enumerate() {
        let a = SkyProjector::new(&r.observer).project(r.pos, r.vel);
        let e = &r.expect;
        // Angles: ra, dec, l, b; ra and l measured on the sky (× cos of the latitude).
        let cdec = e[2].to_radians().cos();
        let cb = e[7].to_radians().cos();
        let ang = [
            dang(a.ra_deg, e[1]) * cdec,
            dang(a.dec_deg, e[2]),
            dang(a.l_deg, e[6]) * cb,
            dang(a.b_deg, e[7]),
        ];
        for (k, d) in ang.iter().enumerate() {
            assert!(*d < 1e-9, "row {i} angle {k}: {d:e} rad");
            worst_ang = worst_ang.max(*d);
        }
        // Distance, proper motions and radial velocity: relative to the star's total proper
        // motion / speed scale (a component near zero has no meaningful relative error).
        let pm = e[3].hypot(e[4]);
        let checks = [
            (a.distance_kpc, e[0], e[0]),
            (a.pmra_cosdec_masyr, e[3], pm),
            (a.pmdec_masyr, e[4], pm),
            (a.radial_velocity_kms, e[5], e[5].abs().max(1.0)),
            (a.pml_cosb_masyr, e[8], pm),
            (a.pmb_masyr, e[9], pm),
        ];
        for (k, (got, want, scale)) in checks.iter().enumerate() {
            let rel = (got - want).abs() / scale;
            assert!(rel < 1e-6, "row {i} quantity {k}: {got} vs {want}");
            worst_rel = worst_rel.max(rel);
        }
        assert!((a.parallax_mas - 1.0 / e[0]).abs() <= 1e-12 / e[0]);
        assert!((a.distance_modulus - (5.0 * (e[0] * 100.0).log10())).abs() < 1e-12);
    }
    println!("worst angle {worst_ang:e} rad, worst relative {worst_rel:e}");
}

#[test]
fn galactic_centre_is_at_l0_b0() {
    let p = SkyProjector::new(&Observer::default()).project([0.0; 3], [0.0; 3]);
    assert!((p.distance_kpc - 8.122).abs() < 1e-12);
    // Astropy's galcen_coord (Sgr A*, v4.0 defaults).
    assert!((p.ra_deg - 266.4051).abs() < 1e-9 && (p.dec_deg + 28.936175).abs() < 1e-9);
    let l = if p.l_deg > 180.0 {
        p.l_deg - 360.0
    } else {
        p.l_deg
    };
    assert!(
        l.abs() < 1e-3 && p.b_deg.abs() < 1e-3,
        "l {l} b {}",
        p.b_deg
    );
    // A star at rest at the centre mirrors the Sun's motion: pml < 0 (the Sun moves toward
    // l = 90°), radial velocity = -U = -12.9 km/s to 1e-3.
    assert!(p.pml_cosb_masyr < -6.0, "{}", p.pml_cosb_masyr);
    assert!(
        (p.radial_velocity_kms + 12.9).abs() < 0.05,
        "{}",
        p.radial_velocity_kms
    );
}

#[test]
fn a_star_ahead_of_the_sun_is_at_l90() {
    // Along the rotation from the Sun (galaxy frame −y at φ = 180°): l = 90°, to the 2e-4°
    // by which astropy's Galactocentric axes (set by Sgr A*'s ICRS position) miss the
    // Galactic ones.
    let sun = Observer::default();
    let p = sun.position_galaxy_kpc();
    let a = SkyProjector::new(&sun).project([p[0], p[1] - 1.0, p[2]], sun.velocity_galaxy_kms());
    assert!(
        (a.l_deg - 90.0).abs() < 2e-4 && a.b_deg.abs() < 2e-4,
        "{} {}",
        a.l_deg,
        a.b_deg
    );
    assert!(a.radial_velocity_kms.abs() < 1e-9 && a.pml_cosb_masyr.abs() < 1e-9);
    // Toward −z of the galaxy frame is the North Galactic Pole, tilted by the Sun's height
    // (b = 0 passes through the centre): θ = asin(z_sun / R0) = 0.1467°.
    let a = SkyProjector::new(&sun).project([p[0], p[1], p[2] - 1.0], [0.0; 3]);
    let theta = (0.0208f64 / 8.122).asin().to_degrees();
    assert!((a.b_deg - (90.0 - theta)).abs() < 2e-4, "{}", a.b_deg);
}
