//! Window statistics of the stream and the satellite of a `--model stream` galaxy (issue 12,
//! item 3 "substructure"): for each catalogue (and for the snapshot's own particles, the noise
//! floor), against the truth draw:
//!
//! - stream window: stars within `WINDOW_KPC` = 1 kpc of the track (≈ 6.7 tube widths), their
//!   share of all stars over the truth's share ("count"); the same within one tube width,
//!   0.15 kpc ("core"); the KS distance between the distance-to-track distributions in the
//!   window, and between the velocity offsets |v − v_track(nearest point)|, km/s;
//! - satellite window: within 10 b = 3 kpc of its centre, core within b = 0.3 kpc; KS of the
//!   distance to the centre and of |v − v_satellite|.
//!
//! Shares compare samples of different sizes (stars are drawn per initial mass, all particles
//! of this galaxy weigh the same). Errors are Poisson, √(1/n + 1/n_truth) on the ratios.
//!
//! `cargo run -p galaxies --release --example stream_windows -- GALAXY_DIR [NAME=CATALOG.hdf5 ...]`
//!
//! Catalogues must be in the snapshot's frame (`[frame] enabled = false`).

use std::path::PathBuf;

use galaxies::{HaloStream, Model};
use snapio::{read_catalog, ReadOptions, Snapshot};
use upsample::fidelity::ks_two_sample;

/// Half-width of the stream window around the track, kpc.
const WINDOW_KPC: f64 = 1.0;

/// Distances and velocity offsets of a sample's stars in one window, and the sample's size.
struct Window {
    /// Total stars (or particles) of the sample.
    total: usize,
    /// Distance to the track or centre of each star in the window, kpc.
    distance: Vec<f64>,
    /// Velocity offset from the track or the satellite, km/s.
    dv: Vec<f64>,
}

impl Window {
    /// Stars within `r` kpc.
    fn within(&self, r: f64) -> usize {
        self.distance.iter().filter(|&&d| d <= r).count()
    }
}

/// Two-sample Kolmogorov–Smirnov distance (upsample::fidelity's), NaN when a window is empty.
fn ks(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    ks_two_sample(a, b)
}

/// The stream and satellite windows of one sample.
fn windows(m: &HaloStream, track: &[[f64; 6]], x: &[[f64; 3]], v: &[[f64; 3]]) -> [Window; 2] {
    let (lo, hi) = track.iter().fold(
        ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]),
        |(lo, hi), p| {
            (
                std::array::from_fn(|k| lo[k].min(p[k] - WINDOW_KPC)),
                std::array::from_fn(|k| hi[k].max(p[k] + WINDOW_KPC)),
            )
        },
    );
    let mut stream = Window {
        total: x.len(),
        distance: Vec::new(),
        dv: Vec::new(),
    };
    let mut sat = Window {
        total: x.len(),
        distance: Vec::new(),
        dv: Vec::new(),
    };
    let r_sat = 10.0 * m.satellite.scale;
    let norm = |a: [f64; 3]| (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
    for (xi, vi) in x.iter().zip(v) {
        if (0..3).all(|k| xi[k] >= lo[k] && xi[k] <= hi[k]) {
            let (d, t) = HaloStream::distance_to_track(track, *xi);
            if d <= WINDOW_KPC {
                stream.distance.push(d);
                stream
                    .dv
                    .push(norm(std::array::from_fn(|k| vi[k] - track[t][k + 3])));
            }
        }
        let d = norm(std::array::from_fn(|k| xi[k] - m.satellite_position[k]));
        if d <= r_sat {
            sat.distance.push(d);
            sat.dv.push(norm(std::array::from_fn(|k| {
                vi[k] - m.satellite_velocity[k]
            })));
        }
    }
    [stream, sat]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((dir, catalogues)) = args.split_first() else {
        return Err("usage: stream_windows GALAXY_DIR [NAME=CATALOG.hdf5 ...]".into());
    };
    let dir = PathBuf::from(dir);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.json"))?)?;
    let Model::HaloStream(m) = serde_json::from_value::<Model>(meta["model"].clone())? else {
        return Err(format!("{}: not a stream galaxy", dir.display()).into());
    };
    let track = m.track();
    let read = |name: &str| -> Result<snapio::StarParticles, Box<dyn std::error::Error>> {
        Ok(Snapshot::open(dir.join(name))?
            .read_stars(&ReadOptions::default())?
            .0)
    };
    let truth = read("truth.hdf5")?;
    let reference = windows(&m, &track, &truth.position, &truth.velocity);
    let mut samples: Vec<(String, [Window; 2])> = Vec::new();
    let snap = read("snapshot.hdf5")?;
    samples.push((
        "particles".into(),
        windows(&m, &track, &snap.position, &snap.velocity),
    ));
    for c in catalogues {
        let (name, path) = c.split_once('=').unwrap_or((c.as_str(), c.as_str()));
        let s = read_catalog(path)?;
        samples.push((name.into(), windows(&m, &track, &s.position, &s.velocity)));
    }
    let cores = [m.stream_width, m.satellite.scale];
    println!(
        "window                 sample        stars   in window  count ratio      core ratio       KS distance  KS |dv|"
    );
    for (w, what) in ["stream (1 kpc)", "satellite (3 kpc)"].iter().enumerate() {
        let t = &reference[w];
        let (t_in, t_core) = (t.distance.len(), t.within(cores[w]));
        for (name, s) in &samples {
            let s = &s[w];
            let (s_in, s_core) = (s.distance.len(), s.within(cores[w]));
            let share = |n: usize, total: usize| n as f64 / total as f64;
            let ratio = |a: usize, b: usize| share(a, s.total) / share(b, t.total);
            let err = |a: usize, b: usize| {
                ratio(a, b) * (1.0 / a.max(1) as f64 + 1.0 / b.max(1) as f64).sqrt()
            };
            println!(
                "{what:<22} {name:<12} {:>7} {:>8}   {:.3} ± {:.3}   {:.3} ± {:.3}   {:.3}        {:.3}",
                s.total,
                s_in,
                ratio(s_in, t_in),
                err(s_in, t_in),
                ratio(s_core, t_core),
                err(s_core, t_core),
                ks(&s.distance, &t.distance),
                ks(&s.dv, &t.dv)
            );
        }
    }
    Ok(())
}
