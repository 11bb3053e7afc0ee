//! Each model's draw against its analytic truth: density, σ_r, β (spheroid); rotation and
//! dispersions (disc); track, width and satellite (stream); masses; determinism; files.

use std::time::Instant;

use galaxies::{generate, DiscBulge, HaloStream, MassWeights, Model, Options, Spheroid};
use upsample::fidelity::radius;

/// (v_r, v_θ, v_φ) at `x`.
fn spherical(x: [f64; 3], v: [f64; 3]) -> [f64; 3] {
    let r = (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt();
    let big_r = x[0].hypot(x[1]);
    let vr = (x[0] * v[0] + x[1] * v[1] + x[2] * v[2]) / r;
    let vphi = (x[0] * v[1] - x[1] * v[0]) / big_r;
    let vtheta = (x[0] * x[2] * v[0] + x[1] * x[2] * v[1] - big_r * big_r * v[2]) / (r * big_r);
    [vr, vtheta, vphi]
}

#[test]
fn spheroid_draw_matches_its_density_sigma_r_and_beta_in_shells() {
    let model = Spheroid::default();
    let start = Instant::now();
    let g = generate(Model::Spheroid(model), Options::new(50_000, 1));
    let took = start.elapsed().as_secs_f64();
    eprintln!("50k + 50k spheroid particles in {took:.2} s");
    assert!(took < 10.0, "generation took {took} s");
    let p = &g.sample.particles;
    let df = model.df;
    let a = df.profile.scale;
    // σ_r tabulated on a log grid (the Jeans integral per particle would be slow).
    let grid: Vec<f64> = (0..=240)
        .map(|i| 1e-3 * a * 10f64.powf(i as f64 / 40.0))
        .collect();
    let sig: Vec<f64> = grid.iter().map(|&r| df.sigma_r(r)).collect();
    let sigma_r = |r: f64| {
        let t = (r / grid[0]).log10() * 40.0;
        let i = (t.floor() as usize).min(grid.len() - 2);
        let f = t - i as f64;
        (sig[i].ln() * (1.0 - f) + sig[i + 1].ln() * f).exp()
    };
    let n = p.len() as f64;
    let m_drawn = model.drawn_mass();
    let edges: Vec<f64> = (0..=8)
        .map(|i| 0.1 * a * 10f64.powf(i as f64 / 4.0))
        .collect();
    for w in edges.windows(2) {
        let rows: Vec<usize> = (0..p.len())
            .filter(|&i| (w[0]..w[1]).contains(&radius(p.position[i])))
            .collect();
        let k = rows.len() as f64;
        // Density: the shell's share against the analytic mass fraction.
        let share = (df.profile.enclosed_mass(w[1]) - df.profile.enclosed_mass(w[0])) / m_drawn;
        let share_err = (share * (1.0 - share) / n).sqrt();
        assert!(
            (k / n - share).abs() < 4.0 * share_err,
            "shell {w:?}: share {} vs {share} ± {share_err}",
            k / n
        );
        // σ_r and β: the shell's moments against the analytic ones averaged over its particles.
        let (mut vr2, mut vt2, mut sr2, mut st2) = (0.0, 0.0, 0.0, 0.0);
        for &i in &rows {
            let (x, r) = (p.position[i], radius(p.position[i]));
            let s = spherical(x, p.velocity[i]);
            vr2 += s[0] * s[0];
            vt2 += 0.5 * (s[1] * s[1] + s[2] * s[2]);
            sr2 += sigma_r(r).powi(2);
            st2 += (sigma_r(r) * (1.0 - df.beta(r)).sqrt()).powi(2);
        }
        let ratio = (vr2 / sr2).sqrt();
        let ratio_err = (0.5 / k).sqrt();
        let (beta, beta_true) = (1.0 - vt2 / vr2, 1.0 - st2 / sr2);
        let beta_err = (1.0 - beta_true) * (3.0 / k).sqrt();
        eprintln!(
            "r {:.2}-{:.2} kpc: n {k}, σ_r/truth {ratio:.4} ± {ratio_err:.4}, β {beta:.3} vs {beta_true:.3} ± {beta_err:.3}",
            w[0], w[1]
        );
        assert!(
            (ratio - 1.0).abs() < 4.0 * ratio_err,
            "shell {w:?}: σ_r ratio {ratio}"
        );
        assert!(
            (beta - beta_true).abs() < 4.0 * beta_err,
            "shell {w:?}: β {beta} vs {beta_true}"
        );
    }
    // β really rises: isotropic inside, radial outside.
    assert!(df.beta(0.2 * a) < 0.05 && df.beta(10.0 * a) > 0.9);
}

#[test]
fn draws_are_deterministic_and_the_truth_draw_is_independent() {
    let opts = Options::new(3000, 7);
    let a = generate(Model::by_name("stream").unwrap(), opts.clone());
    let b = generate(Model::by_name("stream").unwrap(), opts);
    assert_eq!(a.sample.particles, b.sample.particles);
    assert_eq!(a.sample.label, b.sample.label);
    assert_eq!(a.truth.particles, b.truth.particles);
    assert_ne!(a.sample.particles.position, a.truth.particles.position);
    assert!(a.truth.particles.id[0] > a.sample.particles.id[a.sample.particles.len() - 1]);
    let c = generate(Model::by_name("stream").unwrap(), Options::new(3000, 8));
    assert_ne!(a.sample.particles.position, c.sample.particles.position);
}

#[test]
fn disc_follows_its_stated_rotation_dispersions_and_thickness() {
    let m = DiscBulge::default();
    let g = generate(Model::DiscBulge(m), Options::new(50_000, 2));
    let p = &g.sample.particles;
    let disc: Vec<usize> = (0..p.len()).filter(|&i| g.sample.label[i] == 0).collect();
    let bulge = p.len() - disc.len();
    let want = m.bulge_spheroid().drawn_mass() / (m.disc_mass + m.bulge_spheroid().drawn_mass());
    assert!((bulge as f64 / p.len() as f64 - want).abs() < 1e-3);
    // Mean |z| of sech²(z/z_d) is z_d ln 2.
    let mz = disc.iter().map(|&i| p.position[i][2].abs()).sum::<f64>() / disc.len() as f64;
    let ez = m.scale_height * 2f64.ln();
    assert!(
        (mz / ez - 1.0).abs() < 4.0 * 0.82 / (disc.len() as f64).sqrt(),
        "⟨|z|⟩ {mz} vs {ez}"
    );
    for (lo, hi) in [(1.0, 2.0), (3.0, 4.0), (6.0, 7.0), (10.0, 12.0)] {
        let (mut vphi, mut vphi_true, mut rr, mut zz, mut pp, mut k): (
            f64,
            f64,
            f64,
            f64,
            f64,
            f64,
        ) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for &i in &disc {
            let (x, v) = (p.position[i], p.velocity[i]);
            let big_r = x[0].hypot(x[1]);
            if !(lo..hi).contains(&big_r) {
                continue;
            }
            let vr = (x[0] * v[0] + x[1] * v[1]) / big_r;
            let vp = (x[0] * v[1] - x[1] * v[0]) / big_r;
            vphi += vp;
            vphi_true += m.mean_vphi(big_r);
            rr += (vr / m.sigma_r(big_r)).powi(2);
            zz += (v[2] / m.sigma_z(big_r)).powi(2);
            pp += ((vp - m.mean_vphi(big_r)) / m.sigma_phi(big_r)).powi(2);
            k += 1.0;
        }
        let err = 4.0 * (2.0 / k).sqrt();
        let sp = m.sigma_phi(0.5 * (lo + hi));
        eprintln!(
            "R {lo}-{hi}: n {k}, v̄_φ {:.1} vs {:.1}, σ_R², σ_z², σ_φ² ratios {:.3} {:.3} {:.3}",
            vphi / k,
            vphi_true / k,
            rr / k,
            zz / k,
            pp / k
        );
        assert!(
            (vphi - vphi_true).abs() / k < 4.0 * sp / k.sqrt(),
            "R {lo}-{hi}: v̄_φ"
        );
        for (what, q) in [("σ_R", rr), ("σ_z", zz), ("σ_φ", pp)] {
            assert!(
                (q / k - 1.0).abs() < err,
                "R {lo}-{hi}: {what}² ratio {}",
                q / k
            );
        }
    }
    // The rotation curve is that of the stated potential: bulge + cored halo term.
    assert!(
        (m.circular_speed(30.0) - 200.72).abs() < 0.01,
        "{}",
        m.circular_speed(30.0)
    );
}

#[test]
fn stream_is_a_thin_cold_tube_and_the_satellite_sits_where_stated() {
    let m = HaloStream::default();
    let g = generate(Model::HaloStream(m), Options::new(40_000, 3));
    let p = &g.sample.particles;
    let track = m.track();
    let count = |l: u8| g.sample.label.iter().filter(|&&x| x == l).count();
    assert_eq!(count(1), 1200);
    assert_eq!(count(2), 1200);
    let (mut d2, mut dv2, mut k) = (0.0, 0.0, 0.0);
    for i in (0..p.len()).filter(|&i| g.sample.label[i] == 1) {
        let (d, j) = HaloStream::distance_to_track(&track, p.position[i]);
        d2 += d * d;
        dv2 += (0..3)
            .map(|c| (p.velocity[i][c] - track[j][c + 3]).powi(2))
            .sum::<f64>();
        k += 1.0;
    }
    // Across the track two of the three offsets remain: ⟨d²⟩ = 2 σ².
    let width = (d2 / k / 2.0).sqrt();
    let disp = (dv2 / k / 3.0).sqrt();
    eprintln!("stream width {width:.3} kpc, dispersion {disp:.2} km/s");
    assert!((width / m.stream_width - 1.0).abs() < 0.06, "width {width}");
    assert!(
        (disp / m.stream_dispersion - 1.0).abs() < 0.06,
        "dispersion {disp}"
    );
    // The track is an orbit: its energy is conserved.
    let energy = |s: &[f64; 6]| {
        0.5 * (s[3] * s[3] + s[4] * s[4] + s[5] * s[5])
            + m.halo.potential(radius([s[0], s[1], s[2]]))
    };
    let (e0, e1) = (energy(&track[0]), energy(&track[track.len() - 1]));
    assert!(((e1 - e0) / e0).abs() < 1e-5, "orbit energy {e0} → {e1}");
    // Satellite: centre, bulk velocity and the Plummer ⟨v²⟩ = 3π GM / 32b.
    let sat: Vec<usize> = (0..p.len()).filter(|&i| g.sample.label[i] == 2).collect();
    let n = sat.len() as f64;
    let mut v2 = 0.0;
    for c in 0..3 {
        let mx = sat.iter().map(|&i| p.position[i][c]).sum::<f64>() / n;
        let mv = sat.iter().map(|&i| p.velocity[i][c]).sum::<f64>() / n;
        assert!(
            (mx - m.satellite_position[c]).abs() < 0.05,
            "satellite centre {c}: {mx}"
        );
        assert!(
            (mv - m.satellite_velocity[c]).abs() < 0.5,
            "satellite velocity {c}: {mv}"
        );
        v2 += sat
            .iter()
            .map(|&i| (p.velocity[i][c] - m.satellite_velocity[c]).powi(2))
            .sum::<f64>()
            / n;
    }
    let want =
        3.0 * std::f64::consts::PI * galaxies::G * m.satellite.mass / (32.0 * m.satellite.scale);
    assert!(
        (v2 / want - 1.0).abs() < 0.08,
        "satellite ⟨v²⟩ {v2} vs {want}"
    );
}

#[test]
fn mass_weights_keep_the_mass_profile_and_thin_the_counts_outside() {
    let model = Spheroid::default();
    let a = model.df.profile.scale;
    let weights = MassWeights {
        gamma: 1.0,
        scale: a,
    };
    let opts = Options {
        mass_weights: Some(weights),
        ..Options::new(50_000, 4)
    };
    let g = generate(Model::Spheroid(model), opts);
    let p = &g.sample.particles;
    let total: f64 = p.mass.iter().sum();
    assert!((total / model.drawn_mass() - 1.0).abs() < 1e-9);
    assert!(g
        .truth
        .particles
        .mass
        .iter()
        .all(|&m| (m - g.truth.particles.mass[0]).abs() < 1e-6));
    for (lo, hi) in [
        (0.0, 0.5 * a),
        (0.5 * a, 2.0 * a),
        (2.0 * a, 10.0 * a),
        (10.0 * a, 40.0 * a),
    ] {
        let rows: Vec<usize> = (0..p.len())
            .filter(|&i| (lo..hi).contains(&radius(p.position[i])))
            .collect();
        let mass: f64 = rows.iter().map(|&i| p.mass[i]).sum();
        let m2: f64 = rows.iter().map(|&i| p.mass[i].powi(2)).sum();
        let want = (model.df.profile.enclosed_mass(hi) - model.df.profile.enclosed_mass(lo))
            / model.drawn_mass();
        let counts = rows.len() as f64 / p.len() as f64;
        eprintln!(
            "r {lo}-{hi}: mass share {:.4} vs {want:.4}, count share {counts:.4}",
            mass / total
        );
        assert!(
            (mass / total - want).abs() < 4.0 * m2.sqrt() / total + 1e-3,
            "r {lo}-{hi}"
        );
        if lo >= 10.0 * a {
            assert!(
                counts < 0.5 * want,
                "outer counts thinned: {counts} vs mass {want}"
            );
        }
    }
}

#[test]
fn galaxy_files_round_trip_through_snapio() {
    let g = generate(Model::by_name("disc").unwrap(), Options::new(2000, 5));
    let dir = tempfile::tempdir().unwrap();
    let w = galaxies::write_galaxy(&g, dir.path(), snapio::Layout::ArepoTng).unwrap();
    let snap = snapio::Snapshot::open(&w.snapshot).unwrap();
    let (stars, _) = snap.read_stars(&snapio::ReadOptions::default()).unwrap();
    assert_eq!(stars.len(), 2000);
    for i in [0, 777, 1999] {
        for c in 0..3 {
            let (a, b) = (stars.position[i][c], g.sample.particles.position[i][c]);
            assert!(
                (a - b).abs() < 1e-5 * (1.0 + b.abs()),
                "row {i}: {a} vs {b}"
            );
        }
        assert_eq!(stars.id[i], g.sample.particles.id[i]);
    }
    let (ids, labels) = snapio::read_side_field_i64(&w.truth_labels, "component").unwrap();
    assert_eq!(ids, g.truth.particles.id);
    assert_eq!(
        labels.iter().filter(|&&l| l == 1).count(),
        g.truth.label.iter().filter(|&&l| l == 1).count()
    );
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&w.model).unwrap()).unwrap();
    assert_eq!(model["model"]["model"], "disc_bulge");
    assert_eq!(model["labels"][1], "bulge");
}
