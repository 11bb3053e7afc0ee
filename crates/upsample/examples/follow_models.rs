//! Do a run's velocity flows follow their local dispersion models, or correct them?
//!
//! For every cell of a run's `models/`, in radial shells: the variance of the velocities
//! standardised by the cell's `local_dispersion.json` (radial, and per tangential axis) of
//! (1) the snapshot particles inside the cell's core, and (2) the cell's velocity flow drawn
//! `--draws` times at those particles' positions; with `--catalog`, of (3) the catalogue's stars
//! of that cell and (4) the flow re-drawn at the stars' positions. A variance of 1 is the model
//! itself; the particles' departure from 1 is the model's error, which a flow that corrects its
//! model reproduces. Also the rms v_r (km/s) of each sample, pooled over the cells. Where
//! clusters share space (components), the particle columns count every particle in a core and
//! mix clusters; the star columns go by the stars' cluster and do not.
//! docs/ACCURACY.md (twenty-fourth session) has what it found on galaxy (a).
//!
//! ```text
//! cargo run --release -p upsample --example follow_models -- SNAPSHOT RUN_DIR \
//!     [--device flex|libtorch] [--draws 8] [--catalog RUN_DIR/catalog.hdf5] [--shells 0.2,0.36,...]
//! ```
use anyhow::{bail, Context, Result};
use snapio::{ReadOptions, Snapshot};
use upsample::models::{LocalDispersion, ModelSet};

/// Variances of standardised velocities (radial, tangential per axis), rms v_r (km/s), count.
#[derive(Clone, Copy, Default)]
struct Moments {
    var_r: f64,
    var_t: f64,
    rms_vr: f64,
    n: f64,
}

/// |x| (kpc).
fn radius(p: &[f64; 3]) -> f64 {
    p.iter().map(|c| c * c).sum::<f64>().sqrt()
}

/// The moments of velocities `v` (km/s) at positions `x` (kpc) standardised by `d`.
fn moments(d: &LocalDispersion, x: &[[f64; 3]], v: &[[f64; 3]]) -> Moments {
    let (mut s_r2, mut s_r, mut s_t2, mut s_vr2) = (0.0, 0.0, 0.0, 0.0);
    for (p, vi) in x.iter().zip(v) {
        let r = radius(p);
        let (t, _) = d.standardise(*p, *vi);
        let tr = (0..3).map(|k| t[k] * p[k]).sum::<f64>() / r;
        let vr = (0..3).map(|k| vi[k] * p[k]).sum::<f64>() / r;
        s_r2 += tr * tr;
        s_r += tr;
        s_t2 += t.iter().map(|c| c * c).sum::<f64>() - tr * tr;
        s_vr2 += vr * vr;
    }
    let n = x.len() as f64;
    Moments {
        var_r: s_r2 / n - (s_r / n).powi(2),
        var_t: s_t2 / n / 2.0,
        rms_vr: (s_vr2 / n).sqrt(),
        n,
    }
}

/// Accumulates count-weighted moments over cells.
fn pool(acc: &mut Moments, m: Moments) {
    acc.var_r += m.var_r * m.n;
    acc.var_t += m.var_t * m.n;
    acc.rms_vr += m.rms_vr * m.rms_vr * m.n;
    acc.n += m.n;
}

/// Pooled moments back to means.
fn pooled(acc: Moments) -> Moments {
    Moments {
        var_r: acc.var_r / acc.n,
        var_t: acc.var_t / acc.n,
        rms_vr: (acc.rms_vr / acc.n).sqrt(),
        n: acc.n,
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut device, mut draws, mut catalog) = ("flex".to_string(), 8usize, None);
    let mut edges = vec![0.2, 0.36, 0.56, 0.9, 1.45, 2.3];
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--device" => device = value()?.clone(),
            "--draws" => draws = value()?.parse().context("--draws")?,
            "--catalog" => catalog = Some(value()?.clone()),
            "--shells" => {
                edges = value()?
                    .split(',')
                    .map(|s| s.parse::<f64>())
                    .collect::<Result<_, _>>()
                    .context("--shells: comma-separated radii in kpc")?
            }
            _ => positional.push(a.clone()),
        }
    }
    let [snapshot, run] = positional.as_slice() else {
        bail!("usage: follow_models SNAPSHOT RUN_DIR [--device D] [--draws K] [--catalog CAT] [--shells r0,r1,...]");
    };
    if edges.len() < 2 || draws == 0 {
        bail!("need at least two shell edges and one draw");
    }
    let device = cnf::parse_device(&device)?;
    let set = ModelSet::load(std::path::Path::new(run), &device)?;
    let (particles, _) = Snapshot::open(snapshot)?.read_stars(&ReadOptions::default())?;
    let stars = catalog.as_ref().map(snapio::read_catalog).transpose()?;
    let shells: Vec<(f64, f64)> = edges.windows(2).map(|w| (w[0], w[1])).collect();
    // Per shell: particles, flow at particles, stars, flow at stars.
    let mut acc = vec![[Moments::default(); 4]; shells.len()];
    for c in &set.clusters {
        let Some(core) = c.core else {
            bail!("{run}: cluster {} is not a cell (no core)", c.label);
        };
        let member = &c.members[0];
        let Some(d) = &member.dispersion else {
            bail!("{run}: cluster {} has no local dispersion model", c.label);
        };
        for (si, &(lo, hi)) in shells.iter().enumerate() {
            let seed = 1000 + 100 * c.index as u64 + si as u64;
            let mut one = |x: Vec<[f64; 3]>, v: Vec<[f64; 3]>, slot: usize| -> Result<()> {
                if x.is_empty() {
                    return Ok(());
                }
                pool(&mut acc[si][slot], moments(d, &x, &v));
                let xr: Vec<[f64; 3]> = x
                    .iter()
                    .flat_map(|&p| std::iter::repeat_n(p, draws))
                    .collect();
                let vr = member.sample_velocities(&xr, seed + slot as u64)?;
                let mut m = moments(d, &xr, &vr);
                m.n /= draws as f64;
                pool(&mut acc[si][slot + 1], m);
                Ok(())
            };
            let inside = |p: &[f64; 3]| (lo..hi).contains(&radius(p));
            let (x, v): (Vec<_>, Vec<_>) = particles
                .position
                .iter()
                .zip(&particles.velocity)
                .filter(|(p, _)| inside(p) && core.contains(p))
                .map(|(p, v)| (*p, *v))
                .unzip();
            one(x, v, 0)?;
            if let Some(s) = &stars {
                let (x, v): (Vec<_>, Vec<_>) = (0..s.position.len())
                    .filter(|&i| s.cluster[i] as usize == c.index && inside(&s.position[i]))
                    .map(|i| (s.position[i], s.velocity[i]))
                    .unzip();
                one(x, v, 2)?;
            }
        }
    }
    // Components (a disc and a spheroid sharing space) give clusters whose cores overlap: a
    // particle inside two cores is counted in both, and the particle columns mix clusters.
    let shared = particles
        .position
        .iter()
        .filter(|p| {
            set.clusters
                .iter()
                .filter(|c| c.core.is_some_and(|k| k.contains(p)))
                .count()
                > 1
        })
        .count();
    if shared > 0 {
        println!(
            "note: {shared} particles lie in more than one cell's core (components share space): \
             the particle columns mix clusters; the star columns do not"
        );
    }
    println!("standardised variance radial / tangential per axis (1: the model), rms v_r km/s");
    for (si, &(lo, hi)) in shells.iter().enumerate() {
        let [p, fp, s, fs] = acc[si].map(pooled);
        print!(
            "{lo:5.2}-{hi:5.2} kpc: particles (n {:.0}, ±{:.3}) {:.3} / {:.3}, {:.2} | flow at them {:.3} / {:.3}, {:.2}",
            p.n, (2.0 / p.n).sqrt(), p.var_r, p.var_t, p.rms_vr, fp.var_r, fp.var_t, fp.rms_vr
        );
        if stars.is_some() {
            print!(
                " | stars (n {:.0}, ±{:.3}) {:.3} / {:.3}, {:.2} | flow at them {:.3} / {:.3}, {:.2}",
                s.n, (2.0 / s.n).sqrt(), s.var_r, s.var_t, s.rms_vr, fs.var_r, fs.var_t, fs.rms_vr
            );
        }
        println!();
    }
    Ok(())
}
