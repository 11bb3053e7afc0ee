//! Property test: valid fixture files with mutated header attributes (counts, HighWord,
//! MassTable, Time, HubbleParam, Redshift, Omega0, units, BoxSize, ...) never make
//! `Snapshot::open` + `read_stars` panic: every outcome is Ok or an error with a message.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use common::{sample_stars, Rng};
use snapio::{write_snapshot, Header, InvalidPolicy, Layout, ReadOptions, Snapshot};

/// Attributes mutated, with the group they normally live in for each layout.
const ATTRIBUTES: [&str; 16] = [
    "NumPart_ThisFile",
    "NumPart_Total",
    "NumPart_Total_HighWord",
    "MassTable",
    "Time",
    "Redshift",
    "HubbleParam",
    "Omega0",
    "OmegaLambda",
    "UnitLength_in_cm",
    "UnitMass_in_g",
    "UnitVelocity_in_cm_per_s",
    "UnitLength_In_CGS",
    "BoxSize",
    "NumFilesPerSnapshot",
    "ComovingIntegrationOn",
];

/// A value that breaks things: zero, negative, non-finite, huge, tiny, 2^32, or a scaled original.
fn nasty(r: &mut Rng, original: f64) -> f64 {
    match r.next_u64() % 12 {
        0 => 0.0,
        1 => -1.0,
        2 => f64::NAN,
        3 => f64::INFINITY,
        4 => f64::NEG_INFINITY,
        5 => 1e300,
        6 => 1e-300,
        7 => 4294967296.0,
        8 => 9.3e18,
        9 => original * r.range(0.0, 3.0),
        10 => original + 1.0,
        _ => (r.next_u64() % 1000) as f64 - 10.0,
    }
}

/// Applies one random mutation to attribute `name` of `group` in `path`.
fn mutate(path: &Path, group: &str, name: &str, r: &mut Rng) {
    let f = hdf5::File::open_rw(path).unwrap();
    if !f.link_exists(group) {
        return;
    }
    let g = f.group(group).unwrap();
    let exists = g.attr_names().unwrap().iter().any(|n| n == name);
    let original: Vec<f64> = if exists {
        g.attr(name)
            .unwrap()
            .read_raw::<f64>()
            .unwrap_or_else(|_| vec![1.0])
    } else {
        vec![1.0]
    };
    let kind = r.next_u64() % 10;
    if exists {
        g.delete_attr(name).unwrap();
    }
    match kind {
        // Deleted (or left absent).
        0 => {}
        // Wrong length.
        1 => {
            let n = [0usize, 1, 5, 7][(r.next_u64() % 4) as usize];
            let v: Vec<f64> = (0..n).map(|_| nasty(r, 1.0)).collect();
            g.new_attr::<f64>()
                .shape(n)
                .create(name)
                .unwrap()
                .write_raw(&v)
                .unwrap();
        }
        // A string.
        2 => {
            let v: hdf5::types::VarLenUnicode = "twelve".parse().unwrap();
            g.new_attr::<hdf5::types::VarLenUnicode>()
                .create(name)
                .unwrap()
                .write_scalar(&v)
                .unwrap();
        }
        // Integers (counts as i64, possibly negative or huge).
        3 => {
            let v: Vec<i64> = original
                .iter()
                .map(|&x| match r.next_u64() % 4 {
                    0 => (x as i64).wrapping_neg().wrapping_sub(1),
                    1 => i64::MAX,
                    2 => (x as i64).wrapping_mul(1 << 33),
                    _ => (x as i64).wrapping_add(1),
                })
                .collect();
            g.new_attr::<i64>()
                .shape(v.len())
                .create(name)
                .unwrap()
                .write_raw(&v)
                .unwrap();
        }
        // Same shape, one or all elements replaced.
        _ => {
            let mut v = original.clone();
            if r.next_u64().is_multiple_of(2) {
                let k = (r.next_u64() as usize) % v.len().max(1);
                if let Some(x) = v.get_mut(k) {
                    *x = nasty(r, *x);
                }
            } else {
                for x in v.iter_mut() {
                    *x = nasty(r, *x);
                }
            }
            if v.len() == 1 {
                g.new_attr::<f64>()
                    .create(name)
                    .unwrap()
                    .write_scalar(&v[0])
                    .unwrap();
            } else {
                g.new_attr::<f64>()
                    .shape(v.len())
                    .create(name)
                    .unwrap()
                    .write_raw(&v)
                    .unwrap();
            }
        }
    }
}

#[test]
fn mutated_headers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let layouts = [Layout::GizmoFire, Layout::Gadget4, Layout::ArepoTng];
    let templates: Vec<Vec<u8>> = layouts
        .iter()
        .map(|&layout| {
            let p = dir.path().join("template.hdf5");
            let header = Header {
                box_size: 1e5,
                ..Header::cosmological_at(0.7)
            };
            let stars = sample_stars(40, 5, [1e4; 3], 5.0);
            write_snapshot(&p, layout, &header, &stars, None, 1).unwrap();
            std::fs::read(&p).unwrap()
        })
        .collect();
    let mut r = Rng(0x5eed_0014);
    let (mut ok, mut err) = (0, 0);
    let cases = 400;
    for case in 0..cases {
        let li = (r.next_u64() % 3) as usize;
        let p = dir.path().join(format!("case_{case}.hdf5"));
        std::fs::write(&p, &templates[li]).unwrap();
        let n_mut = 1 + r.next_u64() % 3;
        let mut what = Vec::new();
        for _ in 0..n_mut {
            let name = ATTRIBUTES[(r.next_u64() as usize) % ATTRIBUTES.len()];
            let group = if r.next_u64().is_multiple_of(3) {
                "Parameters"
            } else {
                "Header"
            };
            mutate(&p, group, name, &mut r);
            what.push(format!("{group}/{name}"));
        }
        let on_invalid = if r.next_u64().is_multiple_of(2) {
            InvalidPolicy::Error
        } else {
            InvalidPolicy::Drop
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            Snapshot::open(&p).and_then(|s| {
                s.read_stars(&ReadOptions {
                    on_invalid,
                    chunk_len: 16,
                    ..ReadOptions::default()
                })
            })
        }));
        match outcome {
            Err(_) => panic!(
                "case {case} ({:?}, {what:?}, {on_invalid}) panicked",
                layouts[li]
            ),
            Ok(Ok((stars, _))) => {
                assert!(stars.check_lengths().is_ok());
                ok += 1;
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("case_{case}.hdf5")),
                    "case {case} ({what:?}): message does not name the file: {msg}"
                );
                err += 1;
            }
        }
        std::fs::remove_file(&p).unwrap();
    }
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    assert!(ok > 20 && err > 100, "ok {ok}, err {err}");
}
