//! StarParticles helpers and sphere selection.

mod common;

use common::sample_stars;
use snapio::{select_sphere, Sphere};

#[test]
fn select_retain_and_sphere() {
    let s = sample_stars(1000, 8, [10.0, 0.0, 0.0], 5.0);
    assert_eq!(s.len(), 1000);
    assert!(!s.is_empty());
    let picked = s.select(&[5, 1, 5]);
    assert_eq!(picked.len(), 3);
    assert_eq!(picked.id, vec![s.id[5], s.id[1], s.id[5]]);
    assert_eq!(picked.position[1], s.position[1]);

    let mut r = s.clone();
    r.retain(|p, i| p.mass[i] > 5e4);
    assert!(r.len() > 300 && r.len() < 700, "{}", r.len());
    assert!(r.mass.iter().all(|&m| m > 5e4));
    assert_eq!(r.check_lengths().unwrap(), r.len());

    let sphere = Sphere {
        center: [10.0, 0.0, 0.0],
        radius: 12.0,
    };
    let inside = select_sphere(&s, &sphere);
    let expected = s
        .position
        .iter()
        .filter(|p| (p[0] - 10.0).powi(2) + p[1].powi(2) + p[2].powi(2) <= 144.0)
        .count();
    assert_eq!(inside.len(), expected);
    assert!(inside.position.iter().all(|&p| sphere.contains(p)));
}

#[test]
fn identity_columns_follow_select_retain_extend_and_push() {
    let plain = sample_stars(4, 1, [0.0; 3], 5.0);
    let mut fire = sample_stars(3, 2, [0.0; 3], 5.0);
    fire.child_id = vec![0, 7, 2];
    fire.generation = vec![0, 1, 3];
    // Absent columns stay absent.
    assert!(plain.select(&[3, 0]).child_id.is_empty());
    assert_eq!(plain.uids(), plain.id);
    // Mixing pads the particles without numbers with 0.
    let mut all = plain.clone();
    all.extend(&fire);
    assert_eq!(all.child_id, vec![0, 0, 0, 0, 0, 7, 2]);
    assert_eq!(all.generation, vec![0, 0, 0, 0, 0, 1, 3]);
    assert_eq!(all.check_lengths().unwrap(), 7);
    let mut pushed = plain.select(&[0]);
    pushed.push_from(&fire, 1);
    pushed.push_from(&plain, 2);
    assert_eq!(pushed.child_id, vec![0, 7, 0]);
    assert_eq!(pushed.generation, vec![0, 1, 0]);
    assert_eq!(pushed.uid(0), plain.id[0]);
    assert_eq!(pushed.uid(1), snapio::particle_uid(fire.id[1], 7, 1));
    assert_ne!(pushed.uid(1), fire.id[1]);
    all.retain(|_, i| i % 2 == 1);
    assert_eq!(all.child_id, vec![0, 0, 7]);
    assert_eq!(all.generation, vec![0, 0, 1]);
    // A column of the wrong length is reported.
    let mut bad = fire.clone();
    bad.generation.pop();
    assert!(bad
        .check_lengths()
        .unwrap_err()
        .to_string()
        .contains("generation"));
    // The identity scheme: the ParticleID for (0, 0); a bijection of IDs for one pair.
    assert_eq!(snapio::particle_uid(12345, 0, 0), 12345);
    let mut u: Vec<u64> = (0..10_000u64)
        .map(|id| snapio::particle_uid(id, 1, 1))
        .collect();
    u.extend((0..10_000u64).map(|id| snapio::particle_uid(id, 2, 1)));
    u.extend(0..10_000u64);
    u.sort_unstable();
    u.dedup();
    assert_eq!(u.len(), 30_000);
}
