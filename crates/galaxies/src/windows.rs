//! Windows around the cold structures of a [`HaloStream`] galaxy, where issue 12's substructure
//! bars are scored: the stream window (stars within [`STREAM_WINDOW_KPC`] of the track, its core
//! within one tube width) and the satellite window (within 10 Plummer scale lengths of its
//! centre, its core within one). For each sample the window keeps the distance of every star in
//! it to the track or centre (kpc) and its velocity offset from the track's nearest point or the
//! satellite's bulk velocity (km/s); the statistics (count and core ratios, KS distances) compare
//! two samples' windows.

use crate::HaloStream;

/// Half-width of the stream window around the track, kpc (≈ 6.7 tube widths).
pub const STREAM_WINDOW_KPC: f64 = 1.0;

/// Radius of the satellite window in Plummer scale lengths.
pub const SATELLITE_WINDOW_SCALES: f64 = 10.0;

/// One sample's stars in one window.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Stars (or particles) in the whole sample, in or out of the window.
    pub total: usize,
    /// Distance of each star in the window to the track or the satellite's centre, kpc.
    pub distance: Vec<f64>,
    /// Velocity offset |v − v_track| or |v − v_satellite| of each star in the window, km/s.
    pub dv: Vec<f64>,
    /// Radius of the window's core (one tube width, or one satellite scale length), kpc.
    pub core: f64,
    /// Index in the sample of each star in the window.
    pub rows: Vec<usize>,
}

impl Window {
    /// Stars within `r` kpc of the track or centre.
    pub fn within(&self, r: f64) -> usize {
        self.distance.iter().filter(|&&d| d <= r).count()
    }

    /// The window's share of this sample over `truth`'s share, with its Poisson error.
    pub fn count_ratio(&self, truth: &Window) -> (f64, f64) {
        share_ratio(
            self.distance.len(),
            self.total,
            truth.distance.len(),
            truth.total,
        )
    }

    /// The velocity offsets (km/s) of the stars within the core radius, and of those outside.
    pub fn dv_by_core(&self) -> (Vec<f64>, Vec<f64>) {
        let (mut inside, mut outside) = (Vec::new(), Vec::new());
        for (&d, &v) in self.distance.iter().zip(&self.dv) {
            if d <= self.core {
                inside.push(v);
            } else {
                outside.push(v);
            }
        }
        (inside, outside)
    }

    /// The core's share of this sample over `truth`'s share, with its Poisson error.
    pub fn core_ratio(&self, truth: &Window) -> (f64, f64) {
        share_ratio(
            self.within(self.core),
            self.total,
            truth.within(truth.core),
            truth.total,
        )
    }
}

/// (a / total_a) / (b / total_b) and its Poisson error √(1/a + 1/b) × ratio.
fn share_ratio(a: usize, total_a: usize, b: usize, total_b: usize) -> (f64, f64) {
    let ratio = (a as f64 / total_a.max(1) as f64) / (b as f64 / total_b.max(1) as f64);
    let err = ratio * (1.0 / a.max(1) as f64 + 1.0 / b.max(1) as f64).sqrt();
    (ratio, err)
}

/// The stream and satellite windows of a sample.
#[derive(Debug, Clone)]
pub struct Windows {
    /// Stars within [`STREAM_WINDOW_KPC`] of the stream's track.
    pub stream: Window,
    /// Stars within [`SATELLITE_WINDOW_SCALES`] scale lengths of the satellite's centre.
    pub satellite: Window,
}

impl Windows {
    /// The two windows with their names, stream first.
    pub fn named(&self) -> [(&'static str, &Window); 2] {
        [("stream", &self.stream), ("satellite", &self.satellite)]
    }
}

impl HaloStream {
    /// The windows of the sample with positions `x` (kpc) and velocities `v` (km/s), in the
    /// snapshot's frame; `track` is [`HaloStream::track`] (computed once by the caller).
    pub fn windows(&self, track: &[[f64; 6]], x: &[[f64; 3]], v: &[[f64; 3]]) -> Windows {
        let w = STREAM_WINDOW_KPC;
        // A bounding box of the track widened by the window spares most stars the track search.
        let (lo, hi) = track.iter().fold(
            ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]),
            |(lo, hi), p| {
                (
                    std::array::from_fn(|k| lo[k].min(p[k] - w)),
                    std::array::from_fn(|k| hi[k].max(p[k] + w)),
                )
            },
        );
        let empty = |core| Window {
            total: x.len(),
            core,
            ..Window::default()
        };
        let mut stream = empty(self.stream_width);
        let mut satellite = empty(self.satellite.scale);
        let r_sat = SATELLITE_WINDOW_SCALES * self.satellite.scale;
        let norm = |a: [f64; 3]| (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
        for (i, (xi, vi)) in x.iter().zip(v).enumerate() {
            if (0..3).all(|k| xi[k] >= lo[k] && xi[k] <= hi[k]) {
                let (d, t) = HaloStream::distance_to_track(track, *xi);
                if d <= w {
                    stream.rows.push(i);
                    stream.distance.push(d);
                    stream
                        .dv
                        .push(norm(std::array::from_fn(|k| vi[k] - track[t][k + 3])));
                }
            }
            let d = norm(std::array::from_fn(|k| xi[k] - self.satellite_position[k]));
            if d <= r_sat {
                satellite.rows.push(i);
                satellite.distance.push(d);
                satellite.dv.push(norm(std::array::from_fn(|k| {
                    vi[k] - self.satellite_velocity[k]
                })));
            }
        }
        Windows { stream, satellite }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{generate, Model, Options};

    /// The truth draw's windows hold the stream's and satellite's particles, and a second draw
    /// of the same model has the same shares within Poisson noise.
    #[test]
    fn windows_hold_the_structures_and_agree_between_draws() {
        let m = HaloStream::default();
        let g = generate(Model::HaloStream(m), Options::new(20_000, 3));
        let track = m.track();
        let a = m.windows(
            &track,
            &g.sample.particles.position,
            &g.sample.particles.velocity,
        );
        let b = m.windows(
            &track,
            &g.truth.particles.position,
            &g.truth.particles.velocity,
        );
        let n_stream = (m.stream_fraction * 20_000.0) as usize;
        // Nearly every stream particle lies within 1 kpc (6.7 widths) of its track.
        assert!(
            a.stream.distance.len() >= n_stream * 95 / 100,
            "{}",
            a.stream.distance.len()
        );
        // The core (one width) of a Gaussian tube of that width holds 1 − e^{−1/2} ≈ 39%.
        let core = a.stream.within(a.stream.core) as f64 / n_stream as f64;
        assert!((core - 0.39).abs() < 0.06, "core share {core}");
        for (x, y) in [(&a.stream, &b.stream), (&a.satellite, &b.satellite)] {
            let (r, e) = x.count_ratio(y);
            assert!((r - 1.0).abs() < 4.0 * e, "count ratio {r} ± {e}");
            let (r, e) = x.core_ratio(y);
            assert!((r - 1.0).abs() < 4.0 * e, "core ratio {r} ± {e}");
            // The offsets split at the core radius, each star once, and its rows are the stars.
            let (inside, outside) = x.dv_by_core();
            assert_eq!(inside.len(), x.within(x.core));
            assert_eq!(inside.len() + outside.len(), x.dv.len());
            assert_eq!(x.rows.len(), x.dv.len());
        }
        // A satellite's dispersion falls outwards: its core's median offset is the larger.
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (inside, outside) = b.satellite.dv_by_core();
        assert!(median(inside) > 1.2 * median(outside));
    }
}
