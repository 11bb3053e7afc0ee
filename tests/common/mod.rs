//! Helpers shared by the end-to-end tests: running the binary, the sample's analytic truth, an
//! independent draw of the analytic system, and distribution distances.
#![allow(dead_code)]

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (the binary runs there, so `data/…` paths work).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Environment of every `upsample` a test spawns: HDF5 file locks off. Tests run in threads
/// that write HDF5 inputs while other threads spawn processes; HDF5 opens files without
/// close-on-exec, so a child spawned while a file is open inherits its descriptor and with it
/// the file's lock, and a later child reading that file fails with "errno 11: Resource
/// temporarily unavailable" (seen once in CI-like runs of `accel_cli`). Users' runs spawn nothing.
pub const NO_HDF5_LOCKS: (&str, &str) = ("HDF5_USE_FILE_LOCKING", "FALSE");

/// Runs the `upsample` binary with `args` from the workspace root.
pub fn upsample(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_upsample"))
        .args(args)
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .env(NO_HDF5_LOCKS.0, NO_HDF5_LOCKS.1)
        .output()
        .expect("the upsample binary runs")
}

/// Lossy UTF-8 of a process output stream.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The sample's analytic truth (`data/snap_099.truth.json`).
pub fn truth() -> serde_json::Value {
    let s = std::fs::read_to_string(root().join("data/snap_099.truth.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

/// The `report.json` of a run folder.
pub fn read_report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// A JSON array of three numbers.
pub fn vec3(v: &serde_json::Value) -> [f64; 3] {
    let a: Vec<f64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    [a[0], a[1], a[2]]
}

/// Kolmogorov–Smirnov distance between a sample and a cumulative distribution function.
pub fn ks_distance(mut xs: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    xs.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max((f - (i + 1) as f64 / n).abs())
        })
        .fold(0.0, f64::max)
}

/// The sample's analytic system: a Plummer sphere truncated at `r_t`, rotating by the
/// Lynden-Bell flip f(E, Lz) = f_P(E) (1 + α sign Lz) (as data/make_sample.py draws it).
pub struct Plummer {
    /// Total (untruncated) mass, Msun.
    pub mass: f64,
    /// Scale radius, kpc.
    pub b: f64,
    /// Truncation radius, kpc.
    pub r_t: f64,
    /// Rotation parameter α.
    pub alpha: f64,
    /// G, kpc (km/s)² / Msun.
    pub g: f64,
}

impl Plummer {
    /// The sample's system from its truth file.
    pub fn from_truth() -> Plummer {
        let t = truth();
        let f = |k: &str| t[k].as_f64().unwrap();
        Plummer {
            mass: f("total_mass_Msun"),
            b: f("scale_radius_kpc"),
            r_t: f("truncation_radius_kpc"),
            alpha: f("alpha_rotation"),
            g: f("G_kpc_kms2_per_Msun"),
        }
    }

    /// Mass fraction of the untruncated sphere inside r.
    pub fn mass_fraction(&self, r: f64) -> f64 {
        r.powi(3) / (r * r + self.b * self.b).powf(1.5)
    }

    /// Cumulative distribution of radii of the truncated sample.
    pub fn radius_cdf(&self, r: f64) -> f64 {
        (self.mass_fraction(r) / self.mass_fraction(self.r_t)).min(1.0)
    }

    /// ln of the truncated sample's position density (per kpc³) at x.
    pub fn log_position_density(&self, x: &[f64; 3]) -> f64 {
        let r2 = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
        let b = self.b;
        (3.0 / (4.0 * std::f64::consts::PI * b.powi(3))).ln()
            - 2.5 * (1.0 + r2 / (b * b)).ln()
            - self.mass_fraction(self.r_t).ln()
    }

    /// n independent (position kpc, velocity km/s) draws, galaxy frame, seeded.
    pub fn draw(&self, n: usize, seed: u64) -> (Vec<[f64; 3]>, Vec<[f64; 3]>) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let x_max = self.mass_fraction(self.r_t);
        let unit = |rng: &mut Xoshiro256PlusPlus| {
            let cz: f64 = rng.random_range(-1.0..1.0);
            let ph: f64 = rng.random_range(0.0..std::f64::consts::TAU);
            let sz = (1.0 - cz * cz).sqrt();
            [sz * ph.cos(), sz * ph.sin(), cz]
        };
        let (mut xs, mut vs) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let u: f64 = rng.random_range(0.0..x_max);
            let r = self.b / (u.powf(-2.0 / 3.0) - 1.0).sqrt();
            let e = unit(&mut rng);
            let x = [r * e[0], r * e[1], r * e[2]];
            let v_esc = (2.0 * self.g * self.mass / (r * r + self.b * self.b).sqrt()).sqrt();
            let q = loop {
                let q: f64 = rng.random();
                let y: f64 = rng.random_range(0.0..0.1);
                if y < q * q * (1.0 - q * q).powf(3.5) {
                    break q;
                }
            };
            let d = unit(&mut rng);
            let mut v = [q * v_esc * d[0], q * v_esc * d[1], q * v_esc * d[2]];
            let rc = x[0].hypot(x[1]).max(1e-300);
            let e_phi = [-x[1] / rc, x[0] / rc, 0.0];
            let v_phi = v[0] * e_phi[0] + v[1] * e_phi[1];
            let sign = if rng.random::<f64>() < 0.5 * (1.0 + self.alpha) {
                1.0
            } else {
                -1.0
            };
            let dv = sign * v_phi.abs() - v_phi;
            v[0] += dv * e_phi[0];
            v[1] += dv * e_phi[1];
            xs.push(x);
            vs.push(v);
        }
        (xs, vs)
    }
}

/// Nearest-neighbour two-sample statistic in 6D (Schilling 1986; Henze 1988): pool `n` points
/// of each sample, standardise each coordinate by the reference sample's spread, and return the
/// mean fraction of each point's `k` nearest neighbours that come from its own sample. Equal
/// distributions give (n − 1)/(2n − 1) ≈ 0.5; the excess measures how far apart they are.
pub fn nn_two_sample(
    a: (&[[f64; 3]], &[[f64; 3]]),
    reference: (&[[f64; 3]], &[[f64; 3]]),
    n: usize,
    k: usize,
) -> f64 {
    use kiddo::{ImmutableKdTree, SquaredEuclidean};
    let pick = |(x, v): (&[[f64; 3]], &[[f64; 3]])| -> Vec<[f64; 6]> {
        let step = x.len() as f64 / n as f64;
        (0..n)
            .map(|i| {
                let j = (i as f64 * step) as usize;
                [x[j][0], x[j][1], x[j][2], v[j][0], v[j][1], v[j][2]]
            })
            .collect()
    };
    let (pa, pr) = (pick(a), pick(reference));
    let mut scale = [0.0; 6];
    for (d, s) in scale.iter_mut().enumerate() {
        let m = pr.iter().map(|p| p[d]).sum::<f64>() / n as f64;
        *s = (pr.iter().map(|p| (p[d] - m).powi(2)).sum::<f64>() / n as f64).sqrt();
    }
    let pooled: Vec<[f64; 6]> = pa
        .iter()
        .chain(&pr)
        .map(|p| std::array::from_fn(|d| p[d] / scale[d]))
        .collect();
    let tree = ImmutableKdTree::<f64, 6>::new_from_slice(&pooled).unwrap();
    let nk = std::num::NonZeroUsize::new(k + 1).unwrap();
    let same: usize = pooled
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mine = i < n;
            tree.query(p)
                .nearest_n::<SquaredEuclidean<f64>>(nk)
                .execute()
                .iter()
                .filter(|nb| nb.item as usize != i)
                .take(k)
                .filter(|nb| ((nb.item as usize) < n) == mine)
                .count()
        })
        .sum();
    same as f64 / (2 * n * k) as f64
}
