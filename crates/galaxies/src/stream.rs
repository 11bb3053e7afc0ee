//! Model (c): a smooth isotropic Hernquist halo with one cold stream — a tube of stars along an
//! orbit integrated in the halo's potential — and one compact Plummer satellite, offset from
//! the centre and moving.

use rand::rngs::StdRng;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::hernquist::{Hernquist, OsipkovMerritt};
use crate::plummer::Plummer;
use crate::population::{
    assemble, draw_component, gauss, mix, split_counts, Component, Draw, MassWeights, Part,
};
use crate::spheroid::Spheroid;

/// Time unit kpc/(km/s) in Gyr.
const KPC_PER_KMS_GYR: f64 = 0.977_792_2;

/// Halo + stream + satellite (all particles carry the same mass without mass weights: the
/// satellite's Plummer mass is dynamical, its stars a small part of it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HaloStream {
    /// The halo (isotropic Hernquist) whose potential the stream's orbit feels.
    pub halo: Hernquist,
    /// Halo truncation in units of its scale radius.
    pub halo_truncation: f64,
    /// Fraction of the particles in the stream.
    pub stream_fraction: f64,
    /// Phase-space point where the stream's orbit starts: position kpc, velocity km/s.
    pub stream_start: [f64; 6],
    /// Time span of the orbit the stream covers, Gyr.
    pub stream_duration: f64,
    /// Gaussian width of the tube across the track, kpc (per axis).
    pub stream_width: f64,
    /// Velocity dispersion about the track's velocity, km/s (per axis).
    pub stream_dispersion: f64,
    /// Fraction of the particles in the satellite.
    pub satellite_fraction: f64,
    /// The satellite's internal structure (dynamical mass and scale radius).
    pub satellite: Plummer,
    /// Satellite centre, kpc.
    pub satellite_position: [f64; 3],
    /// Satellite bulk velocity, km/s.
    pub satellite_velocity: [f64; 3],
}

impl Default for HaloStream {
    /// Halo 1e10 Msun, a = 5 kpc, truncated at 20 a; stream 3% of the particles along 1.2 Gyr
    /// of the orbit from (15, 0, 0) kpc with (0, 35, 15) km/s, 0.15 kpc wide, 3 km/s;
    /// satellite 3% of the particles, Plummer 1e7 Msun, b = 0.3 kpc (σ ≈ 4.9 km/s in the
    /// centre), at (−10, 5, 8) kpc moving at (20, −30, 10) km/s.
    fn default() -> Self {
        HaloStream {
            halo: Hernquist {
                mass: 1e10,
                scale: 5.0,
            },
            halo_truncation: 20.0,
            stream_fraction: 0.03,
            stream_start: [15.0, 0.0, 0.0, 0.0, 35.0, 15.0],
            stream_duration: 1.2,
            stream_width: 0.15,
            stream_dispersion: 3.0,
            satellite_fraction: 0.03,
            satellite: Plummer {
                mass: 1e7,
                scale: 0.3,
            },
            satellite_position: [-10.0, 5.0, 8.0],
            satellite_velocity: [20.0, -30.0, 10.0],
        }
    }
}

/// The stream: a tube around the track.
struct Stream<'a> {
    model: &'a HaloStream,
    track: Vec<[f64; 6]>,
}

impl Component for Stream<'_> {
    fn draw_one(&self, rng: &mut StdRng) -> ([f64; 3], [f64; 3]) {
        let m = self.model;
        let s = rng.random::<f64>() * (self.track.len() - 1) as f64;
        let (i, f) = (s.floor() as usize, s.fract());
        let (a, b) = (self.track[i], self.track[(i + 1).min(self.track.len() - 1)]);
        let p: [f64; 6] = std::array::from_fn(|k| a[k] + f * (b[k] - a[k]));
        (
            std::array::from_fn(|k| p[k] + m.stream_width * gauss(rng)),
            std::array::from_fn(|k| p[k + 3] + m.stream_dispersion * gauss(rng)),
        )
    }
    fn max_radius(&self) -> f64 {
        self.track
            .iter()
            .map(|p| (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt())
            .fold(0.0, f64::max)
            + 6.0 * self.model.stream_width
    }
}

/// The satellite, moved to its place.
struct Satellite<'a>(&'a HaloStream);

impl Component for Satellite<'_> {
    fn draw_one(&self, rng: &mut StdRng) -> ([f64; 3], [f64; 3]) {
        let m = self.0;
        let (x, v) = m.satellite.sample(10.0 * m.satellite.scale, rng);
        (
            std::array::from_fn(|k| x[k] + m.satellite_position[k]),
            std::array::from_fn(|k| v[k] + m.satellite_velocity[k]),
        )
    }
    fn max_radius(&self) -> f64 {
        let c = self.0.satellite_position;
        (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt() + 10.0 * self.0.satellite.scale
    }
}

impl HaloStream {
    /// Component labels: 0 halo, 1 stream, 2 satellite.
    pub const LABELS: [&'static str; 3] = ["halo", "stream", "satellite"];

    /// Points of the track in the stream's span.
    pub const TRACK_POINTS: usize = 2001;

    /// The halo as an isotropic spheroid.
    pub fn halo_spheroid(&self) -> Spheroid {
        Spheroid {
            df: OsipkovMerritt {
                profile: self.halo,
                anisotropy_radius: f64::INFINITY,
            },
            truncation: self.halo_truncation,
        }
    }

    /// The stream's track: [`HaloStream::TRACK_POINTS`] phase-space points (kpc, km/s),
    /// equally spaced in time over `stream_duration`, integrated by leapfrog (20 sub-steps per
    /// point) in the halo's potential from `stream_start`.
    pub fn track(&self) -> Vec<[f64; 6]> {
        let n = Self::TRACK_POINTS;
        let sub = 20;
        let dt = self.stream_duration / KPC_PER_KMS_GYR / ((n - 1) * sub) as f64;
        let s = self.stream_start;
        let (mut x, mut v) = ([s[0], s[1], s[2]], [s[3], s[4], s[5]]);
        let mut out = Vec::with_capacity(n);
        out.push(s);
        for _ in 1..n {
            for _ in 0..sub {
                let a = self.halo.acceleration(x);
                let vh: [f64; 3] = std::array::from_fn(|k| v[k] + 0.5 * dt * a[k]);
                x = std::array::from_fn(|k| x[k] + dt * vh[k]);
                let a = self.halo.acceleration(x);
                v = std::array::from_fn(|k| vh[k] + 0.5 * dt * a[k]);
            }
            out.push([x[0], x[1], x[2], v[0], v[1], v[2]]);
        }
        out
    }

    /// Distance (kpc) from `x` to the track (nearest track point) and that point's index.
    pub fn distance_to_track(track: &[[f64; 6]], x: [f64; 3]) -> (f64, usize) {
        let mut best = (f64::INFINITY, 0);
        for (i, p) in track.iter().enumerate() {
            let d2 = (x[0] - p[0]).powi(2) + (x[1] - p[1]).powi(2) + (x[2] - p[2]).powi(2);
            if d2 < best.0 {
                best = (d2, i);
            }
        }
        (best.0.sqrt(), best.1)
    }

    /// Draws `n` particles with `seed`: halo, stream and satellite by their fractions.
    pub fn draw(&self, n: usize, seed: u64, weights: Option<&MassWeights>) -> Draw {
        let (fs, fsat) = (self.stream_fraction, self.satellite_fraction);
        let counts = split_counts(n, &[1.0 - fs - fsat, fs, fsat]);
        let halo = self.halo_spheroid();
        let stream = Stream {
            model: self,
            track: self.track(),
        };
        let m_particle = halo.drawn_mass() / counts[0].max(1) as f64;
        let parts = vec![
            Part {
                label: 0,
                mass: halo.drawn_mass(),
                points: draw_component(&halo, counts[0], seed, weights),
            },
            Part {
                label: 1,
                mass: m_particle * counts[1] as f64,
                points: draw_component(&stream, counts[1], mix(seed, 1), weights),
            },
            Part {
                label: 2,
                mass: m_particle * counts[2] as f64,
                points: draw_component(&Satellite(self), counts[2], mix(seed, 2), weights),
            },
        ];
        assemble(parts, seed, weights)
    }
}
