//! Tests of the decompositions.

use super::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// Gaussian blob (σ = 2 kpc) with a tenth of the points far out (uniform in ±50 kpc).
fn galaxy(n: usize, seed: u64) -> Vec<[f64; 3]> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            if i % 10 == 0 {
                [0, 1, 2].map(|_| rng.random_range(-50.0..50.0))
            } else {
                [0, 1, 2].map(|_| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    2.0 * z
                })
            }
        })
        .collect()
}

fn brute_distance2(b: &CellBox, x: &[f64; 3]) -> f64 {
    let mut s = 0.0;
    for (d, &xd) in x.iter().enumerate() {
        let g = if xd < b.lo[d] {
            b.lo[d] - xd
        } else if xd > b.hi[d] {
            xd - b.hi[d]
        } else {
            0.0
        };
        s += g * g;
    }
    s
}

#[test]
fn cluster_method_parses_prints_and_serialises() {
    for (s, m) in [
        ("cells", ClusterMethod::Cells),
        ("fof", ClusterMethod::Fof),
        ("field:SubhaloID", ClusterMethod::Field("SubhaloID".into())),
    ] {
        assert_eq!(s.parse::<ClusterMethod>().unwrap(), m);
        assert_eq!(m.to_string(), s);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<ClusterMethod>(&json).unwrap(), m);
    }
    assert_eq!(ClusterMethod::default(), ClusterMethod::Cells);
    for bad in ["kd", "Cells", "field:", "field: ", ""] {
        let e = bad.parse::<ClusterMethod>().unwrap_err().to_string();
        assert!(e.contains("`cells`, `fof` or `field:NAME`"), "{bad}: {e}");
    }
    let e = serde_json::from_str::<ClusterMethod>("\"voronoi\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("voronoi") && e.contains("field:NAME"), "{e}");
}

#[test]
fn cell_box_contains_and_distance() {
    let b = CellBox {
        lo: [0.0, f64::NEG_INFINITY, -1.0],
        hi: [1.0, 2.0, f64::INFINITY],
    };
    assert!(b.contains(&[0.0, -1e300, 5.0]));
    assert!(!b.contains(&[1.0, 0.0, 0.0]), "upper face is outside");
    assert!(!b.contains(&[0.5, 2.0, 0.0]));
    assert_eq!(b.distance(&[0.5, 0.0, 0.0]), 0.0);
    assert_eq!(b.distance(&[1.0, 0.0, 0.0]), 0.0);
    assert!((b.distance(&[4.0, 6.0, -1.0]) - 5.0).abs() < 1e-12);
    assert!((b.distance(&[-3.0, 0.0, -5.0]) - 5.0).abs() < 1e-12);
    let far = CellBox {
        lo: [4.0, 6.0, f64::NEG_INFINITY],
        hi: [f64::INFINITY; 3],
    };
    assert!((b.box_distance2(&far) - 25.0).abs() < 1e-12);
    assert_eq!(b.box_distance2(&CellBox::EVERYWHERE), 0.0);
}

#[test]
fn cells_tile_space_and_own_exactly_their_particles() {
    let pos = galaxy(5000, 1);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    let probes: Vec<[f64; 3]> = (0..20_000)
        .map(|i| {
            let w = if i % 2 == 0 { 10.0 } else { 1e4 };
            [0, 1, 2].map(|_| rng.random_range(-w..w))
        })
        .collect();
    for n_cells in [1, 2, 3, 7, 8, 16, 37, 64] {
        let cells = decompose_cells(&pos, n_cells, 0.5).unwrap();
        assert_eq!(cells.len(), n_cells);
        let mut owner = vec![usize::MAX; pos.len()];
        for (k, c) in cells.iter().enumerate() {
            assert_eq!(c.label, format!("cell {k}"));
            assert!(
                c.members.windows(2).all(|w| w[0] < w[1]),
                "members ascending"
            );
            for &i in &c.members {
                assert_eq!(owner[i], usize::MAX, "particle {i} in two cells");
                owner[i] = k;
            }
        }
        for (i, p) in pos.iter().enumerate() {
            let inside: Vec<usize> = (0..n_cells)
                .filter(|&k| cells[k].core.unwrap().contains(p))
                .collect();
            assert_eq!(inside, vec![owner[i]], "particle {i} at {p:?}");
        }
        for p in &probes {
            let inside = cells.iter().filter(|c| c.core.unwrap().contains(p)).count();
            assert_eq!(
                inside, 1,
                "probe {p:?} lies in {inside} cells (n = {n_cells})"
            );
        }
    }
}

#[test]
fn cells_are_balanced_within_one() {
    for (n, seed) in [(4096, 2), (5000, 3), (12_345, 4)] {
        let pos = galaxy(n, seed);
        for n_cells in [2, 3, 5, 8, 13, 32, 100, 128] {
            let cells = decompose_cells(&pos, n_cells, 0.0).unwrap();
            let (lo, hi) = (n / n_cells, n.div_ceil(n_cells));
            for c in &cells {
                let m = c.members.len();
                assert!(
                    (lo..=hi).contains(&m),
                    "N = {n}, {n_cells} cells: {} has {m} particles, expected {lo}..={hi}",
                    c.label
                );
                assert!(c.ghosts.is_empty(), "margin 0 gives no ghosts");
            }
        }
    }
}

#[test]
fn power_of_two_cells_split_at_the_median_of_the_widest_axis() {
    // An elongated cloud along y: the first cut is across y at the median.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let pos: Vec<[f64; 3]> = (0..1001)
        .map(|_| {
            [
                rng.random_range(-1.0..1.0),
                rng.random_range(-10.0..10.0),
                rng.random_range(-2.0..2.0),
            ]
        })
        .collect();
    let cells = decompose_cells(&pos, 2, 0.0).unwrap();
    let cut = cells[0].core.unwrap().hi[1];
    assert_eq!(cells[1].core.unwrap().lo[1], cut);
    assert_eq!(cells[0].core.unwrap().hi[0], f64::INFINITY);
    let mut ys: Vec<f64> = pos.iter().map(|p| p[1]).collect();
    ys.sort_by(f64::total_cmp);
    assert_eq!(cells[0].members.len(), 500);
    assert!(
        ys[499] < cut && cut < ys[500],
        "cut {cut} between the two middle values"
    );
}

/// Checks the ghost rule of every cell by brute force: ghosts are exactly the outside
/// particles within h, h the g-th smallest distance, g = round(margin × members); with
/// `continuous` positions (no ties in distance) at most 1% + 2 more than g.
fn check_ghosts(pos: &[[f64; 3]], cells: &[Cluster], margin: f64, continuous: bool) {
    for c in cells {
        let core = c.core.unwrap();
        let mut dist: Vec<(f64, usize)> = (0..pos.len())
            .filter(|&i| !core.contains(&pos[i]))
            .map(|i| (brute_distance2(&core, &pos[i]), i))
            .collect();
        dist.sort_by(|a, b| a.0.total_cmp(&b.0));
        let g = ((margin * c.members.len() as f64).round() as usize).min(dist.len());
        if g == 0 {
            assert!(c.ghosts.is_empty());
            continue;
        }
        let h2 = dist[g - 1].0;
        let mut want: Vec<usize> = dist.iter().filter(|x| x.0 <= h2).map(|x| x.1).collect();
        want.sort_unstable();
        assert_eq!(
            c.ghosts, want,
            "{}: ghosts differ from the brute-force rule",
            c.label
        );
        for &i in &c.ghosts {
            assert!(
                !core.contains(&pos[i]),
                "{}: ghost {i} inside the core",
                c.label
            );
            assert!(core.distance(&pos[i]) <= h2.sqrt() + 1e-12);
        }
        let extra = c.ghosts.len() - g;
        assert!(
            !continuous || extra <= 2 + g / 100,
            "{}: {} ghosts for g = {g}",
            c.label,
            c.ghosts.len()
        );
        assert!((c.ghost_radius(pos) - h2.sqrt()).abs() < 1e-9);
    }
}

#[test]
fn ghosts_follow_the_margin_rule() {
    let pos = galaxy(6000, 6);
    for (n_cells, margin) in [
        (2, 0.5),
        (7, 0.5),
        (16, 0.5),
        (33, 0.25),
        (8, 3.0),
        (5, 20.0),
    ] {
        let cells = decompose_cells(&pos, n_cells, margin).unwrap();
        check_ghosts(&pos, &cells, margin, true);
        let total: usize = cells.iter().map(|c| c.ghosts.len()).sum();
        let want: f64 = cells
            .iter()
            .map(|c| (margin * c.members.len() as f64).min((pos.len() - c.members.len()) as f64))
            .sum();
        assert!(
            (total as f64 - want).abs() <= 0.01 * want + n_cells as f64,
            "{n_cells} cells, margin {margin}: {total} ghosts, want ≈ {want}"
        );
    }
    // One cell: nothing outside, no ghosts.
    let one = decompose_cells(&pos, 1, 0.5).unwrap();
    assert!(one[0].ghosts.is_empty());
    assert_eq!(one[0].core, Some(CellBox::EVERYWHERE));
}

#[test]
fn tied_coordinates_still_tile_and_follow_the_rules() {
    // Integer grid coordinates: many particles share every cut coordinate.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let pos: Vec<[f64; 3]> = (0..3000)
        .map(|_| [0, 1, 2].map(|_| rng.random_range(0..6) as f64))
        .collect();
    for n_cells in [2, 5, 16] {
        let cells = decompose_cells(&pos, n_cells, 0.5).unwrap();
        assert_eq!(cells.len(), n_cells);
        for (i, p) in pos.iter().enumerate() {
            let owners: Vec<&Cluster> = cells
                .iter()
                .filter(|c| c.core.unwrap().contains(p))
                .collect();
            assert_eq!(owners.len(), 1);
            assert!(owners[0].members.binary_search(&i).is_ok());
        }
        assert_eq!(
            cells.iter().map(|c| c.members.len()).sum::<usize>(),
            pos.len()
        );
        check_ghosts(&pos, &cells, 0.5, false);
    }
}

#[test]
fn cells_and_fof_are_deterministic_across_thread_counts() {
    let pos = galaxy(250_000, 8);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                (
                    decompose_cells(&pos, 24, 0.5).unwrap(),
                    decompose_fof(&pos, 0.08, 10).unwrap(),
                )
            })
    };
    let (c1, f1) = run(1);
    let (c4, f4) = run(4);
    assert_eq!(c1, c4);
    assert_eq!(f1, f4);
    let (c1b, _) = run(1);
    for (a, b) in c1.iter().zip(&c1b) {
        assert_eq!(a.training(), b.training());
    }
    assert!(f1.len() > 2, "fof found {} populations", f1.len());
}

#[test]
fn training_rows_are_members_then_ghosts() {
    let c = Cluster {
        label: "cell 0".into(),
        members: vec![1, 4, 9],
        ghosts: vec![0, 2],
        core: None,
        component: None,
        own_frame: false,
    };
    assert_eq!(c.training(), vec![1, 4, 9, 0, 2]);
}

#[test]
fn bad_inputs_are_refused_with_clear_errors() {
    let pos = galaxy(100, 10);
    let err = |r: Result<Vec<Cluster>>| r.unwrap_err().to_string();
    assert!(err(decompose_cells(&pos, 0, 0.5)).contains("at least 1"));
    assert!(err(decompose_cells(&pos, 101, 0.5)).contains("cannot make 101 cells from 100"));
    assert!(err(decompose_cells(&[], 1, 0.5)).contains("no particles"));
    for m in [-0.1, f64::NAN, f64::INFINITY] {
        assert!(err(decompose_cells(&pos, 4, m)).contains("margin"), "{m}");
    }
    let mut bad = pos.clone();
    bad[17][1] = f64::NAN;
    assert!(err(decompose_cells(&bad, 4, 0.5)).contains("particle 17"));
    assert!(err(decompose_fof(&bad, 0.1, 5)).contains("particle 17"));
    bad[17][1] = f64::NEG_INFINITY;
    assert!(err(decompose_cells(&bad, 4, 0.5)).contains("non-finite"));
    for ll in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(
            err(decompose_fof(&pos, ll, 5)).contains("linking length"),
            "{ll}"
        );
    }
    assert!(err(decompose_fof(&[], 0.1, 5)).contains("no particles"));
    let same = vec![[1.0, 2.0, 3.0]; 10];
    assert!(err(decompose_cells(&same, 2, 0.5)).contains("same position"));
    // Exactly N cells of N distinct particles works: one particle each.
    let cells = decompose_cells(&pos, 100, 0.5).unwrap();
    assert!(cells.iter().all(|c| c.members.len() == 1));
}

/// Plummer sphere of `n` points, scale `b`, truncated at 2b (so that FoF keeps it whole).
fn plummer(n: usize, b: f64, center: [f64; 3], rng: &mut Xoshiro256PlusPlus) -> Vec<[f64; 3]> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u: f64 = rng.random_range(1e-9..1.0);
        let r = b / (u.powf(-2.0 / 3.0) - 1.0).sqrt();
        if r > 2.0 * b {
            continue;
        }
        let cos_t: f64 = rng.random_range(-1.0..1.0);
        let phi: f64 = rng.random_range(0.0..std::f64::consts::TAU);
        let s = (1.0 - cos_t * cos_t).sqrt();
        out.push([
            center[0] + r * s * phi.cos(),
            center[1] + r * s * phi.sin(),
            center[2] + r * cos_t,
        ]);
    }
    out
}

#[test]
fn fof_finds_two_blobs_and_pools_the_background() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let (ca, cb) = ([-4.0, 0.0, 0.0], [4.0, 1.0, -1.0]);
    let a = plummer(2000, 0.5, ca, &mut rng);
    let b = plummer(3000, 0.5, cb, &mut rng);
    // Sparse background in a 20 kpc cube, kept 2 kpc away from the blob centres.
    let far = |p: &[f64; 3], c: [f64; 3]| (0..3).map(|d| (p[d] - c[d]).powi(2)).sum::<f64>() > 4.0;
    let mut bg = Vec::new();
    while bg.len() < 600 {
        let p = [0, 1, 2].map(|_| rng.random_range(-10.0..10.0));
        if far(&p, ca) && far(&p, cb) {
            bg.push(p);
        }
    }
    // Interleave so that groups are not index ranges: a, b, bg cycling.
    let mut pos = Vec::new();
    let mut kind = Vec::new();
    let (mut ia, mut ib, mut ig) = (a.into_iter(), b.into_iter(), bg.into_iter());
    loop {
        let mut any = false;
        for (k, it) in [(0, &mut ia), (1, &mut ib), (2, &mut ig)] {
            if let Some(p) = it.next() {
                pos.push(p);
                kind.push(k);
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    let idx_of = |k: usize| -> Vec<usize> { (0..pos.len()).filter(|&i| kind[i] == k).collect() };
    let groups = decompose_fof(&pos, 0.4, 20).unwrap();
    assert_eq!(
        groups.len(),
        3,
        "{:?}",
        groups.iter().map(|g| &g.label).collect::<Vec<_>>()
    );
    assert_eq!(groups[0].members, idx_of(1), "largest group is blob b");
    assert_eq!(groups[0].label, "fof group 0 (3000 particles)");
    assert_eq!(groups[1].members, idx_of(0), "second group is blob a");
    assert_eq!(groups[2].members, idx_of(2), "background pooled");
    assert!(groups[2]
        .label
        .starts_with("fof field (pooled small groups"));
    assert!(groups
        .iter()
        .all(|g| g.ghosts.is_empty() && g.core.is_none()));
    // min_size 1: every particle in a group, no field; blobs still first.
    let all = decompose_fof(&pos, 0.4, 1).unwrap();
    assert!(all.iter().all(|g| g.label.starts_with("fof group")));
    assert_eq!(all[0].members, idx_of(1));
    assert_eq!(
        all.iter().map(|g| g.members.len()).sum::<usize>(),
        pos.len()
    );
}

/// FoF by brute force: O(N²) pairs, breadth-first labelling.
fn brute_fof(pos: &[[f64; 3]], ll: f64) -> Vec<Vec<usize>> {
    let n = pos.len();
    let mut label = vec![usize::MAX; n];
    let mut groups = Vec::new();
    for s in 0..n {
        if label[s] != usize::MAX {
            continue;
        }
        let g = groups.len();
        label[s] = g;
        let mut queue = vec![s];
        let mut members = vec![];
        while let Some(i) = queue.pop() {
            members.push(i);
            for j in 0..n {
                let d2: f64 = (0..3).map(|d| (pos[i][d] - pos[j][d]).powi(2)).sum();
                if label[j] == usize::MAX && d2 <= ll * ll {
                    label[j] = g;
                    queue.push(j);
                }
            }
        }
        members.sort_unstable();
        groups.push(members);
    }
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    groups
}

#[test]
fn fof_equals_brute_force_on_random_points() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(12);
    let pos: Vec<[f64; 3]> = (0..2000)
        .map(|_| [0, 1, 2].map(|_| rng.random_range(0.0..10.0)))
        .collect();
    // Mean separation 0.79 kpc; 0.55 gives many small groups and a few large ones.
    let ll = 0.55;
    let want = brute_fof(&pos, ll);
    let got: Vec<Vec<usize>> = decompose_fof(&pos, ll, 1)
        .unwrap()
        .into_iter()
        .map(|c| c.members)
        .collect();
    assert!(
        want.len() > 50 && want[0].len() > 10,
        "{} groups, largest {}",
        want.len(),
        want[0].len()
    );
    assert_eq!(got, want);
    // With pooling: the groups of >= 5 first, the rest pooled last.
    let pooled = decompose_fof(&pos, ll, 5).unwrap();
    let big: Vec<&Vec<usize>> = want.iter().filter(|g| g.len() >= 5).collect();
    assert_eq!(pooled.len(), big.len() + 1);
    for (c, g) in pooled.iter().zip(&big) {
        assert_eq!(&c.members, *g);
    }
    let mut rest: Vec<usize> = want
        .iter()
        .filter(|g| g.len() < 5)
        .flatten()
        .copied()
        .collect();
    rest.sort_unstable();
    assert_eq!(pooled.last().unwrap().members, rest);
}

#[test]
fn labels_group_sort_and_pool() {
    let labels = [17, -1, 3, 17, 3, 17, 5, 3, 42, 17];
    let pops = decompose_labels(&labels, "Group", 3);
    let names: Vec<&str> = pops.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(names[..2], ["field Group=3", "field Group=17"]);
    assert_eq!(pops[0].members, vec![2, 4, 7]);
    assert_eq!(pops[1].members, vec![0, 3, 5, 9]);
    assert_eq!(pops[2].members, vec![1, 6, 8], "labels -1, 5 and 42 pooled");
    assert!(
        pops[2].label.contains("pooled: 3 values"),
        "{}",
        pops[2].label
    );
    assert!(pops.iter().all(|c| c.ghosts.is_empty() && c.core.is_none()));
    // min_size 0 or 1: no pooling; min_size above every count: one pooled population.
    assert_eq!(decompose_labels(&labels, "Group", 1).len(), 5);
    assert_eq!(decompose_labels(&labels, "Group", 0).len(), 5);
    let one = decompose_labels(&labels, "Group", 100);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].members, (0..10).collect::<Vec<_>>());
    assert!(decompose_labels(&[], "Group", 3).is_empty());
}

#[test]
fn labels_join_by_particle_id() {
    let ids = [30, 10, 20];
    let field_ids = [10, 99, 20, 30];
    let values = [1, 7, 2, 3];
    assert_eq!(
        labels_by_id(&ids, &field_ids, &values, "snap.hdf5 PartType4/Group").unwrap(),
        vec![3, 1, 2]
    );
    let e = labels_by_id(&[30, 11, 12], &field_ids, &values, "side.h5")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("side.h5") && e.contains("ID 11") && e.contains("2 of 3"),
        "{e}"
    );
    let e = labels_by_id(&ids, &field_ids, &values[..3], "side.h5")
        .unwrap_err()
        .to_string();
    assert!(e.contains("4 particle IDs but 3 values"), "{e}");
    let e = labels_by_id(&ids, &[10, 10, 20, 30], &values, "side.h5")
        .unwrap_err()
        .to_string();
    assert!(e.contains("ID 10 is listed twice"), "{e}");
    // The same value twice is fine.
    assert!(labels_by_id(&ids, &[10, 10, 20, 30], &[1, 1, 2, 3], "s").is_ok());
}

/// Timings on 1M and 10M points (run with `--ignored --nocapture`; tests build optimised).
#[test]
#[ignore]
fn timing_one_and_ten_million() {
    for n in [1_000_000, 10_000_000] {
        let pos = galaxy(n, 13);
        for n_cells in [64, 1000] {
            let t = std::time::Instant::now();
            let cells = decompose_cells(&pos, n_cells, 0.5).unwrap();
            let ghosts: usize = cells.iter().map(|c| c.ghosts.len()).sum();
            eprintln!(
                "decompose_cells: {n} points, {n_cells} cells, margin 0.5: {:.2} s ({ghosts} ghosts)",
                t.elapsed().as_secs_f64()
            );
        }
        for ll in [0.02, 0.05] {
            let t = std::time::Instant::now();
            let groups = decompose_fof(&pos, ll, 20).unwrap();
            eprintln!(
                "decompose_fof: {n} points, ll {ll} kpc: {:.2} s ({} populations, first {})",
                t.elapsed().as_secs_f64(),
                groups.len(),
                groups[0].label
            );
        }
    }
}

/// Isotropic Gaussian velocities (km/s) with dispersion `sigma(r)` at each position.
fn gaussian_velocities(
    pos: &[[f64; 3]],
    sigma: impl Fn(f64) -> f64,
    rng: &mut Xoshiro256PlusPlus,
) -> Vec<[f64; 3]> {
    pos.iter()
        .map(|x| {
            let s = sigma((x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt());
            [0, 1, 2].map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                s * z
            })
        })
        .collect()
}

/// A smooth Plummer sphere (b = 1 kpc, untruncated up to 30 b) with its isotropic Jeans
/// dispersion σ² = GM / (6 √(r² + b²)), GM = 5400 kpc (km/s)² (σ = 30 km/s at the centre), and
/// injected at the end: a cold clump (`clump` particles, Gaussian 0.05 kpc and 2 km/s about
/// (2, 0, 0) kpc, (0, 20, 0) km/s) and a thin cold tube (`tube` particles along half a circle of
/// radius 3 kpc in the x-y plane, 0.05 kpc wide, moving along it at 25 km/s with 2 km/s).
/// Returns positions, velocities and labels (0 background, 1 clump, 2 tube).
fn plummer_with_clump_and_tube(
    n: usize,
    clump: usize,
    tube: usize,
    seed: u64,
) -> (Vec<[f64; 3]>, Vec<[f64; 3]>, Vec<u8>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut pos = Vec::with_capacity(n + clump + tube);
    while pos.len() < n {
        let u: f64 = rng.random_range(1e-9..1.0);
        let r = 1.0 / (u.powf(-2.0 / 3.0) - 1.0).sqrt();
        if r > 30.0 {
            continue;
        }
        let cos_t: f64 = rng.random_range(-1.0..1.0);
        let phi: f64 = rng.random_range(0.0..std::f64::consts::TAU);
        let s = (1.0 - cos_t * cos_t).sqrt();
        pos.push([r * s * phi.cos(), r * s * phi.sin(), r * cos_t]);
    }
    let mut vel = gaussian_velocities(
        &pos,
        |r| (5400.0 / (6.0 * (r * r + 1.0).sqrt())).sqrt(),
        &mut rng,
    );
    let mut label = vec![0u8; n];
    let mut g = |s: f64| -> f64 {
        let z: f64 = StandardNormal.sample(&mut rng);
        s * z
    };
    for _ in 0..clump {
        pos.push([2.0 + g(0.05), g(0.05), g(0.05)]);
        vel.push([g(2.0), 20.0 + g(2.0), g(2.0)]);
        label.push(1);
    }
    for k in 0..tube {
        let phi = std::f64::consts::PI * (k as f64 + 0.5) / tube as f64;
        let (c, s) = (phi.cos(), phi.sin());
        pos.push([3.0 * c + g(0.05), 3.0 * s + g(0.05), g(0.05)]);
        vel.push([-25.0 * s + g(2.0), 25.0 * c + g(2.0), g(2.0)]);
        label.push(2);
    }
    (pos, vel, label)
}

/// Hernquist sphere (a = 2 kpc, GM = 4.3e4 kpc (km/s)², up to 50 a) with Gaussian velocities of
/// its isotropic Jeans dispersion (Hernquist 1990, eq. 10), radial anisotropy optional
/// (σ_t = `t_over_r` σ_r about the origin).
fn hernquist_sphere(n: usize, t_over_r: f64, seed: u64) -> (Vec<[f64; 3]>, Vec<[f64; 3]>) {
    let (a, gm) = (2.0_f64, 4.3e4_f64);
    let sigma2 = |r: f64| {
        let x = r / a;
        gm / (12.0 * a)
            * (12.0 * x * (1.0 + x).powi(3) * ((1.0 + x) / x).ln()
                - x / (1.0 + x) * (25.0 + 52.0 * x + 42.0 * x * x + 12.0 * x * x * x))
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut pos = Vec::with_capacity(n);
    let mut vel = Vec::with_capacity(n);
    while pos.len() < n {
        let q = rng.random_range(1e-12_f64..1.0).sqrt();
        let r = a * q / (1.0 - q);
        if r > 50.0 * a {
            continue;
        }
        let cos_t: f64 = rng.random_range(-1.0..1.0);
        let phi: f64 = rng.random_range(0.0..std::f64::consts::TAU);
        let s = (1.0 - cos_t * cos_t).sqrt();
        let r_hat = [s * phi.cos(), s * phi.sin(), cos_t];
        let sr = sigma2(r).max(0.0).sqrt();
        let v: [f64; 3] = [0, 1, 2].map(|_| {
            let z: f64 = StandardNormal.sample(&mut rng);
            t_over_r * sr * z
        });
        // Replace the radial part of an isotropic σ_t draw by one of dispersion σ_r.
        let vr_t = v[0] * r_hat[0] + v[1] * r_hat[1] + v[2] * r_hat[2];
        let z: f64 = StandardNormal.sample(&mut rng);
        let vr = sr * z;
        pos.push(r_hat.map(|u| r * u));
        vel.push([0, 1, 2].map(|d| v[d] + (vr - vr_t) * r_hat[d]));
    }
    (pos, vel)
}

/// Members of the clusters that are phase-space groups (or pieces of one).
fn phase_group_members(clusters: &[Cluster]) -> Vec<usize> {
    clusters
        .iter()
        .filter(|c| c.label.starts_with("phase group"))
        .flat_map(|c| c.members.clone())
        .collect()
}

/// "phase group G of N" of a cluster that is a phase-space group or a piece of one.
fn phase_group_name(c: &Cluster) -> Option<&str> {
    c.label
        .starts_with("phase group")
        .then(|| c.label.split(" (").next().unwrap_or(""))
}

/// Purity and completeness of the group that holds most of label `l`'s particles.
fn best_match(groups: &[Vec<usize>], label: &[u8], l: u8) -> (f64, f64) {
    let total = label.iter().filter(|&&x| x == l).count();
    groups
        .iter()
        .map(|g| {
            let hit = g.iter().filter(|&&i| label[i] == l).count();
            (hit as f64 / g.len() as f64, hit as f64 / total as f64)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0.0, 0.0))
}

#[test]
fn phase_groups_find_a_cold_clump_and_a_thin_tube_in_a_plummer_sphere() {
    let (pos, vel, label) = plummer_with_clump_and_tube(20_000, 300, 500, 21);
    let found = find_phase_groups(&pos, &vel, &PhaseGroupSettings::default(), None).unwrap();
    assert_eq!(
        found.groups.len(),
        2,
        "groups of {:?}",
        found.groups.iter().map(Vec::len).collect::<Vec<_>>()
    );
    for (l, what) in [(1u8, "clump"), (2, "tube")] {
        let (purity, completeness) = best_match(&found.groups, &label, l);
        eprintln!("{what}: purity {purity:.4}, completeness {completeness:.4}");
        assert!(
            purity >= 0.9 && completeness >= 0.9,
            "{what}: purity {purity}, completeness {completeness}"
        );
    }
    // The background's contrast stays near 1: its 99.9th percentile is below the threshold.
    let mut bg: Vec<f64> = (0..pos.len())
        .filter(|&i| label[i] == 0)
        .map(|i| found.contrast[i])
        .collect();
    bg.sort_by(f64::total_cmp);
    let q999 = bg[bg.len() * 999 / 1000];
    eprintln!(
        "background contrast: median {:.3}, 99.9% {q999:.3}",
        bg[bg.len() / 2]
    );
    assert!(
        (0.3..2.0).contains(&bg[bg.len() / 2]),
        "median {}",
        bg[bg.len() / 2]
    );
    assert!(q999 < 10.0, "99.9% {q999}");
    let above = bg.iter().filter(|&&c| c >= 30.0).count();
    assert!(
        above <= bg.len() / 500,
        "{above} background particles above the threshold"
    );
    // Without the structures: nothing.
    let n = 20_000;
    let none =
        find_phase_groups(&pos[..n], &vel[..n], &PhaseGroupSettings::default(), None).unwrap();
    assert!(
        none.groups.is_empty(),
        "{:?}",
        none.groups.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

#[test]
fn phase_groups_leave_a_smooth_cuspy_sphere_alone() {
    for (t_over_r, seed) in [(1.0, 31), (0.6, 32)] {
        let (pos, vel) = hernquist_sphere(30_000, t_over_r, seed);
        let settings = PhaseGroupSettings {
            min_members: 20,
            ..PhaseGroupSettings::default()
        };
        let found = find_phase_groups(&pos, &vel, &settings, None).unwrap();
        let max = found.contrast.iter().copied().fold(0.0, f64::max);
        eprintln!(
            "Hernquist σ_t/σ_r = {t_over_r}: max contrast {max:.2}, {} outliers, {} groups",
            found.outliers,
            found.groups.len()
        );
        assert!(
            found.groups.is_empty(),
            "σ_t/σ_r = {t_over_r}: {} groups",
            found.groups.len()
        );
        assert!(max < 10.0, "σ_t/σ_r = {t_over_r}: max contrast {max}");
    }
}

#[test]
fn substructure_decomposition_owns_every_particle_once() {
    let (pos, vel, label) = plummer_with_clump_and_tube(12_000, 300, 500, 22);
    let settings = PhaseGroupSettings {
        min_members: 200,
        ..PhaseGroupSettings::default()
    };
    let clusters = decompose_cells_and_groups(&pos, &vel, 4, 0.5, &settings, None).unwrap();
    let labels: Vec<&str> = clusters.iter().map(|c| c.label.as_str()).collect();
    // 4 cells, the tube (≈ 500 particles, elongated: 2 pieces of ≥ 200) and the clump (round).
    assert_eq!(clusters.len(), 7, "{labels:?}");
    assert!(
        labels[4].starts_with("phase group 0 of 2 (elongation")
            && labels[4].contains("piece 0 of 2"),
        "{labels:?}"
    );
    assert!(labels[6].starts_with("phase group 1 of 2 (3"), "{labels:?}");
    let mut owner = vec![usize::MAX; pos.len()];
    for (k, c) in clusters.iter().enumerate() {
        assert!(
            c.members.windows(2).all(|w| w[0] < w[1]),
            "{}: members ascending",
            c.label
        );
        assert!(
            c.ghosts.windows(2).all(|w| w[0] < w[1]),
            "{}: ghosts ascending",
            c.label
        );
        for &i in &c.members {
            assert_eq!(owner[i], usize::MAX, "particle {i} in two clusters");
            owner[i] = k;
        }
    }
    assert!(
        owner.iter().all(|&o| o != usize::MAX),
        "every particle has a cluster"
    );
    let in_group = |i: usize| owner[i] >= 4;
    for (k, c) in clusters.iter().enumerate() {
        if k < 4 {
            assert_eq!(c.label, format!("cell {k}"));
            assert!(!c.own_frame);
            let core = c.core.expect("cells have a core");
            assert!(!c.ghosts.is_empty());
            for &i in &c.members {
                assert!(core.contains(&pos[i]));
            }
            for &i in &c.ghosts {
                assert!(!in_group(i), "{}: ghost {i} belongs to a group", c.label);
                assert!(!core.contains(&pos[i]));
            }
        } else {
            assert!(c.label.starts_with("phase group"), "{}", c.label);
            // Only the round clump learns about its own centre.
            assert_eq!(c.own_frame, k == 6, "{}", c.label);
            if k == 6 {
                assert!(c.core.is_none() && c.ghosts.is_empty(), "{}", c.label);
            } else {
                // A piece of the tube: members in its core, ghosts from the other piece.
                let core = c.core.expect("pieces have a core");
                assert!(!c.ghosts.is_empty(), "{}", c.label);
                assert!(c.members.iter().all(|&i| core.contains(&pos[i])));
                let other = if k == 4 { 5 } else { 4 };
                assert!(c.ghosts.iter().all(|&i| owner[i] == other), "{}", c.label);
            }
            // Purity against the structure (clump or tube) it holds most of.
            let count = |l: u8| c.members.iter().filter(|&&i| label[i] == l).count();
            let pure = count(1).max(count(2));
            assert!(pure as f64 >= 0.9 * c.members.len() as f64, "{}", c.label);
        }
    }
    // The cells split the rest evenly (within one).
    let rest = pos.len() - clusters[4..].iter().map(|c| c.members.len()).sum::<usize>();
    for c in &clusters[..4] {
        assert!((rest / 4..=rest.div_ceil(4)).contains(&c.members.len()));
    }
}

#[test]
fn phase_groups_refuse_bad_inputs() {
    let (pos, vel, _) = plummer_with_clump_and_tube(500, 0, 0, 23);
    let s = PhaseGroupSettings::default();
    let e = find_phase_groups(&pos, &vel[..10], &s, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("500 positions but 10 velocities"), "{e}");
    let mut v = vel.clone();
    v[7][1] = f64::NAN;
    let e = find_phase_groups(&pos, &v, &s, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("particle 7") && e.contains("velocity"), "{e}");
    for bad in [
        PhaseGroupSettings {
            contrast: 1.0,
            ..s.clone()
        },
        PhaseGroupSettings {
            neighbours: 2,
            ..s.clone()
        },
        PhaseGroupSettings {
            max_fraction: 0.0,
            ..s.clone()
        },
        PhaseGroupSettings {
            grow_contrast: 40.0,
            ..s.clone()
        },
        PhaseGroupSettings {
            grow_contrast: 1.0,
            ..s.clone()
        },
    ] {
        assert!(
            find_phase_groups(&pos, &vel, &bad, None).is_err(),
            "{bad:?}"
        );
    }
    // Fewer particles than neighbours: no groups, contrast 1.
    let few = find_phase_groups(&pos[..10], &vel[..10], &s, None).unwrap();
    assert!(few.groups.is_empty() && few.contrast == vec![1.0; 10]);
    let e = decompose_cells_and_groups(&pos[..3], &vel[..3], 4, 0.5, &s, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("too few for 4 cells"), "{e}");
}

/// Timing on 1M particles (run with `--ignored --nocapture`; tests build optimised).
#[test]
#[ignore]
fn timing_phase_groups_one_million() {
    let (pos, vel, label) = plummer_with_clump_and_tube(1_000_000, 10_000, 20_000, 24);
    let t = std::time::Instant::now();
    let found = find_phase_groups(&pos, &vel, &PhaseGroupSettings::default(), None).unwrap();
    let (pc, cc) = best_match(&found.groups, &label, 1);
    let (pt, ct) = best_match(&found.groups, &label, 2);
    eprintln!(
        "find_phase_groups: {} particles in {:.1} s on {} threads: {} groups; clump purity {pc:.4} completeness {cc:.4}; tube {pt:.4} {ct:.4}",
        pos.len(),
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads(),
        found.groups.len()
    );
}

/// Timing of the disc/spheroid split (velocity ellipsoids) on 10⁶ particles (run with
/// `--ignored --nocapture`).
#[test]
#[ignore]
fn timing_disc_spheroid_split_one_million() {
    let (pos, vel, _) = disc_and_spheroid(750_000, 250_000, 15.0, (100.0, 70.0), 25);
    let uids: Vec<u64> = (0..pos.len() as u64).collect();
    let t = std::time::Instant::now();
    let split = split_disc_spheroid(&pos, &vel, None, &uids, true).expect("split");
    eprintln!(
        "split_disc_spheroid: {} particles in {:.1} s: disc share {:.3}, ellipsoids in {} of {} shells",
        pos.len(),
        t.elapsed().as_secs_f64(),
        split.disc_share,
        split.ellipsoid_shells.0,
        split.ellipsoid_shells.1
    );
}

#[test]
fn elongation_is_the_principal_spread_ratio() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(41);
    let mut g = |s: f64| -> f64 {
        let z: f64 = StandardNormal.sample(&mut rng);
        s * z
    };
    // Axes 4, 2, 1 kpc, rotated: ratio 4.
    let (c, s) = (0.6_f64, 0.8_f64);
    let pts: Vec<[f64; 3]> = (0..200_000)
        .map(|_| {
            let (a, b, z) = (g(4.0), g(2.0), g(1.0));
            [c * a - s * b + 5.0, s * a + c * b, z]
        })
        .collect();
    let e = elongation(&pts);
    assert!((e - 4.0).abs() < 0.05, "{e}");
    let round: Vec<[f64; 3]> = (0..20_000).map(|_| [g(1.0), g(1.0), g(1.0)]).collect();
    assert!(elongation(&round) < 1.1 && elongation(&round) < ELONGATED);
    assert_eq!(elongation(&[[1.0, 2.0, 3.0]; 5]), 1.0);
    assert_eq!(elongation(&[[0.0; 3], [1.0, 1.0, 1.0]]), f64::INFINITY);
}

#[test]
fn substructure_without_groups_is_exactly_the_cells() {
    let (pos, vel) = hernquist_sphere(8_000, 0.8, 33);
    let s = PhaseGroupSettings::default();
    assert!(find_phase_groups(&pos, &vel, &s, None)
        .unwrap()
        .groups
        .is_empty());
    assert_eq!(
        decompose_cells_and_groups(&pos, &vel, 5, 0.5, &s, None).unwrap(),
        smooth_cells(&pos, 5, 0.5)
    );
}

/// [`decompose_cells`] as cells of the galaxy's unsplit smooth part (component "smooth").
fn smooth_cells(pos: &[[f64; 3]], n: usize, margin: f64) -> Vec<Cluster> {
    let mut cells = decompose_cells(pos, n, margin).unwrap();
    for c in &mut cells {
        c.component = Some("smooth");
    }
    cells
}

/// Mean spherical v_φ (km/s) of the particles `set` at `pos` (kpc) with velocities `vel` (km/s).
fn mean_vphi(pos: &[[f64; 3]], vel: &[[f64; 3]], set: impl Iterator<Item = usize>) -> f64 {
    let (mut s, mut n) = (0.0, 0.0);
    for i in set {
        s += crate::fidelity::spherical_velocity(pos[i], vel[i])[2];
        n += 1.0;
    }
    s / n
}

/// A rotating exponential disc (R_d = 3 kpc, z_d = 0.3 kpc, mean v_φ `rotation` km/s,
/// isotropic dispersion `sigma` km/s) with `n_disc` particles and a radially anisotropic
/// Hernquist sphere (`hernquist_sphere`, σ_t = 0.7 σ_r) with `n_sph`, cut at `cut` kpc; labels
/// 0 disc, 1 spheroid.
fn disc_and_spheroid(
    n_disc: usize,
    n_sph: usize,
    cut: f64,
    (rotation, sigma): (f64, f64),
    seed: u64,
) -> (Vec<[f64; 3]>, Vec<[f64; 3]>, Vec<u8>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (mut pos, mut vel, mut label) = (Vec::new(), Vec::new(), Vec::new());
    while pos.len() < n_disc {
        // R ~ Gamma(2, R_d): minus ln of two uniforms.
        let u: f64 = rng.random_range(1e-12..1.0);
        let w: f64 = rng.random_range(1e-12..1.0);
        let big_r = -3.0 * (u * w).ln();
        let phi: f64 = rng.random_range(0.0..std::f64::consts::TAU);
        let z: f64 = StandardNormal.sample(&mut rng);
        let g = |rng: &mut Xoshiro256PlusPlus| -> f64 {
            let s: f64 = StandardNormal.sample(rng);
            sigma * s
        };
        let (c, s) = (phi.cos(), phi.sin());
        let (v_r, v_phi, v_z) = (g(&mut rng), rotation + g(&mut rng), g(&mut rng));
        pos.push([big_r * c, big_r * s, 0.3 * z]);
        vel.push([v_r * c - v_phi * s, v_r * s + v_phi * c, v_z]);
        label.push(0);
    }
    let (p, v) = hernquist_sphere(4 * n_sph, 0.7, seed ^ 0x5eed);
    for (x, u) in p.into_iter().zip(v) {
        if label.len() == n_disc + n_sph {
            break;
        }
        if (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt() < cut {
            pos.push(x);
            vel.push(u);
            label.push(1);
        }
    }
    (pos, vel, label)
}

#[test]
fn circularity_is_the_rotation_share_of_the_speed() {
    // Prograde circular orbit: +1; retrograde: −1; radial: 0; on the axis: 0.
    assert!((circularity([3.0, 0.0, 0.5], [0.0, 200.0, 0.0]) - 1.0).abs() < 1e-12);
    assert!((circularity([0.0, 2.0, 0.0], [200.0, 0.0, 0.0]) + 1.0).abs() < 1e-12);
    assert_eq!(circularity([1.0, 1.0, 0.0], [5.0, 5.0, 3.0]), 0.0);
    assert_eq!(circularity([0.0, 0.0, 4.0], [1.0, 2.0, 3.0]), 0.0);
    let e = circularity([1.0, 0.0, 0.0], [0.0, 3.0, 4.0]);
    assert!((e - 0.6).abs() < 1e-12, "{e}");
}

#[test]
fn a_non_rotating_spheroid_is_not_split() {
    for (t_over_r, seed) in [(1.0, 3), (0.6, 4)] {
        let (pos, vel) = hernquist_sphere(40_000, t_over_r, seed);
        let uids: Vec<u64> = (0..pos.len() as u64).collect();
        // The mirror alone, and with the velocity ellipsoids.
        for ellipsoids in [false, true] {
            let prob = DiscProbability::fit(&pos, &vel, None, ellipsoids);
            let share = (0..pos.len()).map(|i| prob.at(pos[i], vel[i])).sum::<f64>() / 4e4;
            assert!(share < 0.01, "σ_t/σ_r {t_over_r}: disc share {share}");
            assert!(split_disc_spheroid(&pos, &vel, None, &uids, ellipsoids).is_none());
        }
    }
    // No particles: nothing to split, p = 0.
    assert!(split_disc_spheroid(&[], &[], None, &[], true).is_none());
    let empty = DiscProbability::fit(&[], &[], None, true);
    assert_eq!(empty.at([3.0, 0.0, 0.0], [0.0, 200.0, 0.0]), 0.0);
}

#[test]
fn a_rotating_spheroid_gets_no_ellipsoid_disc() {
    // Lynden-Bell's trick, as in the shipped sample: 80% of the orbits turned prograde
    // (f(E, L_z) ∝ 1 + 0.6 sign L_z). The shells rotate significantly, and EM carves a "disc"
    // from the prograde tail (σ_φ small, σ_R ≈ σ_z ≈ the sphere's, V below them); that fit is
    // refused, so p is the mirror's.
    let (pos, mut vel) = hernquist_sphere(40_000, 1.0, 11);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(12);
    for (x, v) in pos.iter().zip(vel.iter_mut()) {
        let big_r = x[0].hypot(x[1]);
        let e_phi = [-x[1] / big_r, x[0] / big_r];
        let v_phi = v[0] * e_phi[0] + v[1] * e_phi[1];
        if v_phi < 0.0 && rng.random_range(0.0..1.0) < 0.6 {
            v[0] -= 2.0 * v_phi * e_phi[0];
            v[1] -= 2.0 * v_phi * e_phi[1];
        }
    }
    let uids: Vec<u64> = (0..pos.len() as u64).collect();
    let mirror = split_disc_spheroid(&pos, &vel, None, &uids, false).expect("it rotates");
    let split = split_disc_spheroid(&pos, &vel, None, &uids, true).expect("it rotates");
    assert_eq!(split.ellipsoid_shells.0, 0, "{:?}", split.ellipsoid_shells);
    assert_eq!(split.disc, mirror.disc);
}

#[test]
fn a_disc_and_a_spheroid_are_told_apart_by_their_rotation() {
    let (pos, vel, label) = disc_and_spheroid(30_000, 10_000, 15.0, (200.0, 30.0), 5);
    let uids: Vec<u64> = (0..pos.len() as u64).map(|i| 1000 + 7 * i).collect();
    let split = split_disc_spheroid(&pos, &vel, None, &uids, true).expect("a disc galaxy is split");
    let n = pos.len() as f64;
    assert!(
        (split.disc_share - 0.75).abs() < 0.05,
        "expected disc share {}",
        split.disc_share
    );
    // Every particle in exactly one component.
    let mut all: Vec<usize> = split.disc.iter().chain(&split.spheroid).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..pos.len()).collect::<Vec<_>>());
    assert!((split.disc.len() as f64 / n - split.disc_share).abs() < 0.01);
    // Purity and completeness: nearly every disc particle rotates too fast to be mistaken for
    // the spheroid's.
    let spheroid_in_spheroid = split.spheroid.iter().filter(|&&i| label[i] == 1).count();
    let disc_in_disc = split.disc.iter().filter(|&&i| label[i] == 0).count();
    let completeness = spheroid_in_spheroid as f64 / 10_000.0;
    let purity = spheroid_in_spheroid as f64 / split.spheroid.len() as f64;
    assert!(completeness > 0.85, "spheroid completeness {completeness}");
    assert!(purity > 0.9, "spheroid purity {purity}");
    assert!(disc_in_disc as f64 / 30_000.0 > 0.95);
    // Beyond the spheroid's cut nothing counter-rotates, so every particle there is the disc's:
    // the spheroid's cells end where it ends.
    let r = |x: &[f64; 3]| (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt();
    let outer = split
        .spheroid
        .iter()
        .filter(|&&i| r(&pos[i]) > 17.0)
        .count();
    assert_eq!(outer, 0, "spheroid particles beyond 17 kpc");
    // The split is a function of the particles, not of their order.
    let rev: Vec<usize> = (0..pos.len()).rev().collect();
    let pick = |v: &[[f64; 3]]| rev.iter().map(|&i| v[i]).collect::<Vec<_>>();
    let uids_rev: Vec<u64> = rev.iter().map(|&i| uids[i]).collect();
    let again = split_disc_spheroid(&pick(&pos), &pick(&vel), None, &uids_rev, true).unwrap();
    let mut back: Vec<usize> = again.disc.iter().map(|&j| rev[j]).collect();
    back.sort_unstable();
    assert_eq!(back, split.disc);
}

#[test]
fn the_disc_probability_is_continuous_in_circularity_and_radius() {
    let (pos, vel, _) = disc_and_spheroid(30_000, 10_000, 15.0, (200.0, 30.0), 6);
    let prob = DiscProbability::fit(&pos, &vel, None, true);
    // Walk ε from −1 to 1 at several radii and r from 0.1 to 30 kpc at several ε: steps of
    // 1/1000 never move p by more than a few hundredths (a binned p would jump by up to 1).
    let at = |r: f64, e: f64| {
        prob.at(
            [r, 0.0, 0.0],
            [0.0, 100.0 * e, 100.0 * (1.0 - e * e).sqrt()],
        )
    };
    for r in [0.3, 2.0, 6.0, 12.0] {
        for k in 0..2000 {
            let (e0, e1) = (-1.0 + k as f64 / 1000.0, -1.0 + (k + 1) as f64 / 1000.0);
            assert!((at(r, e0) - at(r, e1)).abs() < 0.02, "r {r} ε {e0}");
        }
    }
    for e in [0.5, 0.8, 0.95] {
        for k in 0..1000 {
            let (r0, r1) = (
                0.1 * 300f64.powf(k as f64 / 1000.0),
                0.1 * 300f64.powf((k + 1) as f64 / 1000.0),
            );
            assert!((at(r0, e) - at(r1, e)).abs() < 0.05, "ε {e} r {r0}");
        }
    }
    assert!(at(5.0, -0.5) < 1e-6);
    assert!(at(5.0, 0.97) > 0.9);
}

#[test]
fn a_hot_disc_is_kept_whole_and_the_spheroid_left_without_rotation() {
    // V/σ = 1.4, as in galaxy (b)'s bulge region: 8% of the disc counter-rotates. The mirror
    // alone gives a disc share of 0.59, 71% of the disc, and a spheroid rotating at 21 km/s;
    // the ellipsoids 0.748, 92% and 0.9 km/s (true: 0.75, and −0.1 km/s).
    let (pos, vel, label) = disc_and_spheroid(30_000, 10_000, 15.0, (100.0, 70.0), 9);
    let uids: Vec<u64> = (0..pos.len() as u64).collect();
    let split = split_disc_spheroid(&pos, &vel, None, &uids, true).expect("a disc galaxy is split");
    let (fitted, shells) = split.ellipsoid_shells;
    assert!(
        fitted * 2 > shells,
        "ellipsoids in {fitted} of {shells} shells"
    );
    let mirror = split_disc_spheroid(&pos, &vel, None, &uids, false).expect("split");
    assert_eq!(mirror.ellipsoid_shells.0, 0);
    assert!(
        mirror.disc_share < 0.65,
        "mirror's disc share {}",
        mirror.disc_share
    );
    assert!(
        (split.disc_share - 0.75).abs() < 0.03,
        "disc share {}",
        split.disc_share
    );
    let disc_in_disc = split.disc.iter().filter(|&&i| label[i] == 0).count();
    assert!(disc_in_disc as f64 / 30_000.0 > 0.9, "disc completeness");
    // The spheroid's particles do not rotate: their mean v_φ is that of the true spheroid's
    // within a few of its standard errors (σ_φ ≈ 30 km/s over 10⁴ particles: 0.3 km/s).
    let got = mean_vphi(&pos, &vel, split.spheroid.iter().copied());
    let truth = mean_vphi(&pos, &vel, (0..pos.len()).filter(|&i| label[i] == 1));
    assert!(
        (got - truth).abs() < 3.0,
        "spheroid mean v_φ {got} km/s, true {truth}"
    );
}

#[test]
fn smooth_cells_of_a_disc_galaxy_are_the_components_cells() {
    let (pos, vel, _) = disc_and_spheroid(15_000, 5_000, 15.0, (200.0, 30.0), 7);
    let uids: Vec<u64> = (0..pos.len() as u64).collect();
    let rest: Vec<usize> = (0..pos.len()).collect();
    let split = SmoothSplit {
        weights: None,
        uids: &uids,
        ellipsoids: true,
    };
    let clusters = decompose_smooth(&pos, &vel, &rest, 8, 0.5, Some(&split)).unwrap();
    assert_eq!(clusters.len(), 8);
    let named = |s: &str| clusters.iter().filter(|c| c.label.starts_with(s)).count();
    assert_eq!((named("disc cell"), named("spheroid cell")), (6, 2));
    // Each cell knows its component (they share its velocity standardisation).
    for c in &clusters {
        let name = c.component.expect("a component's cell");
        assert!(c.label.starts_with(&format!("{name} cell")), "{}", c.label);
    }
    let mut owned: Vec<usize> = clusters.iter().flat_map(|c| c.members.clone()).collect();
    owned.sort_unstable();
    assert_eq!(owned, rest);
    // Ghosts come from the cluster's own component.
    let disc: std::collections::HashSet<usize> = clusters
        .iter()
        .filter(|c| c.label.starts_with("disc"))
        .flat_map(|c| c.members.clone())
        .collect();
    for c in &clusters {
        let is_disc = c.label.starts_with("disc");
        assert!(
            c.ghosts.iter().all(|g| disc.contains(g) == is_disc),
            "{}",
            c.label
        );
    }
    // Without the split, or for a non-rotating sphere, plain cells.
    let plain = decompose_smooth(&pos, &vel, &rest, 8, 0.5, None).unwrap();
    assert_eq!(plain, smooth_cells(&pos, 8, 0.5));
    let (sp, sv) = hernquist_sphere(20_000, 0.7, 8);
    let all: Vec<usize> = (0..sp.len()).collect();
    let uids: Vec<u64> = (0..sp.len() as u64).collect();
    let split = SmoothSplit {
        weights: None,
        uids: &uids,
        ellipsoids: true,
    };
    let sphere = decompose_smooth(&sp, &sv, &all, 8, 0.5, Some(&split)).unwrap();
    assert_eq!(sphere, smooth_cells(&sp, 8, 0.5));
}

#[test]
fn a_cold_thin_disc_is_background_and_a_satellite_beside_it_still_a_group() {
    // A thin (0.3 kpc), cold (15 km/s) disc, its spheroid, and a compact satellite in the halo:
    // 500 particles, Gaussian 0.2 kpc and 5 km/s about (15, 0, 10) kpc, (0, −80, 60) km/s.
    let (mut pos, mut vel, mut label) = disc_and_spheroid(120_000, 40_000, 30.0, (200.0, 15.0), 3);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
    for _ in 0..500 {
        let g = |rng: &mut Xoshiro256PlusPlus, s: f64| -> f64 {
            let z: f64 = StandardNormal.sample(rng);
            s * z
        };
        pos.push([
            15.0 + g(&mut rng, 0.2),
            g(&mut rng, 0.2),
            10.0 + g(&mut rng, 0.2),
        ]);
        vel.push([
            g(&mut rng, 5.0),
            -80.0 + g(&mut rng, 5.0),
            60.0 + g(&mut rng, 5.0),
        ]);
        label.push(2);
    }
    let s = PhaseGroupSettings::default();
    // Against spherical shells alone the disc stands out as groups of its own (seeds only;
    // grown through contrast 10 it percolates into one set too large to be substructure).
    let strict = PhaseGroupSettings {
        grow_contrast: s.contrast,
        ..s.clone()
    };
    let spherical = find_phase_groups(&pos, &vel, &strict, None).unwrap();
    let disc_in_groups: usize = spherical
        .groups
        .iter()
        .map(|g| g.iter().filter(|&&i| label[i] == 0).count())
        .sum();
    assert!(
        disc_in_groups > 1_000,
        "spherical background: {disc_in_groups} disc particles in {} groups",
        spherical.groups.len()
    );
    let grown = find_phase_groups(&pos, &vel, &s, None).unwrap();
    eprintln!(
        "spherical background: {disc_in_groups} disc particles in {} groups; grown: sets of {:?} \
         too large",
        spherical.groups.len(),
        grown.too_large
    );
    assert!(
        grown.too_large.iter().sum::<usize>() > disc_in_groups,
        "{:?}",
        grown.too_large
    );
    // With the disc's own rings in the background only the satellite is left.
    let uids: Vec<u64> = (0..pos.len() as u64).collect();
    let split = SmoothSplit {
        weights: None,
        uids: &uids,
        ellipsoids: true,
    };
    let clusters = decompose_cells_and_groups(&pos, &vel, 8, 0.5, &s, Some(&split)).unwrap();
    let groups: Vec<Vec<usize>> = clusters
        .iter()
        .filter(|c| c.label.starts_with("phase group"))
        .map(|c| c.members.clone())
        .collect();
    assert_eq!(
        groups.len(),
        1,
        "{:?}",
        clusters.iter().map(|c| &c.label).collect::<Vec<_>>()
    );
    let (purity, completeness) = best_match(&groups, &label, 2);
    eprintln!(
        "spherical: {disc_in_groups} disc particles in {} groups; with disc rings: satellite \
         purity {purity:.3}, completeness {completeness:.3}",
        spherical.groups.len()
    );
    assert!(
        purity > 0.95 && completeness > 0.9,
        "satellite: purity {purity:.3}, completeness {completeness:.3}"
    );
}

#[test]
fn streams_are_cut_by_their_shape_not_their_particle_count() {
    // Round groups stay whole; galaxy (c)'s stream (1 507 particles, elongation 65) keeps the
    // 15 pieces of ≥ 100 particles it always had.
    assert_eq!(stream_pieces(5_000, ELONGATED, 100), 1);
    assert_eq!(stream_pieces(5_000, f64::NAN, 100), 1);
    assert_eq!(stream_pieces(1_507, 65.0, 100), 15);
    // The same shape with 20x the particles: ⌈65 / 4⌉ = 17 pieces, not 301.
    assert_eq!(stream_pieces(30_140, 65.0, 100), 17);
    assert_eq!(
        stream_pieces(30_140, 65.0 / PIECE_ELONGATION * 4.0, 100),
        17
    );
    // Never a piece below min_members, never zero pieces.
    assert_eq!(stream_pieces(150, 65.0, 100), 1);
    assert_eq!(stream_pieces(50, 65.0, 100), 1);
    assert_eq!(stream_pieces(1_000, f64::INFINITY, 100), 10);
    // Through the decomposition: a straight tube 20 kpc long and 0.1 kpc wide, 6 000 particles
    // inside a Plummer sphere, is cut into ⌈elongation / 4⌉ pieces.
    let (mut pos, mut vel, _) = plummer_with_clump_and_tube(20_000, 0, 0, 5);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(6);
    let n0 = pos.len();
    for _ in 0..6_000 {
        let t: f64 = rng.random_range(-10.0..10.0);
        let g = |rng: &mut Xoshiro256PlusPlus, s: f64| -> f64 {
            let z: f64 = StandardNormal.sample(rng);
            s * z
        };
        pos.push([t, 5.0 + g(&mut rng, 0.1), g(&mut rng, 0.1)]);
        vel.push([30.0 + g(&mut rng, 2.0), g(&mut rng, 2.0), g(&mut rng, 2.0)]);
    }
    let s = PhaseGroupSettings::default();
    let clusters = decompose_cells_and_groups(&pos, &vel, 4, 0.5, &s, None).unwrap();
    let pieces: Vec<&Cluster> = clusters
        .iter()
        .filter(|c| c.label.contains(" piece "))
        .collect();
    let group: Vec<[f64; 3]> = pieces
        .iter()
        .flat_map(|c| c.members.iter().map(|&i| pos[i]))
        .collect();
    let from_tube = pieces
        .iter()
        .flat_map(|c| &c.members)
        .filter(|&&i| i >= n0)
        .count();
    let tube_share = from_tube as f64 / group.len().max(1) as f64;
    assert!(
        tube_share > 0.95,
        "the pieces are the tube: {tube_share:.3}"
    );
    let expected = (elongation(&group) / PIECE_ELONGATION).ceil() as usize;
    assert!(
        (10..=30).contains(&expected),
        "tube elongation {}",
        elongation(&group)
    );
    assert_eq!(
        pieces.len(),
        expected,
        "{:?}",
        clusters.iter().map(|c| &c.label).collect::<Vec<_>>()
    );
    assert!(pieces.iter().all(|c| c.members.len() >= s.min_members));
}

#[test]
fn a_stream_and_a_satellite_put_into_a_disc_galaxy_are_found_whole() {
    // Test galaxy (b) (50 000 particles) with test galaxy (c)'s stream (1 500 particles,
    // 0.15 kpc, 3 km/s) and satellite (1 500) put into it. Had the first pass's groups stayed in
    // the second pass's background, the satellite would keep 1 144 of its particles (it is a
    // large share of the sparse spheroid's shell) and the stream would fall apart (measured).
    let disc = galaxies::Model::by_name("disc")
        .unwrap()
        .draw(50_000, 1, None);
    let halo = galaxies::Model::by_name("stream")
        .unwrap()
        .draw(50_000, 1, None);
    let (mut pos, mut vel) = (disc.particles.position, disc.particles.velocity);
    let mut label = vec![0u8; pos.len()];
    for (i, &l) in halo.label.iter().enumerate() {
        if l > 0 {
            pos.push(halo.particles.position[i]);
            vel.push(halo.particles.velocity[i]);
            label.push(l);
        }
    }
    let uids: Vec<u64> = (0..pos.len() as u64).collect();
    let split = SmoothSplit {
        weights: None,
        uids: &uids,
        ellipsoids: true,
    };
    let s = PhaseGroupSettings::default();
    let clusters = decompose_cells_and_groups(&pos, &vel, 8, 0.5, &s, Some(&split)).unwrap();
    let grouped = phase_group_members(&clusters);
    let count = |l: u8| grouped.iter().filter(|&&i| label[i] == l).count();
    let (disc_in, stream_in, satellite_in) = (count(0), count(1), count(2));
    eprintln!("in groups: {disc_in} disc, {stream_in} stream, {satellite_in} satellite particles");
    assert!(
        disc_in <= 15,
        "{disc_in} disc particles taken for substructure"
    );
    assert!(
        stream_in >= 1_450 && satellite_in >= 1_450,
        "{stream_in} {satellite_in}"
    );
    // Neither falls apart: one group holds each.
    let whole = |l: u8| {
        clusters
            .iter()
            .filter(|c| c.members.iter().any(|&i| label[i] == l))
            .filter_map(phase_group_name)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert_eq!((whole(1), whole(2)), (1, 1));
}

/// Test galaxy (b) drawn with `n_disc` particles and a stream of `n_stream` laid into its
/// plane on a 90° arc at R = 9 kpc (0.15 kpc wide, 3 km/s), moving with the disc's mean rotation
/// there (the disc's own σ_R ≈ 23 km/s): the hardest place for the disc's rings, which match
/// its position and mean velocity. Returns the disc and stream particles in groups and the
/// number of groups, with `settings` and without growth.
fn in_plane_stream(
    n_disc: usize,
    n_stream: usize,
    settings: &PhaseGroupSettings,
) -> [(usize, usize, usize); 2] {
    let disc = galaxies::Model::by_name("disc")
        .unwrap()
        .draw(n_disc, 1, None);
    let (mut pos, mut vel) = (disc.particles.position, disc.particles.velocity);
    // The disc's mean v_φ in the stream's ring (|R − 9| < 0.5 kpc, |z| < 0.3 kpc).
    let ring: Vec<f64> = pos
        .iter()
        .zip(&vel)
        .filter(|(x, _)| (x[0].hypot(x[1]) - 9.0).abs() < 0.5 && x[2].abs() < 0.3)
        .map(|(x, v)| crate::fidelity::cylindrical_velocity(*x, *v)[1])
        .collect();
    let v_phi = ring.iter().sum::<f64>() / ring.len() as f64;
    assert!((150.0..210.0).contains(&v_phi), "disc rotation {v_phi}");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let mut g = |s: f64| -> f64 {
        let z: f64 = StandardNormal.sample(&mut rng);
        s * z
    };
    for k in 0..n_stream {
        let phi = std::f64::consts::FRAC_PI_2 * (k as f64 + 0.5) / n_stream as f64;
        let (c, s) = (phi.cos(), phi.sin());
        let r = 9.0 + g(0.15);
        pos.push([r * c, r * s, g(0.15)]);
        let (v_r, v_t) = (g(3.0), v_phi + g(3.0));
        vel.push([v_r * c - v_t * s, v_r * s + v_t * c, g(3.0)]);
    }
    let uids: Vec<u64> = (0..pos.len() as u64).collect();
    let split = SmoothSplit {
        weights: None,
        uids: &uids,
        ellipsoids: true,
    };
    let count = |s: &PhaseGroupSettings| {
        let clusters = decompose_cells_and_groups(&pos, &vel, 8, 0.5, s, Some(&split)).unwrap();
        let grouped = phase_group_members(&clusters);
        let stream = grouped.iter().filter(|&&i| i >= n_disc).count();
        let groups: std::collections::BTreeSet<&str> =
            clusters.iter().filter_map(phase_group_name).collect();
        (grouped.len() - stream, stream, groups.len())
    };
    let strict = PhaseGroupSettings {
        grow_contrast: settings.contrast,
        ..settings.clone()
    };
    [count(settings), count(&strict)]
}

#[test]
fn a_cold_stream_co_rotating_in_the_disc_plane_is_found_whole() {
    // (b) at 50 000 particles with a 1 500-particle stream in its plane. The first pass
    // (spherical shells) finds it whole; against the disc's rings its contrast is 72 at the
    // median but 16% of it under 30 (measured), so without growth 1 266 were kept.
    let [(disc_in, stream_in, groups), strict] =
        in_plane_stream(50_000, 1_500, &PhaseGroupSettings::default());
    eprintln!(
        "in groups: {disc_in} disc, {stream_in} stream particles in {groups} group(s); without \
         growth {} disc, {} stream",
        strict.0, strict.1
    );
    assert!(
        stream_in >= 1_450 && disc_in <= 50 && groups == 1,
        "{stream_in} stream, {disc_in} disc particles in {groups} groups"
    );
    // Growth is what finds it: without it a sixth of the stream is left to the disc's cells.
    assert!(strict.1 < 1_350, "without growth {} found", strict.1);
}

#[test]
#[ignore = "measurement at 10^6 particles, ~3.5 minutes on 2 cores: cargo test --release -- --ignored in_plane"]
fn in_plane_streams_in_a_disc_of_a_million_particles() {
    for n_stream in [1_500, 30_000] {
        let [(disc_in, stream_in, groups), strict] =
            in_plane_stream(1_000_000, n_stream, &PhaseGroupSettings::default());
        eprintln!(
            "10^6 disc + {n_stream}-particle stream: {disc_in} disc, {stream_in} stream particles \
             in {groups} group(s); without growth {} disc, {} stream in {} group(s)",
            strict.0, strict.1, strict.2
        );
        assert!(disc_in <= stream_in / 10, "{disc_in} disc particles");
    }
}

#[test]
fn the_disc_component_hands_the_centre_to_the_spheroid_where_the_spheroid_dominates() {
    // A hot disc (V/σ = 1.4) inside a Hernquist sphere as massive: within 1 kpc about one
    // particle in five is the disc's. There the disc component keeps only the share λ = p̄ / ½
    // of the rotating population, its velocities' shape unchanged, and the spheroid takes the
    // rest, rotation and all; beyond the radius where the disc is half its shell nothing moves.
    let (pos, vel, label) = disc_and_spheroid(20_000, 20_000, 15.0, (100.0, 70.0), 13);
    let uids: Vec<u64> = (0..pos.len() as u64).collect();
    let prob = DiscProbability::fit(&pos, &vel, None, true);
    let r = |x: &[f64; 3]| crate::fidelity::radius(*x);
    for (x, v) in pos.iter().zip(&vel) {
        let (p, p_kept) = (prob.rotating(*x, *v), prob.at(*x, *v));
        assert!(p_kept <= p + 1e-12 && p_kept >= 0.0);
        if r(x) > 12.0 {
            assert_eq!(p_kept, p, "hand-over at r {}", r(x));
        }
    }
    let split = split_disc_spheroid(&pos, &vel, None, &uids, true).expect("split");
    let mut in_disc = vec![false; pos.len()];
    for &i in &split.disc {
        in_disc[i] = true;
    }
    let inner: Vec<usize> = (0..pos.len()).filter(|&i| r(&pos[i]) < 1.0).collect();
    let mean =
        |f: &dyn Fn(usize) -> f64| inner.iter().map(|&i| f(i)).sum::<f64>() / inner.len() as f64;
    let true_share = mean(&|i| f64::from(u8::from(label[i] == 0)));
    let rotating_share = mean(&|i| prob.rotating(pos[i], vel[i]));
    let expected = mean(&|i| prob.rotating(pos[i], vel[i]).powi(2));
    let disc_share = mean(&|i| f64::from(u8::from(in_disc[i])));
    eprintln!(
        "inner kpc ({} particles): true disc {true_share:.3}, rotating p {rotating_share:.3}, \
         disc component {disc_share:.3}",
        inner.len()
    );
    assert!(true_share < 0.3 && (rotating_share - true_share).abs() < 0.08);
    // λ ≈ p̄ / ½ with p̄ ≈ the rotating share: the disc keeps about 2 p̄² of the inner kpc.
    assert!(disc_share < 0.75 * rotating_share, "{disc_share}");
    assert!(
        disc_share > 0.25 * rotating_share,
        "{disc_share} {expected}"
    );
    // What the disc keeps still rotates as the disc; the spheroid's inner part now carries the
    // rest of the disc's rotation.
    let inner_mean_vphi = |set: &dyn Fn(usize) -> bool| {
        mean_vphi(&pos, &vel, inner.iter().copied().filter(|&i| set(i)))
    };
    let inner_sph = inner_mean_vphi(&|i| !in_disc[i]);
    let inner_true_sph = inner_mean_vphi(&|i| label[i] == 1);
    let inner_disc = inner_mean_vphi(&|i| in_disc[i]);
    eprintln!("inner kpc mean v_φ: disc {inner_disc:.1}, spheroid {inner_sph:.1} (true {inner_true_sph:.1}) km/s");
    assert!(
        inner_sph > inner_true_sph + 5.0,
        "{inner_sph} {inner_true_sph}"
    );
    assert!(inner_disc > 60.0, "{inner_disc}");
}
