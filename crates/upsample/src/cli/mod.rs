//! The command line and the terminal: clap types (`args.rs`), flags → configuration and the
//! main job (`run.rs`), `inspect`, the command half of `accel`, logging, progress bars. Part of
//! the binary, not of the library: the only code that knows clap or prints for a person.

mod accel;
mod args;
mod figures;
mod inspect;
mod logging;
mod progress;
mod run;

pub use args::{Cli, Command};

use anyhow::Result;

/// Runs what the command line asks for.
pub fn dispatch(cli: Cli) -> Result<()> {
    logging::init(cli.verbose);
    match cli.command {
        Some(Command::Inspect(args)) => inspect::run(&args),
        Some(Command::Merge(args)) => run::merge(&args),
        Some(Command::Accel(args)) => accel::run(&args),
        Some(Command::Figures(args)) => figures::run(&args),
        None => run::run(&cli.run),
    }
}
