//! Galaxy frame recovery on a rotating disk shifted and rotated by a known transform.

mod common;

use common::Rng;
use snapio::{select_sphere, FrameOptions, GalaxyFrame, Sphere, StarParticles};

/// Rotation matrix about a unit axis by angle (rad).
fn rot(axis: [f64; 3], ang: f64) -> [[f64; 3]; 3] {
    let (s, c) = ang.sin_cos();
    let [x, y, z] = axis;
    let t = 1.0 - c;
    [
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ]
}

fn apply(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

/// Exponential disk (scale length `rd` kpc, height 0.3 kpc) rotating at 200 km/s about +z, with
/// a non-rotating Hernquist bulge (scale 0.1 rd) holding a fifth of the stars.
fn disk(n: usize, rd: f64, seed: u64) -> StarParticles {
    let mut r = Rng(seed);
    let mut s = StarParticles::with_capacity(n);
    let n_bulge = n / 5;
    for i in 0..n_bulge {
        let u = r.uniform().sqrt();
        let rr = 0.1 * rd * u / (1.0 - u).max(1e-12);
        let cth = r.range(-1.0, 1.0);
        let sth = (1.0 - cth * cth).sqrt();
        let phi = r.range(0.0, 2.0 * std::f64::consts::PI);
        s.position
            .push([rr * sth * phi.cos(), rr * sth * phi.sin(), rr * cth]);
        s.velocity
            .push([80.0 * r.normal(), 80.0 * r.normal(), 80.0 * r.normal()]);
        s.mass.push(r.range(5e3, 2e4));
        s.initial_mass.push(2e4);
        s.id.push(i as u64);
        s.age.push(10.0);
        s.metallicity.push(0.02);
    }
    for i in n_bulge..n {
        // Radius from the exponential surface density: sum of two exponentials (Gamma(2)).
        let rr = -rd * (r.uniform().max(1e-300).ln() + r.uniform().max(1e-300).ln());
        let phi = r.range(0.0, 2.0 * std::f64::consts::PI);
        let z = 0.3 * r.normal();
        let vc = 200.0 * (1.0 - (-rr / rd).exp());
        s.position.push([rr * phi.cos(), rr * phi.sin(), z]);
        s.velocity.push([
            -vc * phi.sin() + 20.0 * r.normal(),
            vc * phi.cos() + 20.0 * r.normal(),
            20.0 * r.normal(),
        ]);
        s.mass.push(r.range(5e3, 2e4));
        s.initial_mass.push(2e4);
        s.id.push(i as u64);
        s.age.push(5.0);
        s.metallicity.push(0.01);
    }
    s
}

#[test]
fn recovers_centre_velocity_and_spin_axis() {
    let rd = 3.0;
    let mut stars = disk(100_000, rd, 7);
    let axis = {
        let a = [0.3, -0.5, 0.8];
        let n: f64 = a[0] * a[0] + a[1] * a[1] + a[2] * a[2];
        let n = n.sqrt();
        [a[0] / n, a[1] / n, a[2] / n]
    };
    let m = rot(axis, 1.1);
    let center = [2503.0, -1207.5, 880.25];
    let vbulk = [120.0, -45.0, 300.0];
    for i in 0..stars.len() {
        let p = apply(&m, stars.position[i]);
        stars.position[i] = [p[0] + center[0], p[1] + center[1], p[2] + center[2]];
        let v = apply(&m, stars.velocity[i]);
        stars.velocity[i] = [v[0] + vbulk[0], v[1] + vbulk[1], v[2] + vbulk[2]];
    }
    // Contaminate with a distant clump so that the all-star centre of mass is off.
    let mut r = Rng(99);
    for i in 0..5000 {
        stars.position.push([
            center[0] + 80.0 + r.normal(),
            center[1] + r.normal(),
            center[2],
        ]);
        stars.velocity.push([0.0; 3]);
        stars.mass.push(1e4);
        stars.initial_mass.push(1e4);
        stars.id.push(1_000_000 + i);
        stars.age.push(1.0);
        stars.metallicity.push(0.0);
    }
    let frame = GalaxyFrame::find(&stars, &FrameOptions::default()).unwrap();
    let dc = ((frame.center[0] - center[0]).powi(2)
        + (frame.center[1] - center[1]).powi(2)
        + (frame.center[2] - center[2]).powi(2))
    .sqrt();
    assert!(dc < 0.01 * rd, "centre off by {dc} kpc");
    let true_z = apply(&m, [0.0, 0.0, 1.0]);
    let z = frame.rotation[2];
    let cosang = z[0] * true_z[0] + z[1] * true_z[1] + z[2] * true_z[2];
    let ang = cosang.clamp(-1.0, 1.0).acos().to_degrees();
    assert!(ang < 1.0, "spin axis off by {ang} degrees");
    for (got, want) in frame.bulk_velocity.iter().zip(vbulk) {
        assert!(
            (got - want).abs() < 5.0,
            "bulk velocity {:?}",
            frame.bulk_velocity
        );
    }
    // Right-handed orthonormal rows.
    let r = frame.rotation;
    let cross = [
        r[0][1] * r[1][2] - r[0][2] * r[1][1],
        r[0][2] * r[1][0] - r[0][0] * r[1][2],
        r[0][0] * r[1][1] - r[0][1] * r[1][0],
    ];
    for k in 0..3 {
        assert!((cross[k] - r[2][k]).abs() < 1e-12);
    }
    // Round trip of points and velocities; transformed disk rotates about +z.
    let p = [2500.0, -1200.0, 870.0];
    let q = frame.point_from_frame(frame.point_to_frame(p));
    let v = frame.velocity_from_frame(frame.velocity_to_frame([1.0, 2.0, 3.0]));
    for k in 0..3 {
        assert!((p[k] - q[k]).abs() < 1e-9);
        assert!((v[k] - [1.0, 2.0, 3.0][k]).abs() < 1e-9);
    }
    let mut inframe = stars.clone();
    frame.to_frame(&mut inframe);
    let inner = select_sphere(
        &inframe,
        &Sphere {
            center: [0.0; 3],
            radius: 10.0,
        },
    );
    let lz: f64 = (0..inner.len())
        .map(|i| {
            inner.position[i][0] * inner.velocity[i][1]
                - inner.position[i][1] * inner.velocity[i][0]
        })
        .sum();
    assert!(lz > 0.0);
    let disk_z: Vec<f64> = (0..inner.len())
        .filter(|&i| inner.age[i] == 5.0)
        .map(|i| inner.position[i][2])
        .collect();
    let zrms = (disk_z.iter().map(|z| z * z).sum::<f64>() / disk_z.len() as f64).sqrt();
    assert!(
        zrms < 0.4,
        "disk should be thin in the frame: z_rms = {zrms}"
    );
}

#[test]
fn identity_and_bad_inputs() {
    let f = GalaxyFrame::identity();
    assert_eq!(f.point_to_frame([1.0, 2.0, 3.0]), [1.0, 2.0, 3.0]);
    assert!(GalaxyFrame::find(&StarParticles::default(), &FrameOptions::default()).is_err());
    let s = disk(100, 3.0, 1);
    let bad = FrameOptions {
        shrink_factor: 1.5,
        ..FrameOptions::default()
    };
    assert!(GalaxyFrame::find(&s, &bad)
        .unwrap_err()
        .to_string()
        .contains("shrink_factor"));
}
