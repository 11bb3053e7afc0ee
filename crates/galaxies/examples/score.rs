//! Scores a catalogue against a test galaxy written by the `galaxies` command: the catalogue's
//! stars against the truth draw (the held-out reference), the snapshot's particles as the
//! training set. Prints the `upsample::fidelity::Fidelity` record as JSON.
//!
//! `cargo run -p galaxies --release --example score -- GALAXY_DIR CATALOG.hdf5 [--off-plane Z]`
//!
//! Also prints the KS distance between the radii of the stars and of the truth draw (issue 12's
//! "radial KS ≤ 0.005"), beside that of the snapshot's particles (the noise floor), and per
//! shell the particles' own share, σ_r, σ_t and β against the truth: a catalogue faithful to its
//! particles inherits their sampling noise, so a shell where the stars differ from the truth is
//! read beside what the particles did there. Where the particles' initial masses differ
//! (`galaxies --mass-gamma`), the particles' KS and profiles weigh each by its initial mass, as
//! the flows and the stars do (the truth draw has equal masses: its density is the mass density).
//!
//! With `--off-plane Z` (kpc) it also prints, per shell, the share of the stars (and of the
//! particles) more than Z above or below the plane against the truth's: around a thin disc that
//! is the sparse hot envelope (a bulge's tail, a stellar halo), which the shells' totals and
//! dispersions, dominated by the disc, show only indirectly.
//!
//! The catalogue must be in the snapshot's frame (run `upsample` with `[frame] enabled = false`).

use std::path::PathBuf;

use snapio::{read_catalog, ReadOptions, Snapshot};
use upsample::fidelity::{
    compare_profiles, evaluate, ks_two_sample, ks_two_sample_weighted, masses_differ, radius,
    shell_profile, FidelityConfig, PhaseSpace, ShellConfig,
};

/// Radii of `positions`, kpc.
fn radii(positions: &[[f64; 3]]) -> Vec<f64> {
    positions.iter().map(|&x| radius(x)).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: score GALAXY_DIR CATALOG.hdf5 [--off-plane Z_KPC]";
    let (dir, catalog, off_plane) = match &args[..] {
        [dir, catalog] => (dir, catalog, None),
        [dir, catalog, flag, z] if flag == "--off-plane" => {
            let z: f64 = z
                .parse()
                .map_err(|_| format!("--off-plane {z}: not a number"))?;
            (dir, catalog, Some(z))
        }
        _ => return Err(usage.into()),
    };
    let dir = PathBuf::from(dir);
    let read = |name: &str| -> Result<snapio::StarParticles, Box<dyn std::error::Error>> {
        Ok(Snapshot::open(dir.join(name))?
            .read_stars(&ReadOptions::default())?
            .0)
    };
    let (truth, training) = (read("truth.hdf5")?, read("snapshot.hdf5")?);
    let stars = read_catalog(catalog)?;
    let config = FidelityConfig {
        shells: ShellConfig::spanning(&truth.position, 12, 0.01, 0.99),
        ..FidelityConfig::default()
    };
    let f = evaluate(
        PhaseSpace::new(&stars.position, &stars.velocity),
        PhaseSpace::new(&truth.position, &truth.velocity),
        PhaseSpace::new(&training.position, &training.velocity),
        &config,
    )?;
    eprintln!(
        "{} stars: two-sample z {:.1} (statistic {:.4}, null {:.4} ± {:.4}); smoothness ratio {:.3} (KS {:.3})",
        stars.position.len(),
        f.two_sample.z,
        f.two_sample.statistic,
        f.two_sample.null_mean,
        f.two_sample.null_sd,
        f.smoothness.ratio,
        f.smoothness.ks
    );
    // The particles' weights: their initial masses where those differ by more than 0.1% (a
    // galaxy's components can differ in the last digits of their float32 masses), else none.
    let m = &training.initial_mass;
    let unequal = masses_differ(m);
    let weights = unequal.then_some(m.as_slice());
    let r_truth = radii(&truth.position);
    eprintln!(
        "radial KS against the truth: stars {:.4}, particles {:.4}{}",
        ks_two_sample(&radii(&stars.position), &r_truth),
        ks_two_sample_weighted(&radii(&training.position), weights, &r_truth, None),
        if unequal {
            " (weighted by initial mass)"
        } else {
            ""
        }
    );
    let training_set = PhaseSpace {
        mass: weights,
        ..PhaseSpace::new(&training.position, &training.velocity)
    };
    let particles = compare_profiles(&shell_profile(training_set, &config.shells)?, &f.reference);
    for (c, p) in f.shells.iter().zip(&particles) {
        eprintln!(
            "r {:7.3} kpc: share {:.3}±{:.3}  σ_r {:.3}±{:.3}  σ_t {:.3}±{:.3}  \
             β diff {:+.3}±{:.3}  (particles: share {:.3}, σ_r {:.3}, σ_t {:.3}, β diff {:+.3})",
            c.r_mid,
            c.share_ratio,
            c.share_ratio_err,
            c.sigma_r_ratio,
            c.sigma_r_ratio_err,
            c.sigma_t_ratio,
            c.sigma_t_ratio_err,
            c.beta_diff,
            c.beta_diff_err,
            p.share_ratio,
            p.sigma_r_ratio,
            p.sigma_t_ratio,
            p.beta_diff
        );
    }
    if let Some(z) = off_plane {
        // Fraction of a sample in shell [lo, hi) with |z| > Z, and its count.
        let share = |x: &[[f64; 3]], lo: f64, hi: f64| {
            let n = x
                .iter()
                .filter(|p| p[2].abs() > z && (lo..hi).contains(&radius(**p)))
                .count();
            (n as f64 / x.len().max(1) as f64, n as f64)
        };
        eprintln!("off the plane (|z| > {z} kpc), share against the truth's (± Poisson):");
        for s in &f.reference.shells {
            let (t, nt) = share(&truth.position, s.r_inner, s.r_outer);
            let (c, nc) = share(&stars.position, s.r_inner, s.r_outer);
            let (p, _) = share(&training.position, s.r_inner, s.r_outer);
            if nt == 0.0 {
                eprintln!(
                    "r {:7.3} kpc: truth none; stars {:.2e}, particles {:.2e} of all",
                    s.r_mid, c, p
                );
                continue;
            }
            let err = (c / t) * (1.0 / nt + 1.0 / nc.max(1.0)).sqrt();
            eprintln!(
                "r {:7.3} kpc: truth {:.2e} of all; stars {:.3}±{:.3}, particles {:.3}",
                s.r_mid,
                t,
                c / t,
                err,
                p / t
            );
        }
    }
    println!("{}", serde_json::to_string_pretty(&f)?);
    Ok(())
}
