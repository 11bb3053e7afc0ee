//! End-to-end tests of the flow method on the shipped sample (`data/snap_099.hdf5`, a rotating
//! Plummer sphere whose analytic truth is known): accuracy against the truth and against the
//! kernel baseline, seamless cells, resume and shards.
//!
//! The backend follows CNF_TEST_DEVICE (flex by default), so CI runs these on both CPU backends.

mod common;

use common::{ks_distance, nn_two_sample, read_report, text, upsample, Plummer};
use snapio::read_catalog;
use std::path::Path;
use upsample::models::ModelSet;

fn device() -> String {
    std::env::var("CNF_TEST_DEVICE").unwrap_or_else(|_| "flex".into())
}

/// The sample's analytic Plummer sphere (data/snap_099.truth.json).
fn sample_truth() -> upsample::dynamics::Plummer {
    upsample::dynamics::Plummer::from_truth_json(&common::root().join("data/snap_099.truth.json"))
        .unwrap()
}

/// Runs the main job, asserting success; returns the run folder.
fn run(out: &Path, extra: &[&str]) -> std::process::Output {
    let dev = device();
    let mut args = vec![
        "--snapshot",
        "data/snap_099.hdf5",
        "--out",
        out.to_str().unwrap(),
        "--device",
        dev.as_str(),
    ];
    args.extend_from_slice(extra);
    upsample(&args)
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "run failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A small, fast configuration for the bookkeeping tests (not for accuracy).
const TINY: &str = r#"
seed = 3
method = "flow"
[clusters]
method = "cells"
n = 3
margin = 0.3
[flow]
width = 8
depth = 1
rk4_steps = 2
rtol = 1e-3
atol = 1e-3
[training]
epochs = 1
batch_size = 1024
max_particles = 4000
min_steps = 0
[stars]
fraction = 0.00002
"#;

#[test]
fn resumed_and_sharded_runs_give_the_same_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let c = cfg.to_str().unwrap();

    // One uninterrupted run.
    let whole = dir.path().join("whole");
    ok(&run(&whole, &["--config", c]));
    let reference = read_catalog(whole.join("catalog.hdf5")).unwrap();
    assert!(reference.len() > 1000, "{} stars", reference.len());
    let report = read_report(&whole);
    assert_eq!(report["clusters"].as_array().unwrap().len(), 3);
    for cl in report["clusters"].as_array().unwrap() {
        assert!(cl["training"]["position"][0]["held_out_nll"]
            .as_f64()
            .unwrap()
            .is_finite());
        assert!(cl["training"]["velocity"][0]["held_out_nll"]
            .as_f64()
            .unwrap()
            .is_finite());
        assert!(cl["stars"]["stars_written"].as_u64().unwrap() > 0);
        // Fidelity against the cluster's held-out particles (10% by default).
        let n = cl["fidelity"]["two_sample"]["n_reference"]
            .as_u64()
            .unwrap();
        let members = cl["members"].as_u64().unwrap() as f64;
        assert!(
            (n as f64 - 0.1 * members).abs() < 5.0 * (0.09 * members).sqrt(),
            "{n} of {members}"
        );
        assert!(cl["fidelity"]["smoothness"]["ratio"]
            .as_f64()
            .unwrap()
            .is_finite());
    }
    assert!(report["fidelity"]["two_sample"]["z"]
        .as_f64()
        .unwrap()
        .is_finite());

    // Shards into one folder, then merge.
    let sharded = dir.path().join("sharded");
    for s in ["1/2", "0/2"] {
        let out = run(&sharded, &["--config", c, "--shard", s]);
        ok(&out);
        assert!(!sharded.join("catalog.hdf5").exists() || s == "0/2");
    }
    let early = upsample(&["merge", sharded.to_str().unwrap()]);
    ok(&early);
    assert_eq!(
        read_catalog(sharded.join("catalog.hdf5")).unwrap(),
        reference
    );
    // The fidelity report pooled at merge is the same as the single process's.
    let merged = read_report(&sharded);
    assert_eq!(merged["fidelity"], report["fidelity"]);
    for (a, b) in merged["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .zip(report["clusters"].as_array().unwrap())
    {
        assert_eq!(a["fidelity"], b["fidelity"]);
    }

    // A merge before every shard has finished names what is missing.
    let partial = dir.path().join("partial");
    ok(&run(&partial, &["--config", c, "--shard", "0/3"]));
    let out = upsample(&["merge", partial.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("clusters 1, 2"), "{err}");
    assert!(!partial.join("catalog.hdf5").exists());

    // Resume after a kill: the shard did cluster 0; cluster 1 was trained but killed while
    // drawing stars (its completion record is missing); a plain run finishes the job.
    ok(&run(&partial, &["--config", c, "--shard", "1/3"]));
    std::fs::remove_file(partial.join("parts/cluster_0001.json")).unwrap();
    ok(&run(&partial, &["--config", c]));
    assert_eq!(
        read_catalog(partial.join("catalog.hdf5")).unwrap(),
        reference
    );

    // Resuming with other arguments is refused, naming run.json.
    let out = run(&partial, &["--config", c, "--seed", "4"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("run.json"),
        "{}",
        text(&out.stderr)
    );
}

/// Figures of a flow catalogue against the analytic truth.
struct Figures {
    stars: usize,
    ks: f64,
    nll_gap: f64,
    nn_flow: f64,
    nn_kernel: f64,
    seams: Vec<(String, f64, f64)>,
}

/// Measures the run in `flow_dir` (and the kernel catalogue in `kernel_dir`) against the truth.
fn evaluate(flow_dir: &Path, kernel_dir: &Path) -> Figures {
    let p = Plummer::from_truth();
    let cat = read_catalog(flow_dir.join("catalog.hdf5")).unwrap();
    let radii: Vec<f64> = cat
        .position
        .iter()
        .map(|x| (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt())
        .collect();
    let ks = ks_distance(radii.clone(), |r| p.radius_cdf(r));
    if std::env::var("FLOW_EVAL").is_ok() {
        let mut sorted = radii.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.97, 0.99] {
            let r = sorted[(q * sorted.len() as f64) as usize];
            eprintln!(
                "  quantile {q}: r = {r:.4} kpc, truth CDF there {:.4}",
                p.radius_cdf(r)
            );
        }
    }

    // Galaxy position density of the models (mass density / total mass) against the truth at
    // fresh draws: the cross-entropy gap in nats per star.
    let (tx, tv) = p.draw(200_000, 77);
    let dev = cnf::parse_device(&device()).unwrap();
    let models = ModelSet::load(flow_dir, &dev).unwrap();
    let report = read_report(flow_dir);
    let total = report["stellar_mass_msun"].as_f64().unwrap();
    let probe = &tx[..4000];
    let model_ll = upsample::dynamics::PhaseSpaceDensity::log_density(&models, probe).unwrap();
    let nll_model = -model_ll.iter().map(|l| l - total.ln()).sum::<f64>() / probe.len() as f64;
    let nll_true =
        -probe.iter().map(|x| p.log_position_density(x)).sum::<f64>() / probe.len() as f64;

    // 6D nearest-neighbour two-sample statistic against an independent truth draw, for the
    // flow and the kernel catalogues (same truth points, same sizes).
    // Whole catalogues (up to 200k stars each) against as many truth points: the kernel
    // method's stars cluster around their ~70k parents, which a full-size test sees; at 20k
    // points the clustering is diluted (docs/ACCURACY.md reports both).
    let n: usize = std::env::var("NN_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
        .min(cat.len())
        .min(tx.len());
    let kernel = read_catalog(kernel_dir.join("catalog.hdf5")).unwrap();
    let nn_flow = nn_two_sample((&cat.position, &cat.velocity), (&tx, &tv), n, 10);
    let nn_kernel = nn_two_sample((&kernel.position, &kernel.velocity), (&tx, &tv), n, 10);
    if std::env::var("FLOW_EVAL").is_ok() {
        // Positions alone (each position doubled into 6D): which half of phase space differs.
        eprintln!(
            "  positions only: NN flow {:.4} kernel {:.4}",
            nn_two_sample((&cat.position, &cat.position), (&tx, &tx), n, 10),
            nn_two_sample((&kernel.position, &kernel.position), (&tx, &tx), n, 10)
        );
        eprintln!(
            "  velocities only: NN flow {:.4} kernel {:.4}",
            nn_two_sample((&cat.velocity, &cat.velocity), (&tv, &tv), n, 10),
            nn_two_sample((&kernel.velocity, &kernel.velocity), (&tv, &tv), n, 10)
        );
    }

    // Seams: on each side of every internal cell face, the ratio of the stars' share to the
    // truth's share in the slab touching the face, divided by the same ratio in the next three
    // slabs (each of width w): 1 when the star density has no seam at the face.
    let w = 0.05;
    let share = |pts: &[[f64; 3]], f: &dyn Fn(&[f64; 3]) -> bool| {
        pts.iter().filter(|x| f(x)).count() as f64
    };
    let mut seams = Vec::new();
    for c in &models.clusters {
        let Some(b) = c.core else { continue };
        for d in 0..3 {
            for (face, inward) in [(b.lo[d], 1.0), (b.hi[d], -1.0)] {
                if !face.is_finite() {
                    continue;
                }
                let across =
                    |x: &[f64; 3]| (0..3).all(|e| e == d || (x[e] >= b.lo[e] && x[e] < b.hi[e]));
                for (side, s) in [("inside", inward), ("outside", -inward)] {
                    let slab = |lo: f64, hi: f64| {
                        move |x: &[f64; 3]| {
                            let t = (x[d] - face) * s;
                            across(x) && t >= lo && t < hi
                        }
                    };
                    let (nf, tf) = (
                        share(&cat.position, &slab(0.0, w)),
                        share(&tx, &slab(0.0, w)),
                    );
                    let (nb, tb) = (
                        share(&cat.position, &slab(w, 4.0 * w)),
                        share(&tx, &slab(w, 4.0 * w)),
                    );
                    let ratio = (nf / tf) / (nb / tb);
                    let sigma = ratio * (1.0 / nf + 1.0 / tf + 1.0 / nb + 1.0 / tb).sqrt();
                    seams.push((
                        format!("{} face x{d}={face:.3} {side}", c.label),
                        ratio,
                        sigma,
                    ));
                }
            }
        }
    }
    Figures {
        stars: cat.len(),
        ks,
        nll_gap: nll_model - nll_true,
        nn_flow,
        nn_kernel,
        seams,
    }
}

#[test]
fn flow_catalogue_matches_the_analytic_system() {
    let dir = tempfile::tempdir().unwrap();
    let flow_dir = dir.path().join("flow");
    let t0 = std::time::Instant::now();
    ok(&run(
        &flow_dir,
        &["--config", "pipelines/quick.toml", "--method", "flow"],
    ));
    let secs = t0.elapsed().as_secs_f64();
    let kernel_dir = dir.path().join("kernel");
    ok(&run(
        &kernel_dir,
        &["--config", "pipelines/quick.toml", "--method", "kernel"],
    ));
    let f = evaluate(&flow_dir, &kernel_dir);
    eprintln!(
        "flow method on {}: {} stars in {secs:.0} s; radial KS {:.4}; position NLL gap {:.4} nats; \
         6D NN two-sample statistic flow {:.4} vs kernel {:.4} (0.5 = indistinguishable)",
        device(),
        f.stars,
        f.ks,
        f.nll_gap,
        f.nn_flow,
        f.nn_kernel
    );
    for (name, ratio, sigma) in &f.seams {
        eprintln!(
            "  seam {name}: star/truth density at the face over the same just behind it {ratio:.3} ± {sigma:.3}"
        );
    }
    assert!(f.stars >= 150_000, "{} stars", f.stars);
    // Initial mass drawn = fraction x particles' initial mass, within compound-Poisson noise
    // sigma = sqrt(lambda <m^2>), from the catalogue's own masses.
    let report = read_report(&flow_dir);
    let cat = read_catalog(flow_dir.join("catalog.hdf5")).unwrap();
    let fraction = report["star_fraction"].as_f64().unwrap();
    let drawn = report["stars"]["initial_mass_drawn_msun"].as_f64().unwrap();
    let target = fraction * report["initial_stellar_mass_msun"].as_f64().unwrap();
    let n = cat.len() as f64;
    let m1 = cat.initial_mass.iter().sum::<f64>() / n;
    let m2 = cat.initial_mass.iter().map(|m| m * m).sum::<f64>() / n;
    let sigma = (target / m1 * m2).sqrt();
    assert!(
        (drawn - target).abs() < 4.0 * sigma,
        "initial mass drawn {drawn} vs {target} +- {sigma}"
    );
    for i in 0..cat.len() {
        assert!(
            10.0 * cat.initial_mass[i].powf(-2.5) >= cat.age[i],
            "a dead star"
        );
    }
    assert!(f.ks <= 0.006, "radial KS {}", f.ks);
    assert!(f.nll_gap.abs() <= 0.1, "NLL gap {}", f.nll_gap);
    assert!(
        f.nn_flow <= f.nn_kernel,
        "flow {} further from the truth than the kernel {}",
        f.nn_flow,
        f.nn_kernel
    );
    for (name, ratio, sigma) in &f.seams {
        assert!(
            (ratio - 1.0).abs() < 0.05 + 4.0 * sigma,
            "seam at {name}: ratio {ratio} ± {sigma}"
        );
    }
    // The run's own fidelity report (stars against the 10% of particles no flow saw) agrees:
    // smooth, and within a few null spreads of the held-out particles in 6D.
    let fid = &report["fidelity"];
    let (z, ratio) = (
        fid["two_sample"]["z"].as_f64().unwrap(),
        fid["smoothness"]["ratio"].as_f64().unwrap(),
    );
    eprintln!("fidelity report: two-sample z {z:.2}, smoothness ratio {ratio:.3}");
    assert!((0.95..=1.05).contains(&ratio), "smoothness ratio {ratio}");
    assert!(z < 4.0, "two-sample z {z}");

    // Accelerations from the same flows (the EOM solver's defaults: log form, TLS, K = 128)
    // against the analytic Plummer acceleration at 200 points between 0.5 b and 5 b. Four
    // cells learn ∇ log f less well than one (13-15 %, docs/EOM.md); this guards that figure
    // and the radial sign. The 10 % bar is tested on whole-galaxy flows below.
    let dev = cnf::parse_device(&device()).unwrap();
    let models = ModelSet::load(&flow_dir, &dev).unwrap();
    let truth = sample_truth();
    let b = truth.scale_kpc;
    let opts = upsample::dynamics::EomOptions::default();
    let check = upsample::dynamics::truth::check_against_plummer(
        &models,
        &truth,
        0.5 * b,
        5.0 * b,
        200,
        &opts,
    )
    .unwrap();
    eprintln!("accelerations from the flows: {check:?}");
    assert!(check.solved >= 190, "{check:?}");
    assert!(check.median_relative_error <= 0.2, "{check:?}");
    assert!(check.radial_sign_right >= 0.99, "{check:?}");
}

/// Development aid: evaluates existing run folders given by FLOW_EVAL=flow_dir,kernel_dir.
#[test]
#[ignore]
fn evaluate_existing_runs() {
    let spec = std::env::var("FLOW_EVAL").expect("FLOW_EVAL=flow_dir,kernel_dir");
    let (a, b) = spec.split_once(',').unwrap();
    let f = evaluate(Path::new(a), Path::new(b));
    eprintln!(
        "{} stars; radial KS {:.4}; NLL gap {:.4}; NN flow {:.4} kernel {:.4}",
        f.stars, f.ks, f.nll_gap, f.nn_flow, f.nn_kernel
    );
    for (name, ratio, sigma) in &f.seams {
        eprintln!("  seam {name}: {ratio:.3} ± {sigma:.3}");
    }
}

#[test]
fn fof_populations_share_out_the_particles() {
    // Friends-of-friends on the sample: the dense body links into one group, the sparse
    // outskirts fall below min_size and are pooled; every particle belongs to one population.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("fof.toml");
    let text_cfg = TINY.replace(
        "method = \"cells\"",
        "method = \"fof\"\nlinking_length = 0.03\nmin_size = 500",
    );
    std::fs::write(&cfg, text_cfg).unwrap();
    let out_dir = dir.path().join("fof");
    ok(&run(&out_dir, &["--config", cfg.to_str().unwrap()]));
    let report = read_report(&out_dir);
    let clusters = report["clusters"].as_array().unwrap();
    assert!(clusters.len() >= 2, "{} populations", clusters.len());
    assert!(clusters.last().unwrap()["label"]
        .as_str()
        .unwrap()
        .contains("pooled"));
    let members: u64 = clusters
        .iter()
        .map(|c| c["members"].as_u64().unwrap())
        .sum();
    assert_eq!(members, 70_000);
    for c in clusters {
        assert_eq!(c["ghosts"].as_u64().unwrap(), 0);
        assert!(c["core_lo"].is_null());
    }
    let cat = read_catalog(out_dir.join("catalog.hdf5")).unwrap();
    let written: u64 = clusters
        .iter()
        .map(|c| c["stars"]["stars_written"].as_u64().unwrap())
        .sum();
    assert_eq!(cat.len() as u64, written);
    // Stars carry the index of their population.
    let max_cluster = *cat.cluster.iter().max().unwrap() as usize;
    assert!(max_cluster < clusters.len());
}

#[test]
fn field_populations_follow_a_side_file() {
    // A side file labels each particle by ID (here: the octant of its galaxy-frame position,
    // unknown to the pipeline), with one label too small to stand alone.
    let dir = tempfile::tempdir().unwrap();
    let snap = snapio::Snapshot::open(common::root().join("data/snap_099.hdf5")).unwrap();
    let (stars, _) = snap.read_stars(&Default::default()).unwrap();
    let labels: Vec<i64> = stars
        .id
        .iter()
        .map(|&id| if id % 1000 == 7 { 99 } else { (id % 3) as i64 })
        .collect();
    let side = dir.path().join("groups.hdf5");
    snapio::write_side_field_i64(&side, "Group", &stars.id, &labels).unwrap();
    let cfg = dir.path().join("field.toml");
    let text_cfg = TINY.replace(
        "method = \"cells\"",
        &format!(
            "method = \"field:Group\"\nfield_file = {:?}\nmin_size = 200",
            side
        ),
    );
    std::fs::write(&cfg, text_cfg).unwrap();
    let out_dir = dir.path().join("field");
    ok(&run(&out_dir, &["--config", cfg.to_str().unwrap()]));
    let report = read_report(&out_dir);
    let clusters = report["clusters"].as_array().unwrap();
    let sizes: Vec<u64> = clusters
        .iter()
        .map(|c| c["members"].as_u64().unwrap())
        .collect();
    let expect = |g: i64| labels.iter().filter(|&&l| l == g).count() as u64;
    assert_eq!(sizes, vec![expect(0), expect(1), expect(2), expect(99)]);
    assert!(clusters[3]["label"].as_str().unwrap().contains("pooled"));
    // A missing field names the file and the dataset.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        TINY.replace("method = \"cells\"", "method = \"field:Nope\""),
    )
    .unwrap();
    let out = run(
        &dir.path().join("bad"),
        &["--config", bad.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("Nope") && err.contains("snap_099"), "{err}");
}

/// The acceptance test of the acceleration solver on trained flows: the dynamics preset (one
/// cluster for the whole sample) and the solver's defaults with K = 512, against the analytic
/// Plummer acceleration at 200 points between 0.5 and 5 scale radii. The issue's bar: median
/// relative error of the vector <= 10 %, radial component pointing inwards everywhere.
#[test]
fn accelerations_from_whole_galaxy_flows_match_the_analytic_system() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let t0 = std::time::Instant::now();
    ok(&run(&out, &["--config", "pipelines/dynamics.toml"]));
    let secs = t0.elapsed().as_secs_f64();
    let dev = cnf::parse_device(&device()).unwrap();
    let models = ModelSet::load(&out, &dev).unwrap();
    let truth = sample_truth();
    let b = truth.scale_kpc;
    let check = |fit| {
        let opts = upsample::dynamics::EomOptions {
            k: 512,
            fit,
            ..upsample::dynamics::EomOptions::default()
        };
        upsample::dynamics::truth::check_against_plummer(
            &models,
            &truth,
            0.5 * b,
            5.0 * b,
            200,
            &opts,
        )
        .unwrap()
    };
    let tls = check(upsample::dynamics::Fit::Tls);
    let ols = check(upsample::dynamics::Fit::Ols);
    eprintln!(
        "dynamics preset on {} (trained in {secs:.0} s): TLS {tls:?}; OLS {ols:?}",
        device()
    );
    assert!(tls.solved >= 195, "{tls:?}");
    assert!(tls.median_relative_error <= 0.10, "{tls:?}");
    assert_eq!(tls.radial_sign_right, 1.0, "{tls:?}");
}

/// Development aid (docs/EOM.md, "how the error came down"): writes, for the 200 acceptance
/// points and K velocities drawn from a run's flows, x, v, the flows' log f and gradients and
/// the truth's (`FLOW_DUMP=models_dir,out.csv,K`), so that the solve can be redone offline with
/// parts of the model swapped for the truth. Columns: point index, x (kpc), v (km/s), then
/// log f, ∂/∂x, ∂/∂v for the flows (`f*`) and for the truth (`t*`, NaN where v is unbound).
#[test]
#[ignore]
fn dump_acceleration_terms() {
    use std::io::Write;
    use upsample::dynamics::PhaseSpaceDensity;
    let spec = std::env::var("FLOW_DUMP").expect("FLOW_DUMP=models_dir,out.csv,K");
    let parts: Vec<&str> = spec.split(',').collect();
    assert_eq!(parts.len(), 3, "FLOW_DUMP=models_dir,out.csv,K");
    let k: usize = parts[2].parse().expect("K is a count");
    let dev = cnf::parse_device(&device()).unwrap();
    let models = ModelSet::load(Path::new(parts[0]), &dev).unwrap();
    // The sample's DF with a step in L_z too sharp to matter away from L_z = 0.
    let truth = sample_truth().rotating(0.6, 1e-9);
    let b = truth.scale_kpc;
    let x = upsample::dynamics::truth::shell_points(0.5 * b, 5.0 * b, 200);
    let seeds: Vec<u64> = (0..x.len())
        .map(|i| upsample::seed::point_seed(1, i))
        .collect();
    let v = models.sample_velocities(&x, k, &seeds).unwrap();
    let flows = models.grad_log_f(&x, &v).unwrap();
    let exact = truth.grad_log_f(&x, &v).unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(parts[1]).unwrap());
    writeln!(
        out,
        "i,x,y,z,vx,vy,vz,lf,fx,fy,fz,fvx,fvy,fvz,tlf,tx,ty,tz,tvx,tvy,tvz"
    )
    .unwrap();
    for (n, vn) in v.iter().enumerate() {
        let mut row = vec![(n / k) as f64];
        row.extend(x[n / k]);
        row.extend(vn);
        for g in [&flows[n], &exact[n]] {
            row.push(g.log_f);
            row.extend(g.d_dx);
            row.extend(g.d_dv);
        }
        let text: Vec<String> = row.iter().map(|c| c.to_string()).collect();
        writeln!(out, "{}", text.join(",")).unwrap();
    }
}

/// Development aid (docs/ACCURACY.md, eighteenth session): per-point acceleration errors of a
/// run's flows against the sample's Plummer sphere (`FLOW_ACCEL=models_dir[,r_min/b,r_max/b]`;
/// by default the acceptance test's 200 points from 0.5 b to 5 b), then, against Plummer's,
/// the first member's ∂ ln ν/∂ ln r and its velocity model's σ_r, ∂ ln σ_r/∂ ln r and
/// ∂ ln σ_t/∂ ln r on shells (64 directions; the same base draws at every radius, so the
/// slopes are smooth).
#[test]
#[ignore]
fn acceleration_errors_by_point() {
    let spec = std::env::var("FLOW_ACCEL").expect("FLOW_ACCEL=models_dir[,r_min/b,r_max/b]");
    let parts: Vec<&str> = spec.split(',').collect();
    let dir = parts[0];
    let (lo, hi) = if parts.len() == 3 {
        (parts[1].parse().unwrap(), parts[2].parse().unwrap())
    } else {
        (0.5, 5.0)
    };
    let dev = cnf::parse_device(&device()).unwrap();
    let models = ModelSet::load(Path::new(dir), &dev).unwrap();
    let truth = sample_truth();
    let b = truth.scale_kpc;
    let x = upsample::dynamics::truth::shell_points(lo * b, hi * b, 200);
    let opts = upsample::dynamics::EomOptions {
        k: 512,
        ..upsample::dynamics::EomOptions::default()
    };
    let acc = upsample::dynamics::accelerations(&models, &x, &opts, &mut |_, _| {}).unwrap();
    for (i, (p, a)) in x.iter().zip(&acc).enumerate() {
        let t = truth.acceleration(p);
        let r = p.iter().map(|c| c * c).sum::<f64>().sqrt();
        let tn = t.iter().map(|c| c * c).sum::<f64>().sqrt();
        let d = (0..3).map(|j| (a.a[j] - t[j]).powi(2)).sum::<f64>().sqrt();
        let ar: f64 = (0..3).map(|j| a.a[j] * p[j] / r).sum();
        let tr: f64 = (0..3).map(|j| t[j] * p[j] / r).sum();
        let perp = (0..3)
            .map(|j| (a.a[j] - ar * p[j] / r).powi(2))
            .sum::<f64>()
            .sqrt();
        println!(
            "{i} r/b {:.3} z/r {:+.2} err {:.3} ar/tr {:.3} perp {:.3} cond {:.1} res {:.3} n {} {:?}",
            r / b,
            p[2] / r,
            d / tn,
            ar / tr,
            perp / tn,
            a.condition,
            a.residual,
            a.samples,
            a.status
        );
    }
    // The position density's logarithmic slope, averaged over directions, against Plummer's.
    let m = &models.clusters[0].members[0];
    let dirs = upsample::dynamics::truth::shell_points(1.0, 1.0, 64);
    let ln_nu = |r: f64| {
        let x: Vec<[f64; 3]> = dirs.iter().map(|d| d.map(|c| c * r)).collect();
        let l = m.position_log_prob(&x).unwrap();
        l.iter().sum::<f64>() / l.len() as f64
    };
    let mut r = 0.2 * b;
    while r < 2.0 * b {
        let h = 0.02;
        let s = (ln_nu(r * (1.0 + h)) - ln_nu(r * (1.0 - h))) / (2.0 * h);
        println!(
            "r/b {:.3} dln nu/dln r flows {s:+.3} truth {:+.3}",
            r / b,
            -5.0 * r * r / (r * r + b * b)
        );
        r *= 1.05;
    }
    // The velocity model's σ_r and σ_t on shells (common base draws at every radius).
    let k = 256;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(12345);
    let z: Vec<[f64; 3]> = (0..dirs.len() * k)
        .map(|_| std::array::from_fn(|_| StandardNormal.sample(&mut rng)))
        .collect();
    let sig = |r: f64| {
        let x: Vec<[f64; 3]> = dirs.iter().map(|d| d.map(|c| c * r)).collect();
        let v = m.velocities_from_base(&z, &x, k).unwrap();
        let (mut s_r, mut s_t) = (0.0, 0.0);
        for (n, vn) in v.iter().enumerate() {
            let d = dirs[n / k];
            let vr: f64 = (0..3).map(|j| vn[j] * d[j]).sum();
            let v2: f64 = vn.iter().map(|c| c * c).sum();
            s_r += vr * vr;
            s_t += v2 - vr * vr;
        }
        let n = v.len() as f64;
        ((s_r / n).sqrt(), (s_t / n / 2.0).sqrt())
    };
    let g = 4.30091727e-06 * 1e8;
    let mut r = 0.3 * b;
    while r < 2.0 * b {
        let h = 0.03;
        let (p, q) = (sig(r * (1.0 + h)), sig(r * (1.0 - h)));
        let (s0, _) = sig(r);
        println!(
            "r/b {:.3} sigma_r {s0:.2} truth {:.2} dln sigma_r/dln r {:+.3} truth {:+.3} dln sigma_t {:+.3}",
            r / b,
            (g / 6.0 / (r * r + b * b).sqrt()).sqrt(),
            (p.0.ln() - q.0.ln()) / (2.0 * h),
            -0.5 * r * r / (r * r + b * b),
            (p.1.ln() - q.1.ln()) / (2.0 * h),
        );
        r *= 1.05;
    }
}
