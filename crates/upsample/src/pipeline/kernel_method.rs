//! The kernel method (`--method kernel`), the baseline: each star placed around its parent
//! particle with a 6D Epanechnikov kernel (`crate::stars` sizes it), streamed into the catalogue
//! and, in the same pass, into the mock survey's catalogues when one is configured.

use anyhow::{Context, Result};

use super::catalog::{catalog_meta, create_catalog};
use super::mock_survey::{CatalogSink, MockSurvey};
use super::prepare::Prepared;
use super::run_dir::{RunPaths, SurveyCounts};
use crate::config::Config;
use crate::observe::Progress;
use crate::stars::{
    draw_stars, has_parent_identity, Imf, KernelSizes, MainSequenceScaling, StarDraw, StarTotals,
};

/// Draws the catalogue of prepared stars with the kernel method into `paths.catalog()`, and
/// each observer's survey catalogue when `survey` is given.
pub(crate) fn write_kernel_catalog(
    p: &Prepared,
    cfg: &Config,
    paths: &RunPaths,
    survey: Option<&MockSurvey>,
    progress: &dyn Progress,
) -> Result<(StarTotals, Vec<SurveyCounts>)> {
    let imf = Imf::new(&cfg.imf)?;
    let sizes = KernelSizes::fit(&p.stars.position, &p.stars.velocity, &cfg.kernel)
        .context("kernel method: cannot size the kernels")?;
    let meta = catalog_meta(&paths.snapshot, cfg, &p.frame);
    let identity = has_parent_identity(&p.stars);
    let writer = create_catalog(&paths.catalog(), &meta, identity)?;
    let mut writer = CatalogSink::new(writer, survey, paths, &meta, identity)?;
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
    let isochrones = survey.map(MockSurvey::lifetime);
    let draw = StarDraw {
        imf: &imf,
        fraction: cfg.stars.fraction,
        seed: cfg.seed,
        lifetime: match &isochrones {
            Some(l) => l,
            None => &MainSequenceScaling,
        },
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
    let (_, counts) = writer.finish()?;
    Ok((totals, counts))
}
