//! Malformed snapshots, one table row per variant and layout: the error names the file, the
//! dataset, the row and the value; under `on_invalid = "drop"` the particle is removed, counted
//! by kind, and the other particles are exactly those of the intact file.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::sample_stars;
use snapio::{
    particle_uid, write_snapshot, Header, InvalidPolicy, Layout, ReadOptions, ReadReport,
    SnapError, Snapshot, StarParticles,
};

const N: usize = 200;
/// The row every variant spoils.
const ROW: usize = 57;
/// Scale factor of the fixtures.
const A: f64 = 0.5;
const LAYOUTS: [Layout; 3] = [Layout::GizmoFire, Layout::Gadget4, Layout::ArepoTng];

/// Which fixture a variant starts from.
#[derive(Clone, Copy, PartialEq)]
enum Fixture {
    /// Periodic box of 100 cMpc/h, stars around (10, 10, 10) Mpc.
    Boxed,
    /// No BoxSize (non-periodic run), stars around the origin.
    NoBox,
    /// Boxed, with FIRE child/generation numbers; rows ROW and 3 share ParticleIDs.
    Children,
}

fn stars(fixture: Fixture) -> StarParticles {
    let center = if fixture == Fixture::NoBox {
        [0.0; 3]
    } else {
        [1e4; 3]
    };
    let mut s = sample_stars(N, 3, center, 4.0);
    if fixture == Fixture::Children {
        s.child_id = (0..N as u32).map(|i| i % 3).collect();
        s.generation = (0..N as u32).map(|i| u32::from(i % 3 != 0)).collect();
        s.id[ROW] = s.id[3];
        s.child_id[3] = 0;
        s.generation[3] = 0;
        s.child_id[ROW] = 1;
        s.generation[ROW] = 1;
    }
    s
}

fn header(fixture: Fixture) -> Header {
    Header {
        box_size: if fixture == Fixture::NoBox { 0.0 } else { 1e5 },
        ..Header::cosmological_at(A)
    }
}

fn write(dir: &Path, layout: Layout, fixture: Fixture) -> PathBuf {
    let path = dir.join(format!("snap_{layout:?}.hdf5").to_lowercase());
    write_snapshot(&path, layout, &header(fixture), &stars(fixture), None, 1).unwrap();
    path
}

fn read(path: &Path, on_invalid: InvalidPolicy) -> Result<(StarParticles, ReadReport), SnapError> {
    Snapshot::open(path)?.read_stars(&ReadOptions {
        chunk_len: 50,
        on_invalid,
        ..ReadOptions::default()
    })
}

/// Sets element (row, col) of a 1-D or 2-D float or integer dataset.
fn poke(path: &Path, dataset: &str, row: usize, col: usize, value: f64) {
    let f = hdf5::File::open_rw(path).unwrap();
    let d = f.dataset(dataset).unwrap();
    let int = matches!(
        d.dtype().unwrap().to_descriptor().unwrap(),
        hdf5::types::TypeDescriptor::Integer(_) | hdf5::types::TypeDescriptor::Unsigned(_)
    );
    if d.ndim() == 2 {
        let mut a = d.read_2d::<f64>().unwrap();
        a[[row, col]] = value;
        d.write(&a).unwrap();
    } else if int {
        let mut a = d.read_raw::<i64>().unwrap();
        a[row] = value as i64;
        d.write_raw(&a).unwrap();
    } else {
        let mut a = d.read_raw::<f64>().unwrap();
        a[row] = value;
        d.write_raw(&a).unwrap();
    }
}

fn metallicity(layout: Layout) -> String {
    format!("PartType4/{}", layout.metallicity_dataset())
}

fn formation_time(layout: Layout) -> String {
    format!("PartType4/{}", layout.formation_time_dataset())
}

/// One malformed variant: how to spoil a fixture and what must come out.
struct Variant {
    name: &'static str,
    fixture: Fixture,
    /// Layouts it applies to.
    layouts: &'static [Layout],
    spoil: fn(&Path, Layout),
    /// Message fragments besides the file name and the dataset.
    fragments: &'static [&'static str],
    dataset: fn(Layout) -> String,
    /// Kind counted under "drop"; `None`: a structural error that "drop" does not hide.
    drop_kind: Option<&'static str>,
}

fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "negative mass",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, _| poke(p, "PartType4/Masses", ROW, 0, -0.25),
            fragments: &["row 57", "-2.5e-1", "mass <= 0"],
            dataset: |_| "PartType4/Masses".into(),
            drop_kind: Some("nonpositive_mass"),
        },
        Variant {
            name: "zero mass",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, _| poke(p, "PartType4/Masses", ROW, 0, 0.0),
            fragments: &["row 57", "value 0e0", "mass <= 0"],
            dataset: |_| "PartType4/Masses".into(),
            drop_kind: Some("nonpositive_mass"),
        },
        Variant {
            name: "negative initial mass",
            fixture: Fixture::Boxed,
            layouts: &[Layout::ArepoTng],
            spoil: |p, _| poke(p, "PartType4/GFM_InitialMass", ROW, 0, -0.125),
            fragments: &["row 57", "-1.25e-1", "mass <= 0"],
            dataset: |_| "PartType4/GFM_InitialMass".into(),
            drop_kind: Some("nonpositive_initial_mass"),
        },
        Variant {
            name: "NaN metallicity",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, l| poke(p, &metallicity(l), ROW, 0, f64::NAN),
            fragments: &["row 57", "NaN", "finite"],
            dataset: metallicity,
            drop_kind: Some("nonfinite_metallicity"),
        },
        Variant {
            name: "metallicity above 1",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, l| poke(p, &metallicity(l), ROW, 0, 1.5),
            fragments: &["row 57", "1.5e0", "outside [0, 1]"],
            dataset: metallicity,
            drop_kind: Some("metallicity_out_of_range"),
        },
        Variant {
            name: "formation after the snapshot",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, l| poke(p, &formation_time(l), ROW, 0, 0.75),
            fragments: &["row 57", "7.5e-1", "formed after the snapshot"],
            dataset: formation_time,
            drop_kind: Some("age_out_of_range"),
        },
        Variant {
            name: "position 1e30 kpc in a periodic box",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, _| poke(p, "PartType4/Coordinates", ROW, 1, 1e30),
            fragments: &[
                "row 57",
                "1e30",
                "outside the periodic box",
                "BoxSize = 100000",
            ],
            dataset: |_| "PartType4/Coordinates".into(),
            drop_kind: Some("position_out_of_box"),
        },
        Variant {
            name: "position 1e30 kpc without a box",
            fixture: Fixture::NoBox,
            layouts: &LAYOUTS,
            spoil: |p, _| poke(p, "PartType4/Coordinates", ROW, 1, 1e30),
            fragments: &["row 57", "1e30", "non-periodic"],
            dataset: |_| "PartType4/Coordinates".into(),
            drop_kind: Some("position_out_of_box"),
        },
        Variant {
            name: "NaN position",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, _| poke(p, "PartType4/Coordinates", ROW, 2, f64::NAN),
            fragments: &["row 57", "NaN", "finite"],
            dataset: |_| "PartType4/Coordinates".into(),
            drop_kind: Some("nonfinite_position"),
        },
        Variant {
            name: "infinite velocity",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, _| poke(p, "PartType4/Velocities", ROW, 0, f64::INFINITY),
            fragments: &["row 57", "inf", "finite"],
            dataset: |_| "PartType4/Velocities".into(),
            drop_kind: Some("nonfinite_velocity"),
        },
        Variant {
            name: "duplicate ParticleIDs without child numbers",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, _| {
                let id3 = 1000.0 + 7.0 * 3.0;
                poke(p, "PartType4/ParticleIDs", ROW, 0, id3)
            },
            fragments: &[
                "row 3",
                "row 57",
                "duplicate particle identity 1021",
                "ParticleIDs 1021",
            ],
            dataset: |_| "PartType4/ParticleIDs".into(),
            drop_kind: Some("duplicate_id"),
        },
        Variant {
            name: "duplicate (ParticleIDs, child, generation)",
            fixture: Fixture::Children,
            layouts: &LAYOUTS,
            spoil: |p, _| {
                poke(p, "PartType4/ParticleChildIDsNumber", ROW, 0, 0.0);
                poke(p, "PartType4/ParticleIDGenerationNumber", ROW, 0, 0.0);
            },
            fragments: &[
                "row 3",
                "row 57",
                "ParticleIDs 1021",
                "ParticleChildIDsNumber 0",
            ],
            dataset: |_| "PartType4/ParticleIDs".into(),
            drop_kind: Some("duplicate_id"),
        },
        Variant {
            name: "negative child number",
            fixture: Fixture::Children,
            layouts: &[Layout::GizmoFire],
            spoil: |p, _| {
                let f = hdf5::File::open_rw(p).unwrap();
                let g = f.group("PartType4").unwrap();
                let mut v = g
                    .dataset("ParticleChildIDsNumber")
                    .unwrap()
                    .read_raw::<i64>()
                    .unwrap();
                v[ROW] = -4;
                g.unlink("ParticleChildIDsNumber").unwrap();
                g.new_dataset_builder()
                    .with_data(&v)
                    .create("ParticleChildIDsNumber")
                    .unwrap();
            },
            fragments: &["row 57", "value -4", "[0, 2^32 - 1]"],
            dataset: |_| "PartType4/ParticleChildIDsNumber".into(),
            drop_kind: Some("child_id_out_of_range"),
        },
        Variant {
            name: "missing dataset",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, _| {
                let f = hdf5::File::open_rw(p).unwrap();
                f.group("PartType4").unwrap().unlink("Velocities").unwrap();
            },
            fragments: &["missing dataset"],
            dataset: |_| "PartType4/Velocities".into(),
            drop_kind: None,
        },
        Variant {
            name: "wrong shape",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, _| {
                let g = hdf5::File::open_rw(p).unwrap().group("PartType4").unwrap();
                g.unlink("Masses").unwrap();
                g.new_dataset_builder()
                    .with_data(&vec![1e-5f32; N - 1])
                    .create("Masses")
                    .unwrap();
            },
            fragments: &["expected shape (200,)", "[199]"],
            dataset: |_| "PartType4/Masses".into(),
            drop_kind: None,
        },
        Variant {
            name: "header count disagreeing with the file",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, _| {
                let h = hdf5::File::open_rw(p).unwrap().group("Header").unwrap();
                h.delete_attr("NumPart_Total").unwrap();
                h.new_attr::<u64>()
                    .shape(6)
                    .create("NumPart_Total")
                    .unwrap()
                    .write_raw(&[0u64, 0, 0, 0, 300, 0])
                    .unwrap();
            },
            fragments: &["is 200", "is 300"],
            dataset: |_| "NumPart_Total[4]".into(),
            drop_kind: None,
        },
        Variant {
            name: "no PartType4 group",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, _| {
                hdf5::File::open_rw(p).unwrap().unlink("PartType4").unwrap();
            },
            fragments: &["missing group", "NumPart_ThisFile[4] = 200"],
            dataset: |_| "PartType4".into(),
            drop_kind: None,
        },
        Variant {
            name: "truncated file",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, _| {
                let bytes = std::fs::read(p).unwrap();
                std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
            },
            fragments: &[],
            dataset: |_| String::new(),
            drop_kind: None,
        },
        Variant {
            name: "not an HDF5 file",
            fixture: Fixture::Boxed,
            layouts: &LAYOUTS,
            spoil: |p, _| std::fs::write(p, "x,y,z\n1,2,3\n").unwrap(),
            fragments: &["not an HDF5 file"],
            dataset: |_| String::new(),
            drop_kind: None,
        },
    ]
}

/// The particles of the intact file without row ROW (what "drop" must return).
fn intact_without_row(dir: &Path, layout: Layout, fixture: Fixture) -> StarParticles {
    let sub = dir.join("intact");
    std::fs::create_dir_all(&sub).unwrap();
    let p = write(&sub, layout, fixture);
    let (mut s, _) = read(&p, InvalidPolicy::Error).unwrap();
    let mut i = 0;
    s.retain(|_, _| {
        i += 1;
        i - 1 != ROW
    });
    s
}

#[test]
fn every_malformed_variant_is_named_or_dropped_and_counted() {
    let mut checked = 0;
    for v in variants() {
        for &layout in v.layouts {
            let dir = tempfile::tempdir().unwrap();
            let p = write(dir.path(), layout, v.fixture);
            (v.spoil)(&p, layout);
            let what = format!("{} ({layout})", v.name);
            let e = read(&p, InvalidPolicy::Error)
                .err()
                .unwrap_or_else(|| panic!("{what}: read without error"));
            let msg = e.to_string();
            let file = p.file_name().unwrap().to_str().unwrap();
            assert!(msg.contains(file), "{what}: no file name in: {msg}");
            let ds = (v.dataset)(layout);
            assert!(msg.contains(&ds), "{what}: no `{ds}` in: {msg}");
            for f in v.fragments {
                assert!(msg.contains(f), "{what}: no `{f}` in: {msg}");
            }
            match v.drop_kind {
                None => {
                    let e2 = read(&p, InvalidPolicy::Drop)
                        .err()
                        .unwrap_or_else(|| panic!("{what}: drop hid a structural error"));
                    assert_eq!(e2.to_string(), msg, "{what}");
                }
                Some(kind) => {
                    let (s, report) = read(&p, InvalidPolicy::Drop)
                        .unwrap_or_else(|e| panic!("{what}: drop failed: {e}"));
                    let expected: BTreeMap<String, u64> = [(kind.to_string(), 1)].into();
                    assert_eq!(report.invalid_dropped, expected, "{what}");
                    assert_eq!(report.stars_kept, (N - 1) as u64, "{what}");
                    assert!(
                        report.notes.iter().any(|n| n.contains(kind)),
                        "{what}: {:?}",
                        report.notes
                    );
                    let want = intact_without_row(dir.path(), layout, v.fixture);
                    if kind == "duplicate_id" {
                        // Same particles but for row ROW's identity fields.
                        assert_eq!(s.position, want.position, "{what}");
                        assert_eq!(s.mass, want.mass, "{what}");
                    } else {
                        assert_eq!(s, want, "{what}: drop changed other particles");
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 50, "{checked}");
}

#[test]
fn negative_mass_is_refused_or_dropped_and_the_bulk_velocity_is_that_of_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), Layout::ArepoTng, Fixture::Boxed);
    let (good, _) = read(&p, InvalidPolicy::Error).unwrap();
    // A large negative mass on a fast particle: the mass-weighted mean velocity moves a lot.
    poke(&p, "PartType4/Velocities", ROW, 0, 3000.0);
    poke(&p, "PartType4/Masses", ROW, 0, -5e-4);
    let e = read(&p, InvalidPolicy::Error).unwrap_err();
    assert!(
        matches!(e, SnapError::InvalidValue { row: 57, .. }),
        "{e:?}"
    );
    let (s, report) = read(&p, InvalidPolicy::Drop).unwrap();
    assert_eq!(report.invalid_dropped["nonpositive_mass"], 1);
    let bulk = |s: &StarParticles| {
        let m: f64 = s.mass.iter().sum();
        (0..s.len())
            .map(|i| s.mass[i] * s.velocity[i][0])
            .sum::<f64>()
            / m
    };
    let mut kept = good.clone();
    let mut i = 0;
    kept.retain(|_, _| {
        i += 1;
        i - 1 != ROW
    });
    assert_eq!(bulk(&s), bulk(&kept));
    assert!(
        (bulk(&s) - bulk(&good)).abs() < 5.0,
        "{} vs {}",
        bulk(&s),
        bulk(&good)
    );
}

#[test]
fn child_numbers_make_shared_particle_ids_unique() {
    for layout in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), layout, Fixture::Children);
        let (s, report) = read(&p, InvalidPolicy::Error).unwrap();
        assert_eq!(s.len(), N);
        assert_eq!(s.id[3], s.id[ROW]);
        assert_eq!((s.child(ROW), s.generation_of(ROW)), (1, 1));
        assert_ne!(s.uid(3), s.uid(ROW));
        assert_eq!(
            s.uid(3),
            s.id[3],
            "child 0 generation 0 keeps the ParticleID"
        );
        assert_eq!(s.uid(ROW), particle_uid(s.id[ROW], 1, 1));
        let mut u = s.uids();
        u.sort_unstable();
        u.dedup();
        assert_eq!(u.len(), N);
        assert!(report
            .notes
            .iter()
            .any(|n| n.contains("ParticleChildIDsNumber")));
    }
    // Without child numbers the identity is the ParticleID, bit for bit.
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), Layout::GizmoFire, Fixture::Boxed);
    let (s, _) = read(&p, InvalidPolicy::Error).unwrap();
    assert!(s.child_id.is_empty() && s.generation.is_empty());
    assert_eq!(s.uids(), s.id);
}

#[test]
fn invalid_policy_reads_from_lowercase_names() {
    #[derive(serde::Deserialize)]
    struct Input {
        on_invalid: InvalidPolicy,
    }
    let v: Input = serde_json::from_str(r#"{"on_invalid": "drop"}"#).unwrap();
    assert_eq!(v.on_invalid, InvalidPolicy::Drop);
    let v: Input = serde_json::from_str(r#"{"on_invalid": "error"}"#).unwrap();
    assert_eq!(v.on_invalid, InvalidPolicy::Error);
    assert!(serde_json::from_str::<Input>(r#"{"on_invalid": "Drop"}"#).is_err());
    assert_eq!(InvalidPolicy::default(), InvalidPolicy::Error);
    assert_eq!(
        "drop".parse::<InvalidPolicy>().unwrap(),
        InvalidPolicy::Drop
    );
    assert_eq!(InvalidPolicy::Drop.to_string(), "drop");
}
