//! Round trips: write_snapshot in each layout, then Snapshot::open + read_stars in physical units.

mod common;

use common::{assert_same, sample_stars};
use snapio::{
    write_snapshot, write_snapshot_with, Header, Layout, ReadOptions, Snapshot, Sphere,
    WriteOptions,
};

const LAYOUTS: [Layout; 3] = [Layout::GizmoFire, Layout::Gadget4, Layout::ArepoTng];

#[test]
fn every_layout_round_trips_at_a_1_and_a_half() {
    for layout in LAYOUTS {
        for a in [1.0, 0.5] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("snap_099.hdf5");
            let header = Header::cosmological_at(a);
            let max_age = if a < 1.0 { 5.0 } else { 12.0 };
            let stars = sample_stars(3000, 11, [5000.0, 3000.0, 2000.0], max_age);
            write_snapshot(&path, layout, &header, &stars, None, 1).unwrap();
            let snap = Snapshot::open(&path).unwrap();
            assert_eq!(snap.layout(), layout, "layout detection at a={a}");
            assert!((snap.header().scale_factor - a).abs() < 1e-12);
            assert!(snap.header().cosmological);
            let (got, report) = snap.read_stars(&ReadOptions::default()).unwrap();
            assert_same(&stars, &got, layout != Layout::ArepoTng);
            assert_eq!(report.winds_dropped, 0);
            if layout != Layout::ArepoTng {
                assert!(
                    report
                        .notes
                        .iter()
                        .any(|n| n.contains("initial_mass = current mass")),
                    "{:?}",
                    report.notes
                );
            }
        }
    }
}

#[test]
fn small_chunks_and_double_precision_give_the_same_stars() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.hdf5");
    let header = Header::cosmological_at(0.8);
    let stars = sample_stars(1001, 3, [0.0; 3], 6.0);
    let opts = WriteOptions {
        double_precision: true,
        ..WriteOptions::default()
    };
    write_snapshot_with(&path, Layout::ArepoTng, &header, &stars, None, &opts).unwrap();
    let snap = Snapshot::open(&path).unwrap();
    let (a, _) = snap
        .read_stars(&ReadOptions {
            chunk_len: 7,
            region: None,
            ..ReadOptions::default()
        })
        .unwrap();
    let (b, _) = snap.read_stars(&ReadOptions::default()).unwrap();
    assert_eq!(a, b);
    assert_same(&stars, &a, false);
}

#[test]
fn multi_file_found_from_any_name_and_from_the_folder() {
    for layout in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let snapdir = dir.path().join("snapdir_099");
        std::fs::create_dir(&snapdir).unwrap();
        let header = Header::cosmological_at(0.7);
        let stars = sample_stars(2500, 5, [100.0, 200.0, 300.0], 5.0);
        let files = write_snapshot(
            &snapdir.join("snap_099.hdf5"),
            layout,
            &header,
            &stars,
            None,
            4,
        )
        .unwrap();
        assert_eq!(files.len(), 4);
        assert!(files[2].ends_with("snap_099.2.hdf5"));
        for p in [
            files[0].clone(),
            files[3].clone(),
            snapdir.clone(),
            snapdir.join("snap_099.hdf5"),
        ] {
            let snap = Snapshot::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(snap.files().len(), 4);
            assert_eq!(snap.layout(), layout);
            let (got, report) = snap
                .read_stars(&ReadOptions {
                    chunk_len: 100,
                    region: None,
                    ..ReadOptions::default()
                })
                .unwrap();
            assert_eq!(report.files.len(), 4);
            assert_same(&stars, &got, layout != Layout::ArepoTng);
        }
    }
}

#[test]
fn tng_winds_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap_050.hdf5");
    let header = Header::cosmological_at(0.6);
    let stars = sample_stars(800, 1, [0.0; 3], 4.0);
    let winds = sample_stars(123, 2, [0.0; 3], 4.0);
    write_snapshot(&path, Layout::ArepoTng, &header, &stars, Some(&winds), 3).unwrap();
    let snap = Snapshot::open(dir.path().join("snap_050.1.hdf5")).unwrap();
    assert_eq!(snap.header().num_part_total[4], 923);
    let (got, report) = snap
        .read_stars(&ReadOptions {
            chunk_len: 50,
            region: None,
            ..ReadOptions::default()
        })
        .unwrap();
    assert_eq!(report.winds_dropped, 123);
    assert_same(&stars, &got, false);
    let inv = snap.inventory().unwrap();
    assert_eq!(inv.winds, Some(123));
}

#[test]
fn mass_table_entry_replaces_the_masses_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.hdf5");
    let mut header = Header::cosmological_at(1.0);
    header.mass_table[4] = 2.5e-5; // code units: 2.5e5 Msun/h
    let mut stars = sample_stars(500, 9, [0.0; 3], 10.0);
    let m = 2.5e-5 * 1e10 / header.hubble_param;
    stars.mass.iter_mut().for_each(|x| *x = m);
    write_snapshot(&path, Layout::Gadget4, &header, &stars, None, 1).unwrap();
    let f = hdf5::File::open(&path).unwrap();
    assert!(!f.link_exists("PartType4/Masses"));
    drop(f);
    let (got, report) = Snapshot::open(&path)
        .unwrap()
        .read_stars(&ReadOptions::default())
        .unwrap();
    assert_same(&stars, &got, true);
    assert!(report.notes.iter().any(|n| n.contains("MassTable")));
}

#[test]
fn fire_non_cosmological_and_missing_comoving_flag() {
    let dir = tempfile::tempdir().unwrap();
    // Non-cosmological: Time in code units (0.9778/h Gyr), a = 1, h = 1.
    let path = dir.path().join("iso.hdf5");
    let header = Header::non_cosmological_at(3.0, 1.0);
    let stars = sample_stars(400, 4, [0.0; 3], 2.5);
    write_snapshot(&path, Layout::GizmoFire, &header, &stars, None, 1).unwrap();
    let snap = Snapshot::open(&path).unwrap();
    assert!(!snap.header().cosmological);
    let (got, _) = snap.read_stars(&ReadOptions::default()).unwrap();
    assert_same(&stars, &got, true);

    // FIRE public files lack ComovingIntegrationOn: Time = 1/(1+z) marks a cosmological run.
    let path = dir.path().join("fire.hdf5");
    let header = Header::cosmological_at(0.9);
    let opts = WriteOptions {
        comoving_flag: false,
        ..WriteOptions::default()
    };
    write_snapshot_with(&path, Layout::GizmoFire, &header, &stars, None, &opts).unwrap();
    let snap = Snapshot::open(&path).unwrap();
    assert_eq!(snap.layout(), Layout::GizmoFire);
    assert!(snap.header().cosmological);
    assert!(snap
        .notes()
        .iter()
        .any(|n| n.contains("ComovingIntegrationOn absent")));
    let (got, _) = snap.read_stars(&ReadOptions::default()).unwrap();
    assert_same(&stars, &got, true);
}

#[test]
fn region_selection_while_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.hdf5");
    let header = Header::cosmological_at(0.5);
    let stars = sample_stars(5000, 21, [1000.0, 1000.0, 1000.0], 4.0);
    write_snapshot(&path, Layout::ArepoTng, &header, &stars, None, 2).unwrap();
    let region = Sphere {
        center: [1005.0, 998.0, 1001.0],
        radius: 8.0,
    };
    let snap = Snapshot::open(&path).unwrap();
    let (got, report) = snap
        .read_stars(&ReadOptions {
            region: Some(region),
            chunk_len: 333,
            ..ReadOptions::default()
        })
        .unwrap();
    let expected = snapio::select_sphere(&stars, &region);
    assert!(
        expected.len() > 50 && expected.len() < 1000,
        "{}",
        expected.len()
    );
    assert_eq!(got.len(), expected.len());
    assert_eq!(report.stars_kept, expected.len() as u64);
    assert_eq!(report.rows_read, 5000);
    assert_same(&expected, &got, false);
    // A region holding nothing is an error naming the region.
    let far = Sphere {
        center: [0.0; 3],
        radius: 1.0,
    };
    let err = snap
        .read_stars(&ReadOptions {
            region: Some(far),
            chunk_len: 1000,
            ..ReadOptions::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("region"), "{err}");
}

#[test]
fn inventory_lists_types_datasets_header_and_units() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.hdf5");
    let stars = sample_stars(10, 1, [0.0; 3], 4.0);
    write_snapshot(
        &path,
        Layout::Gadget4,
        &Header::cosmological_at(0.5),
        &stars,
        None,
        1,
    )
    .unwrap();
    let inv = Snapshot::open(&path).unwrap().inventory().unwrap();
    assert_eq!(inv.counts[4], 10);
    let (t, ds) = &inv.datasets[0];
    assert_eq!(*t, 4);
    let c = ds.iter().find(|d| d.name == "Coordinates").unwrap();
    assert_eq!(c.shape, vec![10, 3]);
    assert_eq!(c.dtype, "f64");
    assert!(inv
        .header_attributes
        .iter()
        .any(|(k, v)| k == "Parameters/HubbleParam" && v == "0.6774"));
    assert!(inv
        .header_attributes
        .iter()
        .any(|(k, v)| k == "Time" && v == "0.5"));
    assert!(inv.units.iter().any(|u| u.contains("kpc")));
    assert_eq!(inv.winds, None);
    let text = inv.to_string();
    assert!(
        text.contains("PartType4") && text.contains("GADGET-4"),
        "{text}"
    );
}
