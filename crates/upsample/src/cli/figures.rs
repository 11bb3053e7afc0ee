//! `upsample figures DIR` and the figures written after a run or `merge`: the command half of
//! `upsample::figures` (the library draws; this prints what was written).

use anyhow::Result;
use std::path::Path;

use super::args::FiguresArgs;
use upsample::figures::{write_figures, FigureOptions};

/// `upsample figures DIR`: every figure and the page, or an error naming what is missing.
pub fn run(args: &FiguresArgs) -> Result<()> {
    let opts = FigureOptions {
        accel: args.accel.clone(),
        ..FigureOptions::default()
    };
    let w = write_figures(&args.dir, &opts)?;
    for n in &w.notes {
        eprintln!("note: {n}");
    }
    println!(
        "{} figures in {}; page {}",
        w.figures.len(),
        args.dir.join("figures").display(),
        w.html.display()
    );
    Ok(())
}

/// After a completed run or merge: the figures and the page, unless `--no-figures`. A failure
/// here does not fail the run (its outputs are complete): it is printed as a warning.
pub fn after_run(dir: &Path, no_figures: bool) {
    if no_figures {
        return;
    }
    match write_figures(dir, &FigureOptions::default()) {
        Ok(w) => println!(
            "figures: {} in {}, page {}",
            w.figures.len(),
            dir.join("figures").display(),
            w.html.display()
        ),
        Err(e) => eprintln!(
            "warning: figures not written ({e:#}); the run's outputs are complete, retry with `upsample figures {}`",
            dir.display()
        ),
    }
}
