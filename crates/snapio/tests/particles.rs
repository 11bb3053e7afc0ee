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
