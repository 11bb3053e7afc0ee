//! The `upsample` command: see `upsample --help`. The command line (`cli/`) lives in the binary;
//! everything it runs is the `upsample` library.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Tensor memory stays in the process between training steps (docs/PERFORMANCE.md).
    cnf::backend::tune_allocator();
    // One seed, the same flows on every x86-64 CPU with AVX2 (libtorch's MKL and ATen
    // otherwise choose their kernels by CPU): before any thread or tensor exists.
    cnf::backend::pin_cpu_code_paths();
    match cli::dispatch(cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
