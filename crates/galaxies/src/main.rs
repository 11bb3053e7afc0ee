//! `galaxies`: draws a test galaxy and writes its snapshot, truth draw, labels and model.
//!
//! `galaxies --model spheroid|disc|stream [--n 50000] [--n-truth N] [--seed 1]
//! [--layout tng|gizmo|gadget4] [--mass-gamma G --mass-scale KPC] --out DIR`

use std::path::PathBuf;
use std::process::ExitCode;

use galaxies::{generate, write_galaxy, MassWeights, Model, Options};
use snapio::Layout;

const USAGE: &str = "usage: galaxies --model spheroid|disc|stream --out DIR [--n 50000] \
[--n-truth N (default: --n)] [--seed 1] [--layout tng|gizmo|gadget4 (default tng)] \
[--mass-gamma G --mass-scale KPC (particle mass ∝ (1 + r/scale)^G)]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("galaxies: {e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (mut model, mut out, mut n, mut n_truth, mut seed) = (None, None, 50_000, None, 1);
    let (mut layout, mut gamma, mut scale) = (Layout::ArepoTng, None, None);
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag} {value}: expected {what}");
        match flag.as_str() {
            "--model" => {
                model = Some(Model::by_name(&value).ok_or_else(|| bad("spheroid, disc or stream"))?)
            }
            "--out" => out = Some(PathBuf::from(&value)),
            "--n" => n = value.parse().map_err(|_| bad("a particle count"))?,
            "--n-truth" => n_truth = Some(value.parse().map_err(|_| bad("a particle count"))?),
            "--seed" => seed = value.parse().map_err(|_| bad("an unsigned integer"))?,
            "--layout" => {
                layout = match value.as_str() {
                    "tng" | "arepo" => Layout::ArepoTng,
                    "gizmo" | "fire" => Layout::GizmoFire,
                    "gadget4" => Layout::Gadget4,
                    _ => return Err(bad("tng, gizmo or gadget4").into()),
                }
            }
            "--mass-gamma" => gamma = Some(value.parse().map_err(|_| bad("a number"))?),
            "--mass-scale" => scale = Some(value.parse().map_err(|_| bad("a radius in kpc"))?),
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    let model = model.ok_or("--model is required")?;
    let out = out.ok_or("--out is required")?;
    let mass_weights = match (gamma, scale) {
        (None, None) => None,
        (Some(gamma), Some(scale)) if scale > 0.0 => Some(MassWeights { gamma, scale }),
        _ => return Err("--mass-gamma and --mass-scale (> 0) go together".into()),
    };
    let options = Options {
        n,
        n_truth: n_truth.unwrap_or(n),
        seed,
        mass_weights,
    };
    let galaxy = generate(model, options);
    let w = write_galaxy(&galaxy, &out, layout)?;
    println!(
        "wrote {} ({} particles), {} ({} particles), {}, {}, {}",
        w.snapshot.display(),
        galaxy.sample.particles.len(),
        w.truth.display(),
        galaxy.truth.particles.len(),
        w.labels.display(),
        w.truth_labels.display(),
        w.model.display()
    );
    Ok(())
}
