//! The main job and `merge` from the command line: flags override the configuration file, the
//! pipeline runs, the summary is printed.

use anyhow::{bail, Context, Result};
use std::path::Path;

use super::args::{MergeArgs, RunArgs};
use super::progress::Bars;
use upsample::config::{Config, RegionConfig};
use upsample::pipeline::{self, RunOutcome, RunPaths, RunReport, Shard};

/// The configuration of a run: the file (if any), then the command-line overrides, validated.
pub fn resolve(args: &RunArgs) -> Result<Config> {
    let mut cfg = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if let Some(device) = &args.device {
        cfg.device = device.clone();
    }
    if let Some(radius) = args.region_radius {
        let center = match args.region_center.as_deref() {
            Some([x, y, z]) => [*x, *y, *z],
            Some(other) => bail!(
                "--region-center needs 3 values X,Y,Z in kpc, got {}",
                other.len()
            ),
            None => [0.0; 3],
        };
        cfg.region = Some(RegionConfig { center, radius });
    }
    if let Some(n) = args.clusters {
        cfg.clusters.n = n;
    }
    if let Some(e) = args.epochs {
        cfg.training.epochs = e;
    }
    if let Some(f) = args.star_fraction {
        cfg.stars.fraction = f;
    }
    if let Some(m) = args.method {
        cfg.method = m.into();
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Runs the job described by the command line.
pub fn run(args: &RunArgs) -> Result<()> {
    let snapshot = args
        .snapshot
        .as_ref()
        .context("--snapshot PATH is required (see `upsample --help`)")?;
    let cfg = resolve(args)?;
    let shard = args.shard.as_deref().map(Shard::parse).transpose()?;
    let paths = RunPaths {
        snapshot: snapshot.clone(),
        out: args.out.clone(),
    };
    match pipeline::run(&cfg, &paths, shard, &Bars)? {
        RunOutcome::Complete(report) => {
            print_summary(&report, &paths.catalog(), &paths.report());
            super::figures::after_run(&paths.out, args.no_figures);
        }
        RunOutcome::ShardDone { shard, clusters } => println!(
            "shard {}/{}: {clusters} clusters done in {}; run `upsample merge {}` once every shard has finished",
            shard.index,
            shard.count,
            paths.out.display(),
            paths.out.display()
        ),
    }
    Ok(())
}

/// `upsample merge DIR`.
pub fn merge(args: &MergeArgs) -> Result<()> {
    let report = pipeline::merge(&args.dir)?;
    print_summary(
        &report,
        &args.dir.join("catalog.hdf5"),
        &args.dir.join("report.json"),
    );
    super::figures::after_run(&args.dir, args.no_figures);
    Ok(())
}

/// Prints the closing summary of a run.
fn print_summary(report: &RunReport, catalog: &Path, report_path: &Path) {
    let i = &report.info;
    println!(
        "{}: {} star particles ({} selected, {:.4e} Msun), {} winds dropped; centre {:.3?} kpc, bulk velocity {:.2?} km/s",
        i.snapshot.display(),
        i.star_particles_read,
        i.star_particles_selected,
        i.stellar_mass_msun,
        i.wind_particles_dropped,
        i.frame_center_kpc,
        i.frame_bulk_velocity_kms
    );
    if !i.invalid_particles_dropped.is_empty() {
        println!(
            "{} invalid star particles dropped: {}",
            i.invalid_particles_dropped.values().sum::<u64>(),
            pipeline::dropped_summary(&i.invalid_particles_dropped)
        );
    }
    println!(
        "{} stars written to {} (star fraction {}); report in {}",
        report.stars.stars_written,
        catalog.display(),
        i.star_fraction,
        report_path.display()
    );
    if let Some(f) = &report.fidelity {
        let worst = report
            .clusters
            .iter()
            .filter_map(|c| {
                c.fidelity
                    .as_ref()
                    .map(|f| (c.record.index, f.two_sample.z))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        println!(
            "fidelity against {} held-out particles: 6D two-sample z {:.2} (0 ± 1: indistinguishable{}), \
             smoothness ratio {:.3} (1: smooth, < 1: stars huddle around particles){}",
            f.two_sample.n_reference,
            f.two_sample.z,
            f.two_sample.largest_part_note(),
            f.smoothness.ratio,
            worst.map_or(String::new(), |(c, z)| format!("; worst cluster {c}: z {z:.2}"))
        );
    }
    let dir = catalog.parent().unwrap_or(Path::new("."));
    for s in &report.survey {
        println!(
            "survey observer {} at {:.3?} kpc: {} stars observed, {} alive, {} brighter than the cut -> {}",
            s.observer,
            s.observer_position_kpc,
            s.drawn,
            s.alive,
            s.selected,
            dir.join(&s.file).display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "seed = 5\ndevice = \"flex\"\n[stars]\nfraction = 0.5\n",
        )
        .unwrap();
        let args = RunArgs {
            config: Some(path.clone()),
            seed: Some(7),
            region_radius: Some(3.0),
            ..Default::default()
        };
        let cfg = resolve(&args).unwrap();
        assert_eq!(cfg.seed, 7);
        assert_eq!(cfg.stars.fraction, 0.5);
        assert_eq!(cfg.region.as_ref().unwrap().radius, 3.0);
        let back: Config = toml::from_str(&cfg.to_toml()).unwrap();
        assert_eq!(back, cfg);

        let bad = RunArgs {
            star_fraction: Some(1.5),
            ..Default::default()
        };
        assert!(resolve(&bad)
            .unwrap_err()
            .to_string()
            .contains("star fraction"));
        std::fs::write(&path, "sed = 5\n").unwrap();
        let err = resolve(&RunArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("c.toml"));
        let bad_dev = RunArgs {
            device: Some("gpu".into()),
            ..Default::default()
        };
        assert!(resolve(&bad_dev).is_err());
    }
}
