//! The main job: read the snapshot, put the galaxy in its frame, select the region, draw the
//! stars and stream them into `catalog.hdf5`, then write `report.json`.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::cli::RunArgs;
use crate::config::{Config, Method};
use crate::flowrun::Shard;
use crate::imf::Imf;
use crate::kernel::KernelSizes;
use crate::progress::Progress;
use crate::report::write_json;
use crate::stars::{draw_stars, StarDraw, StarTotals};
use snapio::{
    AttrValue, CatalogMeta, CatalogWriter, FrameOptions, GalaxyFrame, ReadOptions, ReadReport,
    Snapshot, Sphere, StarParticles,
};
use std::time::Instant;

/// Star particles ready for the pipeline: physical units, galaxy frame, region applied.
pub struct Prepared {
    /// The stars (kpc, km/s, Msun, Gyr), galaxy frame.
    pub stars: StarParticles,
    /// Transform from the snapshot's physical frame to the galaxy frame.
    pub frame: GalaxyFrame,
    /// What the reader found (files, wind particles dropped, notes).
    pub read: ReadReport,
    /// Star particles before the region cut.
    pub n_read: usize,
    /// Human name of the snapshot's layout.
    pub layout: String,
}

/// What a run is: the snapshot, what was read from it, the frame and the configuration.
/// Written to `DIR/run.json` before any work; a resumed run or a shard checks it matches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// Program version.
    pub version: String,
    /// Snapshot path as given.
    pub snapshot: PathBuf,
    /// Files read.
    pub files: Vec<PathBuf>,
    /// Layout detected.
    pub layout: String,
    /// Star particles read (winds excluded).
    pub star_particles_read: usize,
    /// Wind particles dropped.
    pub wind_particles_dropped: u64,
    /// Star particles in the selected region.
    pub star_particles_selected: usize,
    /// Their total current mass, Msun.
    pub stellar_mass_msun: f64,
    /// Their total initial mass, Msun.
    pub initial_stellar_mass_msun: f64,
    /// Galaxy centre in the snapshot's physical frame, kpc.
    pub frame_center_kpc: [f64; 3],
    /// Galaxy bulk velocity, km/s.
    pub frame_bulk_velocity_kms: [f64; 3],
    /// Rows: galaxy x, y, z axes in snapshot coordinates.
    pub frame_rotation: [[f64; 3]; 3],
    /// Reader notes (assumptions made about the file).
    pub notes: Vec<String>,
    /// Placement method used.
    pub method: Method,
    /// Fraction of the stars drawn.
    pub star_fraction: f64,
    /// The configuration used, as TOML.
    pub config: String,
}

impl RunInfo {
    /// The summary of prepared stars under `cfg`.
    pub fn new(snapshot: &Path, p: &Prepared, cfg: &Config) -> RunInfo {
        RunInfo {
            version: crate::VERSION.to_string(),
            snapshot: snapshot.to_path_buf(),
            files: p.read.files.clone(),
            layout: p.layout.clone(),
            star_particles_read: p.n_read,
            wind_particles_dropped: p.read.winds_dropped,
            star_particles_selected: p.stars.len(),
            stellar_mass_msun: p.stars.mass.iter().sum(),
            initial_stellar_mass_msun: p.stars.initial_mass.iter().sum(),
            frame_center_kpc: p.frame.center,
            frame_bulk_velocity_kms: p.frame.bulk_velocity,
            frame_rotation: p.frame.rotation,
            notes: p.read.notes.clone(),
            method: cfg.method,
            star_fraction: cfg.stars.fraction,
            config: cfg.to_toml(),
        }
    }

    /// The galaxy frame recorded.
    pub fn frame(&self) -> GalaxyFrame {
        GalaxyFrame {
            center: self.frame_center_kpc,
            bulk_velocity: self.frame_bulk_velocity_kms,
            rotation: self.frame_rotation,
        }
    }
}

/// Summary written to `report.json`.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The run (snapshot, frame, configuration).
    #[serde(flatten)]
    pub info: RunInfo,
    /// Star totals (drawn, written, initial masses).
    pub stars: StarTotals,
    /// Per-cluster figures (flow method).
    pub clusters: Vec<crate::flowrun::ClusterReport>,
    /// Wall-clock seconds of each stage.
    pub seconds: Vec<(String, f64)>,
}

/// Prints the closing summary of a run.
pub fn print_summary(report: &RunReport, catalog: &Path, report_path: &Path) {
    let i = &report.info;
    println!(
        "{}: {} star particles ({} selected, {:.4e} Msun), {} winds dropped; centre {:.3?} kpc, bulk velocity {:.2?} km/s",
        i.snapshot.display(),
        i.star_particles_read,
        i.star_particles_selected,
        i.stellar_mass_msun,
        i.wind_particles_dropped,
        i.frame_center_kpc,
        i.frame_bulk_velocity_kms
    );
    println!(
        "{} stars written to {} (star fraction {}); report in {}",
        report.stars.stars_written,
        catalog.display(),
        i.star_fraction,
        report_path.display()
    );
}

/// Reads and prepares the stars of a snapshot according to `cfg`.
pub fn prepare(snapshot: &Path, cfg: &Config) -> Result<Prepared> {
    let snap = Snapshot::open(snapshot)?;
    let (mut stars, read) = snap.read_stars(&ReadOptions::default())?;
    let n_read = stars.len();
    tracing::info!(
        "read {} star particles from {} file(s) ({}), {} wind particles dropped",
        n_read,
        read.files.len(),
        snap.layout(),
        read.winds_dropped
    );
    let frame = if cfg.frame.enabled {
        GalaxyFrame::find(&stars, &FrameOptions::default())?
    } else {
        GalaxyFrame::identity()
    };
    frame.to_frame(&mut stars);
    if let Some(region) = &cfg.region {
        let sphere = Sphere {
            center: region.center,
            radius: region.radius,
        };
        stars = snapio::select_sphere(&stars, &sphere);
        if stars.is_empty() {
            anyhow::bail!(
                "no star particle of {} lies within {} kpc of {:?} (galaxy frame)",
                snapshot.display(),
                region.radius,
                region.center
            );
        }
    }
    Ok(Prepared {
        stars,
        frame,
        read,
        n_read,
        layout: snap.layout().to_string(),
    })
}

/// Root attributes of the catalogue: provenance, frame transform, configuration.
pub fn catalog_meta(snapshot: &Path, cfg: &Config, frame: &GalaxyFrame) -> CatalogMeta {
    let attributes = vec![
        ("program".into(), AttrValue::Str(format!("upsample {}", crate::VERSION))),
        ("snapshot".into(), AttrValue::Str(snapshot.display().to_string())),
        ("seed".into(), AttrValue::Int(cfg.seed as i64)),
        ("method".into(), AttrValue::Str(format!("{:?}", cfg.method).to_lowercase())),
        ("star_fraction".into(), AttrValue::Float(cfg.stars.fraction)),
        ("configuration".into(), AttrValue::Str(cfg.to_toml())),
        ("frame_center_kpc".into(), AttrValue::FloatArray(frame.center.to_vec())),
        ("frame_bulk_velocity_kms".into(), AttrValue::FloatArray(frame.bulk_velocity.to_vec())),
        ("frame_rotation".into(), AttrValue::FloatArray(frame.rotation_flat())),
        (
            "frame_convention".into(),
            AttrValue::Str(
                "x_galaxy = R (x_snapshot - frame_center_kpc), v_galaxy = R (v_snapshot - frame_bulk_velocity_kms); \
                 frame_rotation is R row-major, its rows the galaxy x, y, z axes in snapshot physical coordinates"
                    .into(),
            ),
        ),
        (
            "imf".into(),
            AttrValue::Str(format!(
                "broken power law dN/dm ~ m^-alpha, alpha {:?} with breaks {:?} Msun, on [{}, {}] Msun; \
                 star counts Poisson with mean star_fraction * initial_mass / <m>",
                cfg.imf.slopes, cfg.imf.breaks, cfg.imf.m_min, cfg.imf.m_max
            )),
        ),
        (
            "lifetime_relation".into(),
            AttrValue::Str("stars with t_MS = 10 Gyr (m/Msun)^-2.5 shorter than the parent's age are removed".into()),
        ),
    ];
    CatalogMeta { attributes }
}

/// Draws the catalogue of prepared stars with the kernel method into `path`.
pub fn write_kernel_catalog(
    p: &Prepared,
    cfg: &Config,
    snapshot: &Path,
    path: &Path,
) -> Result<StarTotals> {
    let imf = Imf::new(&cfg.imf)?;
    let sizes = KernelSizes::fit(&p.stars.position, &p.stars.velocity, &cfg.kernel)
        .context("kernel method: cannot size the kernels")?;
    let mut writer = CatalogWriter::create(path, &catalog_meta(snapshot, cfg, &p.frame))?;
    let mut bar = Progress::new(p.stars.len() as u64, "particles");
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
        |done, written| bar.set(done as u64, &format!("{written} stars")),
    )?;
    bar.finish();
    writer.finish()?;
    Ok(totals)
}

/// Runs the job described by the command line.
pub fn run(args: &RunArgs) -> Result<()> {
    let snapshot = args
        .snapshot
        .as_ref()
        .context("--snapshot PATH is required (see `upsample --help`)")?;
    let cfg = Config::resolve(args)?;
    let shard = args.shard.as_deref().map(Shard::parse).transpose()?;
    if shard.is_some() && cfg.method != Method::Flow {
        anyhow::bail!(
            "--shard needs the flow method (the kernel method has no clusters to share out)"
        );
    }
    let mut seconds = Vec::new();
    let t = Instant::now();
    let p = prepare(snapshot, &cfg)?;
    seconds.push(("read_and_frame".to_string(), t.elapsed().as_secs_f64()));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output folder {}", args.out.display()))?;
    let info = RunInfo::new(snapshot, &p, &cfg);
    if cfg.method == Method::Flow {
        return crate::flowrun::run(&p, &info, &cfg, &args.out, shard, seconds);
    }
    let catalog = args.out.join("catalog.hdf5");
    let t = Instant::now();
    let stars = write_kernel_catalog(&p, &cfg, snapshot, &catalog)?;
    seconds.push(("stars".to_string(), t.elapsed().as_secs_f64()));
    let report = RunReport {
        info,
        stars,
        clusters: Vec::new(),
        seconds,
    };
    let path = args.out.join("report.json");
    write_json(&path, &report)?;
    print_summary(&report, &catalog, &path);
    Ok(())
}
