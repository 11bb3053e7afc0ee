//! `upsample inspect`: what is in a snapshot, printed for a person.

use anyhow::Result;

use super::args::InspectArgs;
use snapio::Snapshot;

/// Prints the inventory of a snapshot to stdout.
pub fn run(args: &InspectArgs) -> Result<()> {
    let snap = Snapshot::open(&args.path)?;
    let inv = snap.inventory()?;
    print!("{inv}");
    Ok(())
}
