//! The kernel method (`--method kernel`), the baseline: each star placed around its parent
//! particle with a 6D Epanechnikov kernel (`crate::stars` sizes it), streamed into the catalogue.

use anyhow::{Context, Result};
use std::path::Path;

use super::catalog::{catalog_meta, create_catalog};
use super::prepare::Prepared;
use crate::config::Config;
use crate::observe::Progress;
use crate::stars::{draw_stars, has_parent_identity, Imf, KernelSizes, StarDraw, StarTotals};

/// Draws the catalogue of prepared stars with the kernel method into `path`.
pub(crate) fn write_kernel_catalog(
    p: &Prepared,
    cfg: &Config,
    snapshot: &Path,
    path: &Path,
    progress: &dyn Progress,
) -> Result<StarTotals> {
    let imf = Imf::new(&cfg.imf)?;
    let sizes = KernelSizes::fit(&p.stars.position, &p.stars.velocity, &cfg.kernel)
        .context("kernel method: cannot size the kernels")?;
    let mut writer = create_catalog(
        path,
        &catalog_meta(snapshot, cfg, &p.frame),
        has_parent_identity(&p.stars),
    )?;
    let mut task = progress.task(p.stars.len() as u64, "particles");
    let stars = &p.stars;
    let place = |i: usize, rng: &mut _| {
        let (dx, dv) = sizes.draw_offset(i, rng);
        let (x, v) = (stars.position[i], stars.velocity[i]);
        (
            [x[0] + dx[0], x[1] + dx[1], x[2] + dx[2]],
            [v[0] + dv[0], v[1] + dv[1], v[2] + dv[2]],
        )
    };
    let draw = StarDraw {
        imf: &imf,
        fraction: cfg.stars.fraction,
        seed: cfg.seed,
    };
    let totals = draw_stars(
        stars,
        &draw,
        place,
        |_| 0,
        &mut writer,
        |done, written| task.set(done as u64, &format!("{written} stars")),
    )?;
    task.finish();
    writer.finish()?;
    Ok(totals)
}
