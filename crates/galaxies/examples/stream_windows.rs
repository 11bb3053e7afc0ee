//! Window statistics of the stream and the satellite of a `--model stream` galaxy (issue 12,
//! item 3 "substructure"; `galaxies::windows`): for each catalogue (and for the snapshot's own
//! particles, the noise floor), against the truth draw:
//!
//! - stream window: stars within 1 kpc of the track (≈ 6.7 tube widths), their share of all
//!   stars over the truth's share ("count"); the same within one tube width, 0.15 kpc ("core");
//!   the KS distance between the distance-to-track distributions in the window, and between the
//!   velocity offsets |v − v_track(nearest point)|, km/s;
//! - satellite window: within 10 b = 3 kpc of its centre, core within b = 0.3 kpc; KS of the
//!   distance to the centre and of |v − v_satellite|.
//!
//! A second table gives, per window and sample, the 10th, 25th, 50th, 75th and 90th
//! percentiles of |Δv| (km/s), in the whole window, inside its core and outside: where a KS of |Δv| comes from (the satellite window mixes the
//! satellite's internal motions, a few km/s, with the halo's stars passing through).
//!
//! A third gives each window's smoothness: the median 6D distance from its stars to the
//! nearest snapshot particle over that of the truth draw's particles in the same window
//! (`upsample::fidelity::smoothness`, coordinates scaled by the truth window's spreads; 1:
//! smooth, < 1: stars huddle around the particles), with the KS of the two distance sets.
//!
//! Shares compare samples of different sizes (stars are drawn per initial mass, all particles
//! of this galaxy weigh the same). Errors are Poisson, √(1/n + 1/n_truth) on the ratios.
//!
//! `cargo run -p galaxies --release --example stream_windows -- GALAXY_DIR [NAME=CATALOG.hdf5 ...]`
//!
//! Catalogues must be in the snapshot's frame (`[frame] enabled = false`).

use std::path::PathBuf;

use galaxies::{Model, Windows};
use snapio::{read_catalog, ReadOptions, Snapshot};
use upsample::fidelity::{ks_two_sample, smoothness, PhaseSpace, SmoothnessConfig};

/// Two-sample Kolmogorov–Smirnov distance (upsample::fidelity's), NaN when a window is empty.
fn ks(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    ks_two_sample(a, b)
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
    let reference = m.windows(&track, &truth.position, &truth.velocity);
    // Each sample's windows with its phase-space coordinates (for the smoothness table).
    let mut samples: Vec<(String, Windows)> = Vec::new();
    let mut coordinates: Vec<Coordinates> = Vec::new();
    let snap = read("snapshot.hdf5")?;
    samples.push((
        "particles".into(),
        m.windows(&track, &snap.position, &snap.velocity),
    ));
    for c in catalogues {
        let (name, path) = c.split_once('=').unwrap_or((c.as_str(), c.as_str()));
        let s = read_catalog(path)?;
        samples.push((name.into(), m.windows(&track, &s.position, &s.velocity)));
        coordinates.push((s.position, s.velocity));
    }
    println!(
        "window                 sample        stars   in window  count ratio      core ratio       KS distance  KS |dv|"
    );
    for (k, (what, t)) in reference.named().into_iter().enumerate() {
        for (name, s) in &samples {
            let s = s.named()[k].1;
            let (count, count_err) = s.count_ratio(t);
            let (core, core_err) = s.core_ratio(t);
            println!(
                "{what:<22} {name:<12} {:>7} {:>8}   {count:.3} ± {count_err:.3}   {core:.3} ± {core_err:.3}   {:.3}        {:.3}",
                s.total,
                s.distance.len(),
                ks(&s.distance, &t.distance),
                ks(&s.dv, &t.dv)
            );
        }
    }
    println!("\n|dv| percentiles (km/s)           10       25       50       75       90");
    for (k, (what, t)) in reference.named().into_iter().enumerate() {
        let rows = std::iter::once(("truth", t)).chain(
            samples
                .iter()
                .map(|(name, s)| (name.as_str(), s.named()[k].1)),
        );
        for (name, w) in rows {
            // The whole window, then inside and outside its core radius.
            let (inside, outside) = w.dv_by_core();
            for (part, dv) in [("", &w.dv), (" core", &inside), (" outside", &outside)] {
                print!("{:<25}", format!("{what}{part} {name}"));
                for q in percentiles(dv, &[0.1, 0.25, 0.5, 0.75, 0.9]) {
                    print!(" {q:>8.2}");
                }
                println!("   ({})", dv.len());
            }
        }
    }
    println!("\nsmoothness (stars' nearest-particle distance over the truth's)   ratio     KS");
    let training = PhaseSpace::new(&snap.position, &snap.velocity);
    let pick = |(x, v): (&[[f64; 3]], &[[f64; 3]]), rows: &[usize]| -> Coordinates {
        (
            rows.iter().map(|&i| x[i]).collect(),
            rows.iter().map(|&i| v[i]).collect(),
        )
    };
    for (k, (what, t)) in reference.named().into_iter().enumerate() {
        let truth_window = pick((&truth.position, &truth.velocity), &t.rows);
        // The catalogues only: the snapshot's own particles are the training set.
        for ((name, s), (x, v)) in samples[1..].iter().zip(&coordinates) {
            let stars = pick((x, v), &s.named()[k].1.rows);
            let f = smoothness(
                PhaseSpace::new(&stars.0, &stars.1),
                PhaseSpace::new(&truth_window.0, &truth_window.1),
                training,
                &SmoothnessConfig::default(),
            )?;
            println!("{what:<12} {name:<50} {:>7.3} {:>7.3}", f.ratio, f.ks);
        }
    }
    Ok(())
}

/// Positions (kpc) and velocities (km/s) of a sample.
type Coordinates = (Vec<[f64; 3]>, Vec<[f64; 3]>);

/// The `qs` quantiles of `values` (nearest rank; NaN when empty).
fn percentiles(values: &[f64], qs: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    qs.iter()
        .map(|&q| {
            if v.is_empty() {
                f64::NAN
            } else {
                v[((q * v.len() as f64) as usize).min(v.len() - 1)]
            }
        })
        .collect()
}
