#![allow(dead_code)]
//! Shared helpers of the integration tests: a deterministic generator and comparisons.

use snapio::StarParticles;

/// SplitMix64: deterministic pseudo-random numbers without extra dependencies.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.uniform()
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// `n` stars around `center` (kpc) with ages below `max_age` Gyr.
pub fn sample_stars(n: usize, seed: u64, center: [f64; 3], max_age: f64) -> StarParticles {
    let mut r = Rng(seed);
    let mut s = StarParticles::with_capacity(n);
    for i in 0..n {
        s.position.push([
            center[0] + r.range(-20.0, 20.0),
            center[1] + r.range(-20.0, 20.0),
            center[2] + r.range(-20.0, 20.0),
        ]);
        s.velocity.push([
            r.range(-300.0, 300.0),
            r.range(-300.0, 300.0),
            r.range(-300.0, 300.0),
        ]);
        let m = r.range(1e4, 1e5);
        s.mass.push(m);
        s.initial_mass.push(m * 1.4);
        s.id.push(1000 + 7 * i as u64);
        s.age.push(r.range(0.01, max_age));
        s.metallicity.push(r.range(1e-4, 0.04));
    }
    s
}

pub fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= abs + rel * a.abs().max(b.abs())
}

/// Compares read-back stars with the originals (single-precision tolerance).
/// `initial_is_mass`: the layout stores no initial mass, so it must equal the current mass.
pub fn assert_same(orig: &StarParticles, got: &StarParticles, initial_is_mass: bool) {
    assert_eq!(orig.len(), got.len(), "particle count");
    let rel = 2e-6;
    for i in 0..orig.len() {
        for k in 0..3 {
            assert!(
                close(orig.position[i][k], got.position[i][k], 1e-12, 1e-9),
                "position {i} {k}: {} vs {}",
                orig.position[i][k],
                got.position[i][k]
            );
            assert!(
                close(orig.velocity[i][k], got.velocity[i][k], rel, 1e-4),
                "velocity {i} {k}: {} vs {}",
                orig.velocity[i][k],
                got.velocity[i][k]
            );
        }
        assert!(
            close(orig.mass[i], got.mass[i], rel, 0.0),
            "mass {i}: {} vs {}",
            orig.mass[i],
            got.mass[i]
        );
        let im = if initial_is_mass {
            orig.mass[i]
        } else {
            orig.initial_mass[i]
        };
        assert!(
            close(im, got.initial_mass[i], rel, 0.0),
            "initial mass {i}: {im} vs {}",
            got.initial_mass[i]
        );
        assert_eq!(orig.id[i], got.id[i]);
        assert!(
            close(orig.age[i], got.age[i], 1e-5, 2e-4),
            "age {i}: {} vs {}",
            orig.age[i],
            got.age[i]
        );
        assert!(
            close(orig.metallicity[i], got.metallicity[i], rel, 1e-9),
            "Z {i}: {} vs {}",
            orig.metallicity[i],
            got.metallicity[i]
        );
    }
}
