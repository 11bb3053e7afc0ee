//! Throughput of `read_stars` on a synthetic AREPO/TNG snapshot and of the catalogue writer.
//!
//! `cargo bench -p snapio --features static --bench read_throughput` (SNAPIO_BENCH_N sets the
//! number of star particles, default 4 194 304).

use std::time::Instant;

use snapio::{
    write_snapshot, CatalogMeta, CatalogWriter, Header, Layout, ReadOptions, Snapshot, Sphere,
    StarBatch, StarParticles,
};

fn synthetic(n: usize) -> StarParticles {
    let mut s = StarParticles::with_capacity(n);
    let mut x: u64 = 0x1234_5678;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..n {
        s.position.push([
            10_000.0 + 100.0 * next(),
            20_000.0 + 100.0 * next(),
            30_000.0 + 100.0 * next(),
        ]);
        s.velocity
            .push([300.0 * next(), 300.0 * next(), 300.0 * next()]);
        let m = 1e4 + 1e5 * next();
        s.mass.push(m);
        s.initial_mass.push(1.5 * m);
        s.id.push(i as u64);
        s.age.push(0.01 + 13.0 * next());
        s.metallicity.push(0.04 * next());
    }
    s
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("SNAPIO_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 22);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("snap_099.hdf5");
    let stars = synthetic(n);
    let t = Instant::now();
    write_snapshot(
        &path,
        Layout::ArepoTng,
        &Header::cosmological_at(1.0),
        &stars,
        None,
        1,
    )?;
    let size = std::fs::metadata(&path)?.len() as f64 / 1e6;
    println!(
        "snapio write_snapshot: {n} particles, {size:.0} MB in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    drop(stars);

    // Baseline: the HDF5 library alone reading every PartType4 dataset as f64 (u64 for IDs).
    let t = Instant::now();
    let mut raw_bytes = 0usize;
    {
        let f = hdf5::File::open(&path)?;
        let g = f.group("PartType4")?;
        for name in g.member_names()? {
            let ds = g.dataset(&name)?;
            if name == "ParticleIDs" {
                raw_bytes += ds.read_raw::<u64>()?.len() * ds.dtype()?.size();
            } else {
                raw_bytes += ds.read_raw::<f64>()?.len() * ds.dtype()?.size();
            }
        }
    }
    let dt = t.elapsed().as_secs_f64();
    println!(
        "hdf5 raw read (baseline): {:.0} MB in {dt:.2} s = {:.0} MB/s",
        raw_bytes as f64 / 1e6,
        raw_bytes as f64 / 1e6 / dt
    );

    let snap = Snapshot::open(&path)?;
    let t = Instant::now();
    let (got, report) = snap.read_stars(&ReadOptions::default())?;
    let dt = t.elapsed().as_secs_f64();
    let mb = report.bytes_read as f64 / 1e6;
    println!(
        "snapio read_stars: {} particles, {mb:.0} MB in {dt:.2} s = {:.0} MB/s ({:.1} M particles/s)",
        got.len(),
        mb / dt,
        got.len() as f64 / dt / 1e6
    );

    let region = Sphere {
        center: [10_050.0, 20_050.0, 30_050.0],
        radius: 20.0,
    };
    let t = Instant::now();
    let (sel, report) = snap.read_stars(&ReadOptions {
        region: Some(region),
        ..ReadOptions::default()
    })?;
    let dt = t.elapsed().as_secs_f64();
    println!(
        "snapio read_stars (region r = 20 kpc): {} of {} particles kept, {:.0} MB read in {dt:.2} s = {:.0} MB/s",
        sel.len(),
        report.rows_read,
        report.bytes_read as f64 / 1e6,
        report.bytes_read as f64 / 1e6 / dt
    );

    let cat = dir.path().join("catalog.hdf5");
    let batch_len = 100_000;
    let t = Instant::now();
    let mut w = CatalogWriter::create(&cat, &CatalogMeta::default())?;
    let mut start = 0;
    while start < got.len() {
        let end = (start + batch_len).min(got.len());
        let b = StarBatch {
            position: got.position[start..end].to_vec(),
            velocity: got.velocity[start..end].to_vec(),
            mass: got.mass[start..end].to_vec(),
            initial_mass: got.initial_mass[start..end].to_vec(),
            age: got.age[start..end].to_vec(),
            metallicity: got.metallicity[start..end].to_vec(),
            parent_id: got.id[start..end].to_vec(),
            cluster: vec![0; end - start],
            ..StarBatch::default()
        };
        w.append(&b)?;
        start = end;
    }
    let rows = w.finish()?;
    let dt = t.elapsed().as_secs_f64();
    let mb = rows as f64 * (6.0 * 8.0 + 4.0 * 8.0 + 8.0 + 4.0) / 1e6;
    let on_disk = std::fs::metadata(&cat)?.len() as f64 / 1e6;
    println!(
        "snapio CatalogWriter: {rows} rows, {mb:.0} MB in {dt:.2} s = {:.0} MB/s ({on_disk:.0} MB on disk, deflate {} + shuffle)",
        mb / dt,
        snapio::CATALOG_DEFLATE_LEVEL
    );
    Ok(())
}
