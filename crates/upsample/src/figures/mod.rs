//! Figures of a finished run and its page: `DIR/figures/*.png` and `DIR/report.html`, read
//! from the run folder (report.json, catalog.hdf5, survey_obsN.hdf5, accelerations files and the
//! snapshot's particles). A layer above `pipeline`: it reads what a run wrote and never trains,
//! draws stars or changes a run's files. The catalogue and survey files stream in chunks
//! (binned as they are read); only the particles (as the pipeline holds them) are read whole.
//!
//! - [`canvas`]: the bitmap canvas with the bundled font, PNG encoding, colour map, log stretch;
//! - [`surface_density`]: face-on/edge-on Σ maps, particles beside stars, clusters marked;
//! - [`profiles`]: the fidelity report's shells (density, σ_r, σ_t, β, v_φ), stars vs held-out;
//! - [`training_curves`]: training and held-out NLL per epoch of both flows per cluster;
//! - [`accel_figures`]: |a| and a_r against radius, the solver's diagnostics as histograms;
//! - [`sky_and_cmd`]: Hess diagram and Mollweide sky density of a mock survey;
//! - [`html_page`]: the self-contained page; [`run_record`]: report.json read back.

pub mod accel_figures;
pub mod canvas;
pub mod html_page;
pub mod profiles;
pub mod run_record;
pub mod sky_and_cmd;
pub mod surface_density;
pub mod training_curves;

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub use canvas::Figure;
pub use run_record::{ClusterEntry, RunRecord};

use crate::config::Config;
use html_page::Section;
use sky_and_cmd::CountGrid;
use surface_density::{ClusterCentres, ClusterMark, MapSet};

/// What [`write_figures`] draws and how.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureOptions {
    /// Accelerations files (`upsample accel` outputs, .csv/.h5) to draw, besides those found
    /// in the run folder (`DIR/accel*.csv`, `DIR/accel*.h5`, `DIR/accel*.hdf5`).
    pub accel: Vec<PathBuf>,
    /// Rows read per chunk of catalog.hdf5 and survey files.
    pub chunk_rows: usize,
    /// Most bins per side of the surface density maps (fewer where the points are few:
    /// [`surface_density::map_bins`]).
    pub map_bins: usize,
    /// Clusters shown in the loss-curve figures (worst first).
    pub max_training_clusters: usize,
}

impl Default for FigureOptions {
    fn default() -> Self {
        FigureOptions {
            accel: Vec::new(),
            chunk_rows: 1 << 20,
            map_bins: 200,
            max_training_clusters: 24,
        }
    }
}

/// What [`write_figures`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct FiguresWritten {
    /// `DIR/report.html`.
    pub html: PathBuf,
    /// The PNG files in `DIR/figures/`, in page order.
    pub figures: Vec<PathBuf>,
    /// What was skipped and why (also printed on the page).
    pub notes: Vec<String>,
}

/// The particles of the run in its galaxy frame (kpc) with their masses (Msun), read again from
/// the snapshot as the run read them (frame from run.json, region from its configuration).
fn read_particles(record: &RunRecord) -> Result<(Vec<[f64; 3]>, Vec<f64>)> {
    let info = &record.info;
    let cfg: Config = toml::from_str(&info.config)
        .context("the configuration recorded in report.json does not parse")?;
    let snap = snapio::Snapshot::open(&info.snapshot)?;
    let opts = snapio::ReadOptions {
        on_invalid: cfg.input.on_invalid,
        ..snapio::ReadOptions::default()
    };
    let (mut stars, _) = snap.read_stars(&opts)?;
    info.frame().to_frame(&mut stars);
    if let Some(region) = &cfg.region {
        let sphere = snapio::Sphere {
            center: region.center,
            radius: region.radius,
        };
        stars = snapio::select_sphere(&stars, &sphere);
    }
    Ok((stars.position, stars.mass))
}

/// Streams `catalog` in chunks of `rows` rows, calling `each(position, mass, cluster)`.
fn stream_catalog(
    catalog: &Path,
    rows: usize,
    mut each: impl FnMut(&[[f64; 3]], &[f64], Option<&[u32]>),
) -> Result<u64> {
    let c = snapio::CatalogChunks::open(catalog)?;
    let n = c.rows("position")?;
    let has_cluster = c.has("cluster");
    let mut start = 0;
    while start < n {
        let end = (start + rows.max(1)).min(n);
        let pos = c.read_vec3("position", start, end)?;
        let mass = c.read_f64("mass", start, end)?;
        let cl = if has_cluster {
            Some(c.read_u32("cluster", start, end)?)
        } else {
            None
        };
        each(&pos, &mass, cl.as_deref());
        start = end;
    }
    Ok(n as u64)
}

/// The accelerations files of the run folder: `DIR/accel*.{csv,h5,hdf5}`, sorted.
fn accel_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            name.starts_with("accel") && matches!(ext, "csv" | "h5" | "hdf5")
        })
        .collect();
    out.sort();
    out
}

/// Quantile `q` of `v` (sorted in place); NaN when empty.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The survey figures of observer file `path`: Hess diagram of observed BP−RP against observed
/// G, and the sky density in (l, b). Ranges from the first chunk's 0.2–99.8 % quantiles.
fn survey_figures(path: &Path, observer: usize, rows: usize) -> Result<Vec<Figure>> {
    let c = snapio::CatalogChunks::open(path)?;
    let n = c.rows("l")?;
    let mut sky = sky_and_cmd::sky_grid();
    let mut hess: Option<CountGrid> = None;
    let mut start = 0;
    while start < n {
        let end = (start + rows.max(1)).min(n);
        let l = c.read_f64("l", start, end)?;
        let b = c.read_f64("b", start, end)?;
        sky_and_cmd::add_sky(&mut sky, &l, &b);
        let g = c.read_f64("obs_g", start, end)?;
        let bp = c.read_f64("obs_bp", start, end)?;
        let rp = c.read_f64("obs_rp", start, end)?;
        let colour: Vec<f64> = bp.iter().zip(&rp).map(|(b, r)| b - r).collect();
        let grid = hess.get_or_insert_with(|| {
            let mut cs: Vec<f64> = colour.iter().copied().filter(|v| v.is_finite()).collect();
            let mut gs: Vec<f64> = g.iter().copied().filter(|v| v.is_finite()).collect();
            let (c0, c1) = (quantile(&mut cs, 0.002), quantile(&mut cs, 0.998));
            let (g0, g1) = (quantile(&mut gs, 0.0), quantile(&mut gs, 1.0));
            let ok = |a: f64, b: f64| a.is_finite() && b.is_finite() && b > a;
            let (c0, c1) = if ok(c0, c1) {
                (c0 - 0.1, c1 + 0.1)
            } else {
                (-0.5, 3.5)
            };
            let (g0, g1) = if ok(g0, g1) {
                (g0 - 0.2, g1 + 0.2)
            } else {
                (0.0, 21.0)
            };
            // About 5 stars per bin on average (by the first chunk), 40 to 200 bins a side.
            let bins = ((g.len() as f64 / 5.0).sqrt().round() as usize).clamp(40, 200);
            CountGrid::new((c0, c1), (g0, g1), (bins, bins))
        });
        for (x, y) in colour.iter().zip(&g) {
            grid.add(*x, *y);
        }
        start = end;
    }
    let mut out = Vec::new();
    if let Some(h) = hess {
        out.push(sky_and_cmd::hess_figure(
            &format!("cmd_obs{observer}.png"),
            &format!(
                "Observer {observer}: colour–magnitude (Hess) diagram, {} stars",
                h.total()
            ),
            &h,
            "observed BP − RP [mag]",
            "observed G [mag]",
        )?);
    }
    out.push(sky_and_cmd::sky_figure(
        &format!("sky_obs{observer}.png"),
        &format!(
            "Observer {observer}: sky density, Galactic (l, b), Mollweide, {} stars",
            sky.total()
        ),
        &sky,
    )?);
    Ok(out)
}

/// Draws every figure of the run folder `dir` into `dir/figures/` and writes `dir/report.html`.
/// Needs `report.json`; figures whose inputs are missing are skipped with a note.
pub fn write_figures(dir: &Path, opts: &FigureOptions) -> Result<FiguresWritten> {
    let report = dir.join("report.json");
    let record = RunRecord::read(&report)?;
    let mut notes = Vec::new();
    let mut sections = Vec::new();

    sections.push(Section {
        heading: "Run".into(),
        html: html_page::summary_html(&record),
        figures: Vec::new(),
    });

    // Maps: particles (whole, as the run read them) and stars (streamed).
    let particles = match read_particles(&record) {
        Ok(p) => Some(p),
        Err(e) => {
            notes.push(format!(
                "particle maps skipped: cannot read the run's particles ({e:#})"
            ));
            None
        }
    };
    let catalog = dir.join("catalog.hdf5");
    // Extent and bins from the particles, or from the catalogue's first chunk without them.
    let first_chunk;
    let sample: &[[f64; 3]] = match &particles {
        Some((p, _)) if !p.is_empty() => p,
        _ if catalog.exists() => {
            let c = snapio::CatalogChunks::open(&catalog)?;
            let n = c.rows("position")?.min(opts.chunk_rows);
            first_chunk = c.read_vec3("position", 0, n)?;
            &first_chunk
        }
        _ => &[],
    };
    let (galaxy, centre) = surface_density::map_extent(
        &mut sample.iter().map(|&p| crate::fidelity::radius(p)).collect(),
    );
    let galaxy = (
        galaxy,
        surface_density::map_bins(sample, galaxy, opts.map_bins),
    );
    let centre = (
        centre,
        surface_density::map_bins(sample, centre, opts.map_bins),
    );
    let mut map_figs = Vec::new();
    if catalog.exists() {
        let mut stars = MapSet::new(galaxy, centre);
        let mut centres = ClusterCentres::default();
        stream_catalog(&catalog, opts.chunk_rows, |p, m, c| {
            stars.add(p, m);
            if let Some(c) = c {
                centres.add(p, c);
            }
        })?;
        let pmaps = particles.as_ref().map(|(p, m)| {
            let mut s = MapSet::new(galaxy, centre);
            s.add(p, m);
            s
        });
        let (scale, how) = match &pmaps {
            Some(pm) if stars.total_mass > 0.0 => (
                pm.total_mass / stars.total_mass,
                "stars scaled to the particles' total mass",
            ),
            _ => (
                1.0 / record.info.star_fraction,
                "stars divided by the star fraction",
            ),
        };
        let cen = centres.centres();
        let marks: Vec<ClusterMark> = record
            .clusters
            .iter()
            .filter_map(|c| {
                let centre = *cen.get(&(c.record.index as u32))?;
                let (lo, hi) = (c.record.core_lo, c.record.core_hi);
                Some(ClusterMark {
                    label: c.record.index.to_string(),
                    centre,
                    x: (lo.and_then(|l| l[0]), hi.and_then(|h| h[0])),
                    y: (lo.and_then(|l| l[1]), hi.and_then(|h| h[1])),
                })
            })
            .collect();
        map_figs.push(surface_density::map_figure(
            "maps_galaxy.png",
            &format!(
                "Surface density, whole galaxy (±{:.3} kpc, {} bins a side; {how})",
                galaxy.0, galaxy.1
            ),
            pmaps.as_ref().map(|m| &m.galaxy),
            &stars.galaxy,
            scale,
            &marks,
        )?);
        map_figs.push(surface_density::map_figure(
            "maps_centre.png",
            &format!(
                "Surface density, centre (±{:.3} kpc, {} bins a side; {how})",
                centre.0, centre.1
            ),
            pmaps.as_ref().map(|m| &m.centre),
            &stars.centre,
            scale,
            &marks,
        )?);
    } else {
        notes.push(format!(
            "maps skipped: {} does not exist",
            catalog.display()
        ));
    }
    sections.push(Section {
        heading: "Maps".into(),
        html: "<p>Face-on (x–y) and edge-on (x–z) surface density in the galaxy frame, log10 \
               Msun/kpc², one colour scale for particles and stars; the face-on stars map marks \
               each cluster (its index at its stars' mean position, its core cell as a \
               rectangle).</p>"
            .into(),
        figures: map_figs,
    });

    // Fidelity: the run's, and the worst cluster's.
    let order = record.worst_first();
    let mut fid = Section {
        heading: "Fidelity".into(),
        ..Section::default()
    };
    match &record.fidelity {
        Some(f) => {
            fid.html.push_str(
                "<p>The whole run's stars against the held-out particles of every cluster \
                 (never seen by a flow).</p>",
            );
            fid.html.push_str(&html_page::fidelity_html("/fidelity", f));
            fid.figures.push(profiles::profile_figure(
                "profiles_run.png",
                "Radial profiles: stars against held-out particles (whole run)",
                f,
            )?);
        }
        None => {
            let why = "no fidelity report in report.json (kernel method, or a flow run without a holdout): profiles and statistics skipped";
            fid.html
                .push_str(&format!("<p>{}</p>", html_page::escape(why)));
            notes.push(why.into());
        }
    }
    if let Some(&w) = order.first() {
        if let Some(f) = &record.clusters[w].fidelity {
            let c = &record.clusters[w];
            fid.html.push_str(&format!(
                "<h3>Worst cluster: {} ({})</h3>",
                c.record.index,
                html_page::escape(&c.record.label)
            ));
            fid.html.push_str(&html_page::fidelity_html(
                &format!("/clusters/{w}/fidelity"),
                f,
            ));
            fid.figures.push(profiles::profile_figure(
                "profiles_worst_cluster.png",
                &format!(
                    "Radial profiles of the worst cluster, {} ({}): stars against held-out particles",
                    c.record.index, c.record.label
                ),
                f,
            )?);
        }
    }
    sections.push(fid);

    // Clusters: table and loss curves, worst first.
    if !record.clusters.is_empty() {
        let mut s = Section {
            heading: "Clusters".into(),
            html: format!(
                "<p>{} clusters, worst first (largest two-sample z; clusters without a fidelity \
                 report last, by index). NLLs in nats per particle: p(x) in ln kpc⁻³, p(v|x) in \
                 ln (km/s)⁻³.</p>",
                record.clusters.len()
            ),
            figures: Vec::new(),
        };
        s.html.push_str(&html_page::clusters_html(&record, &order));
        let shown: Vec<&ClusterEntry> = order
            .iter()
            .take(opts.max_training_clusters)
            .map(|&i| &record.clusters[i])
            .collect();
        if shown.len() < record.clusters.len() {
            s.html.push_str(&format!(
                "<p>Loss curves of the {} worst clusters.</p>",
                shown.len()
            ));
        }
        for (k, chunk) in shown
            .chunks(training_curves::CLUSTERS_PER_FIGURE)
            .enumerate()
        {
            s.figures.push(training_curves::training_figure(
                &format!("training_{k}.png"),
                &format!(
                    "Training (black) and held-out (red) NLL per epoch, clusters {}",
                    chunk
                        .iter()
                        .map(|c| c.record.index.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                chunk,
            )?);
        }
        sections.push(s);
    }

    // Accelerations.
    let mut accel = opts.accel.clone();
    for p in accel_files_in(dir) {
        if !accel.contains(&p) {
            accel.push(p);
        }
    }
    if !accel.is_empty() {
        let mut s = Section {
            heading: "Accelerations".into(),
            ..Section::default()
        };
        for (k, path) in accel.iter().enumerate() {
            match accel_figures::read_accel(path) {
                Ok(rows) => {
                    s.html.push_str(&format!(
                        "<p>figures/accel_{k}.png: {} positions from {}</p>",
                        rows.position.len(),
                        html_page::escape(&path.display().to_string())
                    ));
                    s.figures.push(accel_figures::accel_figure(
                        &format!("accel_{k}.png"),
                        &format!(
                            "Accelerations from {}",
                            path.file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        ),
                        &rows,
                    )?)
                }
                Err(e) => notes.push(format!("accelerations {} skipped: {e:#}", path.display())),
            }
        }
        sections.push(s);
    }

    // Mock surveys.
    if !record.survey.is_empty() {
        let mut s = Section {
            heading: "Survey".into(),
            html: html_page::survey_html(&record),
            figures: Vec::new(),
        };
        for o in &record.survey {
            let path = dir.join(&o.file);
            if !path.exists() {
                notes.push(format!(
                    "survey figures skipped: {} does not exist",
                    path.display()
                ));
                continue;
            }
            s.figures.extend(
                survey_figures(&path, o.observer, opts.chunk_rows)
                    .with_context(|| format!("survey figures of {}", path.display()))?,
            );
        }
        sections.push(s);
    }

    // Write.
    let fig_dir = dir.join("figures");
    std::fs::create_dir_all(&fig_dir)
        .with_context(|| format!("cannot create {}", fig_dir.display()))?;
    let mut written = Vec::new();
    for f in sections.iter().flat_map(|s| &s.figures) {
        let p = fig_dir.join(&f.name);
        crate::fsio::write_atomically(&p, &f.png)?;
        written.push(p);
    }
    let title = format!(
        "upsample run: {}",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string())
    );
    let html = dir.join("report.html");
    crate::fsio::write_atomically(&html, html_page::page(&title, &sections, &notes).as_bytes())?;
    Ok(FiguresWritten {
        html,
        figures: written,
        notes,
    })
}
