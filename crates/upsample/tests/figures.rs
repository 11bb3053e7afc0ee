//! Figures and the run page (issue 15): every figure is a valid PNG of its stated size with
//! non-blank content, the numbers printed in report.html are those of report.json, the page is
//! self-contained, and a run of the binary on the shipped sample produces it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rand::{RngExt, SeedableRng};
use upsample::fidelity::{evaluate, FidelityConfig, PhaseSpace, ShellConfig, TwoSampleConfig};
use upsample::figures::{write_figures, FigureOptions};
use upsample::models::{ClusterRecord, EpochNll, FlowMetrics, TrainingRecord};
use upsample::pipeline::{ClusterReport, RunInfo, RunReport, SurveyCounts};
use upsample::stars::StarTotals;

/// Decodes a PNG: (width, height, RGB(A) bytes, channels).
fn decode(path: &Path) -> (u32, u32, Vec<u8>, usize) {
    let bytes = std::fs::read(path).unwrap();
    let dec = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let ch = info.color_type.samples();
    (info.width, info.height, buf, ch)
}

/// Every figure file decodes, has the size the page states, and is not blank (many colours,
/// a good share of non-white pixels).
fn check_figures(dir: &Path, html: &str, figures: &[PathBuf]) {
    assert!(!figures.is_empty());
    for f in figures {
        let (w, h, px, ch) = decode(f);
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let stated = format!("width=\"{w}\" height=\"{h}\"");
        let at = html
            .find(&format!("(figures/{name})"))
            .unwrap_or_else(|| panic!("{name} is not on the page"));
        let img = html[..at].rfind("<img").unwrap();
        assert!(
            html[img..at].contains(&stated),
            "{name}: page states another size than {w}x{h}"
        );
        let pixels: Vec<&[u8]> = px.chunks(ch).collect();
        assert_eq!(pixels.len(), (w * h) as usize);
        let non_white = pixels.iter().filter(|p| p[..3] != [255, 255, 255]).count();
        let colours: std::collections::BTreeSet<&[u8]> = pixels.iter().copied().collect();
        assert!(
            non_white as f64 > 0.03 * pixels.len() as f64,
            "{name}: only {non_white} of {} pixels drawn",
            pixels.len()
        );
        assert!(colours.len() > 20, "{name}: {} colours", colours.len());
        assert!(f.starts_with(dir.join("figures")));
        assert!(
            std::fs::metadata(f).unwrap().len() < 600_000,
            "{name} too large"
        );
    }
}

/// Every `data-key="/json/pointer"` element's text equals the number at that pointer of
/// report.json (to the 4 significant digits printed); returns how many were checked.
fn check_numbers(html: &str, report: &serde_json::Value) -> usize {
    let mut checked = 0;
    let mut rest = html;
    while let Some(i) = rest.find("data-key=\"") {
        rest = &rest[i + 10..];
        let end = rest.find('"').unwrap();
        let key = rest[..end].replace("&quot;", "\"");
        let open = rest.find('>').unwrap();
        let close = rest[open..].find('<').unwrap() + open;
        let text = rest[open + 1..close].trim();
        let value = report
            .pointer(&key)
            .unwrap_or_else(|| panic!("{key} printed on the page is not in report.json"));
        match value.as_f64() {
            Some(v) if v.is_finite() => {
                let shown: f64 = text
                    .parse()
                    .unwrap_or_else(|_| panic!("{key}: `{text}` is not a number"));
                let tol = 5e-4 * v.abs().max(1e-300);
                assert!(
                    (shown - v).abs() <= tol,
                    "{key}: page {shown}, report.json {v}"
                );
            }
            _ => assert_eq!(text, "n/a", "{key}: {value}"),
        }
        checked += 1;
    }
    checked
}

fn self_contained(html: &str) {
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network"
    );
    assert!(!html.contains("<script"), "no script");
    let imgs = html.matches("<img").count();
    assert_eq!(imgs, html.matches("src=\"data:image/png;base64,").count());
}

fn gaussian(n: usize, seed: u64, sigma_x: f64, sigma_v: f64) -> (Vec<[f64; 3]>, Vec<[f64; 3]>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut g = || {
        // Box-Muller.
        let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    let x: Vec<[f64; 3]> = (0..n)
        .map(|_| [g() * sigma_x, g() * sigma_x, 0.3 * g() * sigma_x])
        .collect();
    let v: Vec<[f64; 3]> = (0..n)
        .map(|_| [g() * sigma_v, g() * sigma_v, g() * sigma_v])
        .collect();
    (x, v)
}

fn metrics(seed: f64, epochs: usize) -> FlowMetrics {
    FlowMetrics {
        held_out_nll: 2.0 + seed,
        held_out_nll_training_solver: 2.01 + seed,
        epochs_run: epochs,
        best_epoch: epochs - 1,
        kept_start: false,
        gain_z: Some(3.0),
        stopped_early: false,
        recoveries: 0,
        n_train: 900,
        n_val: 100,
        seconds: 1.25 + seed,
        history: (0..epochs)
            .map(|e| EpochNll {
                epoch: e,
                train_nll: seed + 2.0 + 3.0 / (1.0 + e as f64),
                val_nll: seed + 2.1 + 3.0 / (1.0 + e as f64),
            })
            .collect(),
    }
}

/// A hand-made flow run with fidelity reports, a catalogue, an accelerations file and a mock
/// survey: every kind of figure is drawn from the library's own records.
/// Held for the whole of each test here: a test that opens an HDF5 file in this process (with
/// its lock) while another spawns `upsample` hands the child its descriptor, lock included, and
/// its own next open of that file fails with errno 11 for as long as the child runs (5 in 15
/// runs of `chunked_catalogue_reads_equal_the_whole_file` on a loaded 2-core machine). The
/// child's `HDF5_USE_FILE_LOCKING=FALSE` ([`upsample`]) covers only the locks it takes itself.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The guard of [`ONE_AT_A_TIME`] (a test that failed holding it does not block the others).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn every_figure_and_the_numbers_of_a_hand_made_run() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Catalogue: 20 000 stars of two clusters.
    let (xs, vs) = gaussian(20_000, 1, 2.0, 50.0);
    let mut w =
        snapio::CatalogWriter::create(&d.join("catalog.hdf5"), &Default::default()).unwrap();
    let n = xs.len();
    w.append(&snapio::StarBatch {
        position: xs.clone(),
        velocity: vs.clone(),
        mass: vec![0.5; n],
        initial_mass: vec![0.6; n],
        age: vec![5.0; n],
        metallicity: vec![0.01; n],
        parent_id: (0..n as u64).collect(),
        cluster: xs.iter().map(|p| u32::from(p[0] > 0.0)).collect(),
        parent_child_id: Vec::new(),
        parent_generation: Vec::new(),
    })
    .unwrap();
    w.finish().unwrap();

    // Fidelity of stars against an independent "held-out" draw.
    let (xr, vr) = gaussian(3000, 2, 2.0, 50.0);
    let (xt, vt) = gaussian(3000, 3, 2.0, 50.0);
    let cfg = FidelityConfig {
        two_sample: TwoSampleConfig {
            max_per_sample: 3000,
            permutations: 20,
            ..Default::default()
        },
        shells: ShellConfig {
            r_min: 0.2,
            r_max: 10.0,
            n_shells: 8,
            bootstrap: 20,
            seed: 0,
        },
        ..Default::default()
    };
    let fid = evaluate(
        PhaseSpace::new(&xs[..3000], &vs[..3000]),
        PhaseSpace::new(&xr, &vr),
        PhaseSpace::new(&xt, &vt),
        &cfg,
    )
    .unwrap();
    let mut worse = fid.clone();
    worse.two_sample.z = fid.two_sample.z + 7.5;
    // Non-finite values (null in JSON) are read back and printed as n/a.
    worse.shells[0].share_ratio = f64::NAN;
    worse.smoothness.ks = f64::INFINITY;
    if let Some(k) = worse.reference.shells[1].kinematics.as_mut() {
        k.beta = f64::NAN;
    }

    let info = RunInfo {
        version: upsample::VERSION.into(),
        snapshot: d.join("missing_snapshot.hdf5"),
        files: Vec::new(),
        layout: "test".into(),
        star_particles_read: 1000,
        wind_particles_dropped: 3,
        invalid_particles_dropped: BTreeMap::new(),
        parent_identity: false,
        star_particles_selected: 1000,
        stellar_mass_msun: 1.234567e8,
        initial_stellar_mass_msun: 2.0e8,
        frame_center_kpc: [0.0; 3],
        frame_bulk_velocity_kms: [0.0; 3],
        frame_rotation: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        notes: Vec::new(),
        method: upsample::config::Method::Flow,
        star_fraction: 0.001,
        config: upsample::config::Config::default().to_toml(),
    };
    let cluster = |i: usize, f: Option<upsample::fidelity::Fidelity>| ClusterReport {
        record: ClusterRecord {
            index: i,
            label: format!("cell {i}"),
            members: 500,
            ghosts: 40 + i,
            weight_msun: 6e7,
            initial_mass_msun: 1e8,
            core_lo: Some([Some(if i == 0 { -8.0 } else { 0.0 }), None, None]),
            core_hi: Some([Some(if i == 0 { 0.0 } else { 8.0 }), None, None]),
        },
        training: TrainingRecord {
            index: i,
            position: vec![metrics(i as f64 * 0.1, 12)],
            velocity: vec![metrics(8.0 + i as f64 * 0.1, 12)],
            seconds: 3.5 + i as f64,
        },
        stars: StarTotals {
            stars_written: 10_000,
            stars_drawn: 12_345,
            ..Default::default()
        },
        sampling_seconds: 0.123456,
        fidelity: f,
    };
    // Survey of observer 0: l, b and observed photometry.
    let m = 50_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut col = |f: &mut dyn FnMut(&mut rand::rngs::StdRng) -> f64| -> Vec<f64> {
        (0..m).map(|_| f(&mut rng)).collect()
    };
    let l = col(&mut |r| r.random::<f64>() * 360.0);
    let b = col(&mut |r| (r.random::<f64>() - 0.5) * 30.0 * r.random::<f64>());
    let g = col(&mut |r| 12.0 + 8.0 * r.random::<f64>().sqrt());
    let bp = g
        .iter()
        .map(|g| g + 0.3 + 0.1 * (g - 12.0))
        .collect::<Vec<_>>();
    let rp = g.iter().map(|g| g - 0.5).collect::<Vec<_>>();
    let tc = |name: &str, v: Vec<f64>| {
        snapio::TableColumn::new(name, "deg or mag", "", snapio::TableValues::Float(v))
    };
    snapio::write_table(
        &d.join("survey_obs0.hdf5"),
        &[
            tc("l", l),
            tc("b", b),
            tc("obs_g", g),
            tc("obs_bp", bp),
            tc("obs_rp", rp),
        ],
        &[],
    )
    .unwrap();
    let report = RunReport {
        info,
        stars: StarTotals {
            stars_written: 20_000,
            stars_drawn: 24_690,
            initial_mass_written_msun: 12_000.0,
            ..Default::default()
        },
        clusters: vec![cluster(0, Some(fid.clone())), cluster(1, Some(worse))],
        seconds: vec![("read".into(), 0.5), ("train".into(), 12.25)],
        survey: vec![SurveyCounts {
            observer: 0,
            file: "survey_obs0.hdf5".into(),
            observer_position_kpc: [-8.122, 0.0, 0.0208],
            drawn: 20_000,
            alive: 19_000,
            selected: 50_000,
            remnants_written: 0,
        }],
        fidelity: Some(fid),
    };
    upsample::fsio::write_json(&d.join("report.json"), &report).unwrap();
    // Accelerations (CSV) of a point mass: a = -G M x / r^3.
    let mut csv =
        String::from("x,y,z,ax,ay,az,ax_err,ay_err,az_err,samples,condition,residual,flag\n");
    for i in 0..200 {
        let r = 0.1 * 1.03f64.powi(i);
        let (x, y, z) = (r * (i as f64).cos(), r * (i as f64).sin(), 0.1 * r);
        let rr = (x * x + y * y + z * z).sqrt();
        let k = -4.3e-6 * 1e9 / rr.powi(3);
        csv.push_str(&format!(
            "{x},{y},{z},{},{},{},0.1,0.1,0.1,128,{},{},0\n",
            k * x,
            k * y,
            k * z,
            10f64.powf(1.0 + (i % 17) as f64 / 5.0),
            10f64.powf(-3.0 + (i % 13) as f64 / 6.0)
        ));
    }
    std::fs::write(d.join("accel_grid.csv"), csv).unwrap();
    // The same as HDF5 (the datasets `upsample accel` writes), given on the command line.
    let v3 = |name: &str, v: Vec<[f64; 3]>| {
        snapio::TableColumn::new(
            name,
            "kpc or (km/s)^2/kpc",
            "",
            snapio::TableValues::Float3(v),
        )
    };
    let pos: Vec<[f64; 3]> = (1..=50).map(|i| [0.1 * i as f64, 0.0, 0.0]).collect();
    let acc: Vec<[f64; 3]> = pos
        .iter()
        .map(|p| [-430.0 / (p[0] * p[0]), 0.0, 0.0])
        .collect();
    let extra = d.join("elsewhere.h5");
    snapio::write_table(
        &extra,
        &[
            v3("position", pos),
            v3("acceleration", acc),
            tc("condition", (0..50).map(|i| 2.0 + i as f64).collect()),
            tc(
                "residual",
                (0..50).map(|i| 0.01 * (1 + i % 7) as f64).collect(),
            ),
        ],
        &[],
    )
    .unwrap();

    let w = write_figures(
        d,
        &FigureOptions {
            accel: vec![extra],
            chunk_rows: 7000, // several chunks
            ..Default::default()
        },
    )
    .unwrap();
    let names: Vec<String> = w
        .figures
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "maps_galaxy.png",
            "maps_centre.png",
            "profiles_run.png",
            "profiles_worst_cluster.png",
            "training_0.png",
            "accel_0.png",
            "accel_1.png",
            "cmd_obs0.png",
            "sky_obs0.png"
        ]
    );
    assert!(
        w.notes.iter().any(|n| n.contains("particle maps skipped")),
        "{:?}",
        w.notes
    );
    let html = std::fs::read_to_string(&w.html).unwrap();
    self_contained(&html);
    check_figures(d, &html, &w.figures);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap();
    let n = check_numbers(&html, &json);
    assert!(n > 60, "only {n} numbers checked");
    // Worst cluster (1: z larger by 7.5) listed first.
    let c1 = html.find("data-key=\"/clusters/1/index\"").unwrap();
    let c0 = html.find("data-key=\"/clusters/0/index\"").unwrap();
    assert!(c1 < c0, "worst cluster first");
    assert!(html.contains("data-key=\"/clusters/1/fidelity/shells/0/share_ratio\">n/a<"));
    // training.json's history survives a round trip.
    let back: TrainingRecord =
        serde_json::from_value(json["clusters"][0]["training"].clone()).unwrap();
    assert_eq!(back.position[0].history.len(), 12);
    // An old training.json without history still reads.
    let old = r#"{"index":0,"position":[{"held_out_nll":1.0,"held_out_nll_training_solver":1.0,"epochs_run":1,"best_epoch":0,"stopped_early":false,"recoveries":0,"n_train":1,"n_val":1,"seconds":1.0}],"velocity":[],"seconds":1.0}"#;
    let old: TrainingRecord = serde_json::from_str(old).unwrap();
    assert!(old.position[0].history.is_empty());
}

/// The chunked catalogue reader gives the same rows as reading the file whole.
#[test]
fn chunked_catalogue_reads_equal_the_whole_file() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.hdf5");
    let (xs, vs) = gaussian(1000, 5, 1.0, 10.0);
    let mut w = snapio::CatalogWriter::create(&path, &Default::default()).unwrap();
    w.append(&snapio::StarBatch {
        position: xs.clone(),
        velocity: vs,
        mass: (0..1000).map(|i| i as f64).collect(),
        initial_mass: vec![1.0; 1000],
        age: vec![1.0; 1000],
        metallicity: vec![0.0; 1000],
        parent_id: (0..1000).collect(),
        cluster: (0..1000).map(|i| i % 7).collect(),
        parent_child_id: Vec::new(),
        parent_generation: Vec::new(),
    })
    .unwrap();
    w.finish().unwrap();
    let whole = snapio::read_catalog(&path).unwrap();
    let c = snapio::CatalogChunks::open(&path).unwrap();
    assert_eq!(c.rows("position").unwrap(), 1000);
    let (mut p, mut m, mut k) = (Vec::new(), Vec::new(), Vec::new());
    for s in (0..1000).step_by(333) {
        let e = (s + 333).min(1000);
        p.extend(c.read_vec3("position", s, e).unwrap());
        m.extend(c.read_f64("mass", s, e).unwrap());
        k.extend(c.read_u32("cluster", s, e).unwrap());
    }
    assert_eq!(p, whole.position);
    assert_eq!(m, whole.mass);
    assert_eq!(k, whole.cluster);
    let err = format!("{}", c.read_f64("nope", 0, 1).unwrap_err());
    assert!(err.contains("nope") && err.contains("c.hdf5"), "{err}");
}

/// The `upsample` binary with HDF5 file locks off: a child spawned by another test thread while
/// this one has an HDF5 file open inherits its lock, and the next reader fails with errno 11
/// (tests/common/mod.rs, NO_HDF5_LOCKS, says more).
fn upsample() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_upsample"));
    cmd.env("HDF5_USE_FILE_LOCKING", "FALSE");
    cmd
}

/// The binary on the shipped sample (kernel method, seconds) writes the page and its figures,
/// particles beside stars; `upsample figures DIR` writes them again; `--no-figures` writes none.
#[test]
fn a_run_on_the_sample_produces_the_page() {
    let _serial = one_at_a_time();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let st = upsample()
        .args(["--snapshot"])
        .arg(root.join("data/snap_099.hdf5"))
        .args(["--config"])
        .arg(root.join("pipelines/quick.toml"))
        .args(["--method", "kernel", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    self_contained(&html);
    let figs: Vec<PathBuf> = ["maps_galaxy.png", "maps_centre.png"]
        .iter()
        .map(|n| out.join("figures").join(n))
        .collect();
    check_figures(&out, &html, &figs);
    assert!(html.contains("particles, face-on") || html.contains("Surface density"));
    assert!(
        !html.contains("particle maps skipped"),
        "the sample's particles are drawn"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(check_numbers(&html, &json) >= 10);
    // Again by hand, after deleting them.
    std::fs::remove_dir_all(out.join("figures")).unwrap();
    let st = upsample().arg("figures").arg(&out).output().unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(out.join("figures/maps_galaxy.png").exists());
    // --no-figures: the run's outputs, no figures.
    let quiet = dir.path().join("quiet");
    let st = upsample()
        .args(["--snapshot"])
        .arg(root.join("data/snap_099.hdf5"))
        .args([
            "--method",
            "kernel",
            "--star-fraction",
            "0.0002",
            "--no-figures",
            "--out",
        ])
        .arg(&quiet)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(quiet.join("report.json").exists());
    assert!(!quiet.join("report.html").exists() && !quiet.join("figures").exists());
    // A folder without report.json: an error naming it.
    let st = upsample().arg("figures").arg(dir.path()).output().unwrap();
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("report.json"));
}
