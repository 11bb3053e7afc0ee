//! Unit conversions against hand-computed values, on files written by hand (not by write_snapshot).

mod common;

use std::path::Path;

use snapio::{cosmic_time_gyr, scale_factor_at_time_gyr, Layout, ReadOptions, Snapshot};

fn attr(loc: &hdf5::Location, name: &str, v: f64) {
    loc.new_attr::<f64>()
        .create(name)
        .unwrap()
        .write_scalar(&v)
        .unwrap();
}
fn attr_i(loc: &hdf5::Location, name: &str, v: i32) {
    loc.new_attr::<i32>()
        .create(name)
        .unwrap()
        .write_scalar(&v)
        .unwrap();
}
fn attr6(loc: &hdf5::Location, name: &str, v: [u32; 6]) {
    loc.new_attr::<u32>()
        .shape(6)
        .create(name)
        .unwrap()
        .write_raw(&v)
        .unwrap();
}
fn attr6f(loc: &hdf5::Location, name: &str, v: [f64; 6]) {
    loc.new_attr::<f64>()
        .shape(6)
        .create(name)
        .unwrap()
        .write_raw(&v)
        .unwrap();
}
fn ds1(g: &hdf5::Group, name: &str, v: &[f32]) {
    g.new_dataset_builder().with_data(v).create(name).unwrap();
}
fn ds3(g: &hdf5::Group, name: &str, v: &[[f64; 3]]) {
    let flat: Vec<f64> = v.iter().flatten().copied().collect();
    let a = ndarray::Array2::from_shape_vec((v.len(), 3), flat).unwrap();
    g.new_dataset_builder().with_data(&a).create(name).unwrap();
}

/// Common header attributes for one star.
fn header(f: &hdf5::File, time: f64) -> hdf5::Group {
    let h = f.create_group("Header").unwrap();
    attr6(&h, "NumPart_ThisFile", [0, 0, 0, 0, 1, 0]);
    attr6(&h, "NumPart_Total", [0, 0, 0, 0, 1, 0]);
    attr6f(&h, "MassTable", [0.0; 6]);
    attr(&h, "Time", time);
    attr_i(&h, "NumFilesPerSnapshot", 1);
    h
}

fn read_one(path: &Path) -> (snapio::StarParticles, Snapshot) {
    let snap = Snapshot::open(path).unwrap();
    let (s, _) = snap.read_stars(&ReadOptions::default()).unwrap();
    assert_eq!(s.len(), 1);
    (s, snap)
}

#[test]
fn tng_code_units_to_physical() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tng.hdf5");
    {
        let f = hdf5::File::create(&p).unwrap();
        let h = header(&f, 0.5);
        attr(&h, "Redshift", 1.0);
        attr(&h, "HubbleParam", 0.7);
        attr(&h, "Omega0", 0.3);
        attr(&h, "OmegaLambda", 0.7);
        attr(&h, "UnitLength_in_cm", 3.085678e21);
        attr(&h, "UnitMass_in_g", 1.989e43);
        attr(&h, "UnitVelocity_in_cm_per_s", 1e5);
        let g = f.create_group("PartType4").unwrap();
        ds3(&g, "Coordinates", &[[1000.0, 700.0, -350.0]]);
        ds3(&g, "Velocities", &[[100.0, 0.0, -50.0]]);
        ds1(&g, "Masses", &[1e-4]);
        ds1(&g, "GFM_InitialMass", &[2e-4]);
        ds1(&g, "GFM_StellarFormationTime", &[0.25]);
        ds1(&g, "GFM_Metallicity", &[0.02]);
        g.new_dataset_builder()
            .with_data(&[42u64])
            .create("ParticleIDs")
            .unwrap();
    }
    let (s, snap) = read_one(&p);
    assert_eq!(snap.layout(), Layout::ArepoTng);
    // ckpc/h → kpc: × a / h = × 0.5 / 0.7.
    let x = s.position[0];
    assert!(
        (x[0] - 714.285714285).abs() < 1e-6
            && (x[1] - 500.0).abs() < 1e-9
            && (x[2] + 250.0).abs() < 1e-9,
        "{x:?}"
    );
    // km/s·sqrt(a) → km/s: × sqrt(0.5).
    assert!(
        (s.velocity[0][0] - 70.710678).abs() < 1e-5 && (s.velocity[0][2] + 35.355339).abs() < 1e-5
    );
    // 1e10 Msun/h: 1e-4 → 1e6 / 0.7 Msun (f32 storage).
    assert!(
        (s.mass[0] / 1.4285714e6 - 1.0).abs() < 1e-6,
        "{}",
        s.mass[0]
    );
    assert!((s.initial_mass[0] / 2.8571429e6 - 1.0).abs() < 1e-6);
    assert_eq!(s.id[0], 42);
    assert!((s.metallicity[0] - 0.02).abs() < 1e-8);
    // Age: t(0.5) - t(0.25) with h=0.7, Ωm=0.3 (hand values from the closed form: 5.7516 and 2.1125 Gyr).
    let t05 = cosmic_time_gyr(0.5, 0.7, 0.3, 0.7);
    let t025 = cosmic_time_gyr(0.25, 0.7, 0.3, 0.7);
    assert!((t05 - 5.7516).abs() < 1e-3, "t(0.5) = {t05}");
    assert!((t025 - 2.1125).abs() < 1e-3, "t(0.25) = {t025}");
    assert!((s.age[0] - (t05 - t025)).abs() < 1e-5);
}

#[test]
fn gadget4_parameters_group_and_mpc_units() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g4.hdf5");
    {
        let f = hdf5::File::create(&p).unwrap();
        let _h = header(&f, 0.8);
        let par = f.create_group("Parameters").unwrap();
        attr(&par, "HubbleParam", 0.6774);
        attr(&par, "Omega0", 0.3089);
        attr(&par, "OmegaLambda", 0.6911);
        attr_i(&par, "ComovingIntegrationOn", 1);
        attr(&par, "UnitLength_in_cm", 3.085678e24); // Mpc/h
        attr(&par, "UnitMass_in_g", 1.989e43);
        attr(&par, "UnitVelocity_in_cm_per_s", 1e5);
        f.create_group("Config").unwrap();
        let g = f.create_group("PartType4").unwrap();
        ds3(&g, "Coordinates", &[[1.0, 2.0, 3.0]]);
        ds3(&g, "Velocities", &[[10.0, 20.0, 30.0]]);
        ds1(&g, "Masses", &[1e-5]);
        ds1(&g, "StellarFormationTime", &[0.8]);
        g.new_dataset_builder()
            .with_data(&[7u32])
            .create("ParticleIDs")
            .unwrap();
    }
    let snap = Snapshot::open(&p).unwrap();
    let (s, report) = snap.read_stars(&ReadOptions::default()).unwrap();
    assert_eq!(snap.layout(), Layout::Gadget4);
    // 1 Mpc/h comoving at a=0.8, h=0.6774 → 1000 × 0.8 / 0.6774 kpc.
    assert!(
        (s.position[0][0] - 1180.9861234130).abs() < 1e-6,
        "{:?}",
        s.position[0]
    );
    assert!((s.velocity[0][1] - 20.0 * 0.8f64.sqrt()).abs() < 1e-5);
    assert!((s.mass[0] / (1e5 / 0.6774) - 1.0).abs() < 1e-6);
    assert!(s.age[0].abs() < 1e-6, "formed at the snapshot time: age 0");
    assert_eq!(s.metallicity[0], 0.0);
    assert!(report
        .notes
        .iter()
        .any(|n| n.contains("Metallicity absent")));
    assert_eq!(s.initial_mass[0], s.mass[0]);
}

#[test]
fn fire_non_cosmological_time_units_and_metallicity_column_0() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fire.hdf5");
    {
        let f = hdf5::File::create(&p).unwrap();
        let h = header(&f, 2.0);
        attr(&h, "Redshift", 0.0);
        attr(&h, "HubbleParam", 0.7);
        attr_i(&h, "ComovingIntegrationOn", 0);
        attr_i(&h, "GIZMO_version", 2022);
        let g = f.create_group("PartType4").unwrap();
        ds3(&g, "Coordinates", &[[7.0, 0.0, 0.0]]);
        ds3(&g, "Velocities", &[[100.0, 0.0, 0.0]]);
        ds1(&g, "Masses", &[7e-6]);
        ds1(&g, "StellarFormationTime", &[0.5]);
        let z = ndarray::Array2::from_shape_vec(
            (1, 11),
            vec![
                0.015f32, 0.27, 0.001, 0.002, 0.003, 0.004, 0.0, 0.0, 0.0, 0.0, 0.0,
            ],
        )
        .unwrap();
        g.new_dataset_builder()
            .with_data(&z)
            .create("Metallicity")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&[3u32])
            .create("ParticleIDs")
            .unwrap();
    }
    let (s, snap) = read_one(&p);
    assert_eq!(snap.layout(), Layout::GizmoFire);
    assert!(!snap.header().cosmological);
    assert!(
        snap.notes().iter().any(|n| n.contains("h-scaled")),
        "{:?}",
        snap.notes()
    );
    // a = 1, lengths / h: 7 / 0.7 = 10 kpc; velocities unchanged; mass 7e4/0.7 = 1e5 Msun.
    assert!((s.position[0][0] - 10.0).abs() < 1e-9);
    assert!((s.velocity[0][0] - 100.0).abs() < 1e-9);
    assert!((s.mass[0] / 1e5 - 1.0).abs() < 1e-6);
    // Code time unit: kpc/(km/s)/h = 0.977792/0.7 Gyr; age = (2.0 − 0.5) × that.
    let unit: f64 = 3.085678e21 / 1e5 / 3.15576e16 / 0.7;
    assert!((unit - 1.39684).abs() < 1e-4);
    assert!((s.age[0] - 1.5 * unit).abs() < 1e-6, "{}", s.age[0]);
    assert!((s.metallicity[0] - 0.015).abs() < 1e-8);
}

#[test]
fn cosmic_time_hand_values() {
    // Planck 2015 (h = 0.6774, Ωm = 0.3089): age of the universe 13.80 Gyr.
    let t0 = cosmic_time_gyr(1.0, 0.6774, 0.3089, 0.6911);
    assert!((t0 - 13.80).abs() < 0.01, "{t0}");
    // Einstein–de Sitter: t = 2/(3 H0) a^1.5, H0 = h / 9.7779222 Gyr⁻¹.
    let eds = cosmic_time_gyr(0.25, 0.5, 1.0, 0.0);
    assert!((eds - 2.0 / 3.0 * 9.7779222 / 0.5 * 0.125).abs() < 1e-9);
    // Inverse.
    for a in [0.05, 0.3, 0.77, 1.0] {
        let t = cosmic_time_gyr(a, 0.6774, 0.3089, 0.6911);
        assert!((scale_factor_at_time_gyr(t, 0.6774, 0.3089, 0.6911) - a).abs() < 1e-10);
    }
}

#[test]
fn particle_totals_use_the_high_word() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.hdf5");
    {
        let f = hdf5::File::create(&p).unwrap();
        let h = f.create_group("Header").unwrap();
        attr6(&h, "NumPart_ThisFile", [0, 0, 0, 0, 5, 0]);
        attr6(&h, "NumPart_Total", [0, 0, 0, 0, 5, 0]);
        attr6(&h, "NumPart_Total_HighWord", [0, 0, 0, 0, 1, 0]);
        attr6f(&h, "MassTable", [0.0; 6]);
        attr(&h, "Time", 1.0);
        attr(&h, "Redshift", 0.0);
        attr(&h, "HubbleParam", 0.7);
        attr(&h, "Omega0", 0.3);
        attr_i(&h, "ComovingIntegrationOn", 1);
    }
    let snap = Snapshot::open(&p).unwrap();
    assert_eq!(snap.header().num_part_total[4], (1u64 << 32) + 5);
    assert!((snapio::G_KPC_KMS2_MSUN - 4.30091727e-6).abs() < 1e-15);
}
