//! The command half of `upsample accel`: flags into an [`AccelRequest`], progress bars.

use anyhow::{bail, Result};

use super::args::AccelArgs;
use super::progress::Bars;
use upsample::dynamics::EomOptions;
use upsample::pipeline::accel::{run_accel, AccelRequest, Positions};

/// Runs `upsample accel`.
pub fn run(args: &AccelArgs) -> Result<()> {
    let positions = match (&args.positions, &args.grid) {
        (Some(p), _) => Positions::File {
            path: p.clone(),
            dataset: args.positions_dataset.clone(),
        },
        (None, Some(g)) => Positions::Grid(g.clone()),
        (None, None) => bail!("give --positions FILE or --grid SPEC"),
    };
    let req = AccelRequest {
        model: args.model.clone(),
        positions,
        out: args.out.clone(),
        device: args.device.clone(),
        opts: EomOptions {
            k: args.k,
            seed: args.seed,
            form: args.form.into(),
            fit: args.fit.into(),
            bootstrap: args.bootstrap,
            max_condition: args.max_condition,
            batch_points: args.batch,
        },
        poisson_step: args.poisson_step,
    };
    run_accel(&req, &Bars)
}
