//! The `upsample` command: see `upsample --help`.

use clap::Parser;
use std::process::ExitCode;
use upsample::cli::{Cli, Command};

fn main() -> ExitCode {
    // Tensor memory stays in the process between training steps (docs/PERFORMANCE.md).
    cnf::backend::tune_allocator();
    let cli = Cli::parse();
    upsample::logging::init(cli.verbose);
    let result = match cli.command {
        Some(Command::Inspect(args)) => upsample::inspect::run(&args),
        Some(Command::Merge(args)) => upsample::flowrun::merge(&args.dir).map(|_| ()),
        Some(Command::Accel(args)) => upsample::accel::run(&args),
        None => upsample::job::run(&cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
