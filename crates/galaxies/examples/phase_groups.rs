//! Runs the phase-space group finder (`upsample::decompose::find_phase_groups`) on test
//! galaxies drawn in memory and prints what it finds against the galaxies' component labels:
//! groups, their purity and completeness per component, the contrast quantiles per component,
//! and the time taken.
//!
//! `cargo run -p galaxies --release --example phase_groups -- [--model stream|spheroid|disc]
//! [--n N] [--seed S] [--contrast C] [--grow G] [--min M]`

use std::time::Instant;

use galaxies::{generate, Model, Options};
use upsample::decompose::{find_phase_groups, PhaseGroupSettings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut model = "stream".to_string();
    let (mut n, mut seed) = (50_000usize, 1u64);
    let mut settings = PhaseGroupSettings::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--model" => model = value()?.clone(),
            "--n" => n = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--contrast" => settings.contrast = value()?.parse()?,
            "--grow" => settings.grow_contrast = value()?.parse()?,
            "--min" => settings.min_members = value()?.parse()?,
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let m = Model::by_name(&model).ok_or(format!("unknown model {model}"))?;
    let names: &[&str] = match &m {
        Model::HaloStream(_) => &galaxies::HaloStream::LABELS,
        Model::DiscBulge(_) => &["disc", "bulge"],
        Model::Spheroid(_) => &["spheroid"],
    };
    let g = generate(m, Options::new(n, seed));
    let p = &g.sample.particles;
    let t = Instant::now();
    let found = find_phase_groups(&p.position, &p.velocity, &settings, None)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{model}, {n} particles, seed {seed}: {:.2} s; scales {:.3} kpc, {:.2} km/s; {} above \
         contrast {}, {} grown through {}; {} groups kept, {} smaller sets, too large {:?}",
        secs,
        found.position_scale,
        found.velocity_scale,
        found.outliers,
        settings.contrast,
        found.grown,
        settings.grow_contrast,
        found.groups.len(),
        found.small_groups,
        found.too_large
    );
    let labels = &g.sample.label;
    let total: Vec<usize> = (0..names.len())
        .map(|l| labels.iter().filter(|&&x| x as usize == l).count())
        .collect();
    for (k, grp) in found.groups.iter().enumerate() {
        let mut count = vec![0usize; names.len()];
        for &i in grp {
            count[labels[i] as usize] += 1;
        }
        let (best, &nb) = count
            .iter()
            .enumerate()
            .max_by_key(|(_, c)| **c)
            .ok_or("no labels")?;
        println!(
            "group {k}: {} members, mostly {} (purity {:.4}, completeness {:.4}); by component {:?}",
            grp.len(),
            names[best],
            nb as f64 / grp.len() as f64,
            nb as f64 / total[best] as f64,
            count
        );
    }
    for (l, name) in names.iter().enumerate() {
        let mut c: Vec<f64> = (0..n)
            .filter(|&i| labels[i] as usize == l)
            .map(|i| found.contrast[i])
            .collect();
        c.sort_by(f64::total_cmp);
        let q = |f: f64| c[((c.len() - 1) as f64 * f).round() as usize];
        println!(
            "{name} ({} particles): contrast quantiles 1% {:.3e}, 10% {:.3e}, 50% {:.3e}, 90% \
             {:.3e}, 99.9% {:.3e}, max {:.3e}",
            c.len(),
            q(0.01),
            q(0.1),
            q(0.5),
            q(0.9),
            q(0.999),
            q(1.0)
        );
    }
    Ok(())
}
