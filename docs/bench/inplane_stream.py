#!/usr/bin/env python3
"""A cold stream co-rotating inside a disc's plane: make the test snapshot and score catalogues.

Measures whether the phase-space group finder (`decompose/phase_groups.rs`) and the flows keep a
stream that the disc's axisymmetric background matches in position and mean velocity
(docs/ACCURACY.md, 2026-12-04, twenty-second session). Needs numpy, scipy and h5py.

    # galaxy (b) and its truth draw: cargo run -p galaxies --release -- --model disc --out B
    inplane_stream.py make B/snapshot.hdf5 SNAP.hdf5 --seed 5         # prints the stream's v_phi
    inplane_stream.py make B/truth.hdf5 TRUTH.hdf5 --seed 77 --v-phi V  # the same stream
    upsample --snapshot SNAP.hdf5 --config CFG --out RUN   # CFG: [frame] enabled = false
    inplane_stream.py score TRUTH.hdf5 particles=SNAP.hdf5 flows=RUN/catalog.hdf5

`make` appends `--n` particles on a `--arc`-degree arc at R = `--radius` kpc in the plane
(Gaussian width `--width` kpc in R and z, `--sigma` km/s in each velocity component), moving
at `--v-phi` (default: the disc's mean v_phi in |R - radius| < 0.5 kpc, |z| < 0.3 kpc); new IDs, masses, ages and
metallicities drawn from the disc's. `score` prints, for the window within 1 kpc of the track
(phi in the arc) and its core within one width: each sample's share over the truth's share with
Poisson errors, and the KS distances of distance-to-track and |v - v_track| in the window.
"""
import argparse
import shutil

import h5py
import numpy as np
from scipy.stats import ks_2samp


def load(path):
    """Positions (kpc) and velocities (km/s) of a TNG-layout snapshot or an upsample catalogue."""
    with h5py.File(path) as f:
        if "PartType4" in f:
            h, a = f["Header"].attrs["HubbleParam"], f["Header"].attrs["Time"]
            p = f["PartType4"]
            return p["Coordinates"][:] * a / h, p["Velocities"][:] * np.sqrt(a)
        return f["position"][:], f["velocity"][:]


def disc_rotation(x, v, radius):
    """Mean v_phi (km/s) of the disc's particles near the track."""
    big_r = np.hypot(x[:, 0], x[:, 1])
    near = (abs(big_r - radius) < 0.5) & (abs(x[:, 2]) < 0.3)
    v_phi = (x[near, 0] * v[near, 1] - x[near, 1] * v[near, 0]) / big_r[near]
    return v_phi.mean(), near.sum()


def make(a):
    rng = np.random.default_rng(a.seed)
    shutil.copy(a.source, a.out)
    with h5py.File(a.out, "r+") as f:
        h, t = f["Header"].attrs["HubbleParam"], f["Header"].attrs["Time"]
        p = f["PartType4"]
        x, v = p["Coordinates"][:] * t / h, p["Velocities"][:] * np.sqrt(t)
        disc_vp, near = disc_rotation(x, v, a.radius)
        vp = disc_vp if a.v_phi is None else a.v_phi
        print(f"disc near R = {a.radius} kpc: {near} particles, mean v_phi {disc_vp:.4f} km/s; stream v_phi {vp:.4f} km/s")
        n = a.n
        phi = rng.uniform(0, np.radians(a.arc), n)
        big_r = a.radius + rng.normal(0, a.width, n)
        xs = np.stack([big_r * np.cos(phi), big_r * np.sin(phi), rng.normal(0, a.width, n)], 1)
        v_r, v_z = rng.normal(0, a.sigma, n), rng.normal(0, a.sigma, n)
        v_t = vp + rng.normal(0, a.sigma, n)
        vs = np.stack([v_r * np.cos(phi) - v_t * np.sin(phi), v_r * np.sin(phi) + v_t * np.cos(phi), v_z], 1)
        total = len(x) + n

        def append(name, new):
            old = p[name][:]
            del p[name]
            p.create_dataset(name, data=np.concatenate([old, new.astype(old.dtype)]))

        append("Coordinates", xs * h / t)
        append("Velocities", vs / np.sqrt(t))
        append("ParticleIDs", p["ParticleIDs"][:].max() + 1 + np.arange(n))
        for k in ["GFM_InitialMass", "GFM_Metallicity", "GFM_StellarFormationTime", "Masses"]:
            append(k, rng.choice(p[k][:], n))
        f["Header"].attrs["NumPart_ThisFile"] = np.array([0, 0, 0, 0, total, 0], dtype=np.int32)
        f["Header"].attrs["NumPart_Total"] = np.array([0, 0, 0, 0, total, 0], dtype=np.uint32)
    print(f"wrote {a.out}: {n} stream particles")


def window(x, v, a, v_track):
    big_r, phi = np.hypot(x[:, 0], x[:, 1]), np.arctan2(x[:, 1], x[:, 0])
    d = np.hypot(big_r - a.radius, x[:, 2])
    w = (phi >= 0) & (phi <= np.radians(a.arc)) & (d < 1.0)
    e_phi = np.stack([-np.sin(phi), np.cos(phi), 0 * phi], 1)
    return w, d, np.linalg.norm(v - v_track * e_phi, axis=1), len(x)


def score(a):
    tx, tv = load(a.truth)
    v_track = disc_rotation(tx, tv, a.radius)[0] if a.v_phi is None else a.v_phi
    tw, td, tdv, tn = window(tx, tv, a, v_track)
    t_core = tw & (td < a.width)
    for arg in a.samples:
        name, path = arg.split("=", 1)
        w, d, dv, n = window(*load(path), a, v_track)
        core = w & (d < a.width)

        def ratio(k, kt):
            r = (k / n) / (kt / tn)
            return r, r * np.sqrt(1 / k + 1 / kt)

        c, ce = ratio(w.sum(), tw.sum())
        k, ke = ratio(core.sum(), t_core.sum())
        print(
            f"{name:10s} {n:8d} stars, {w.sum():6d} in window: count {c:.3f} ± {ce:.3f}, core "
            f"{k:.3f} ± {ke:.3f}, KS distance {ks_2samp(d[w], td[tw]).statistic:.3f}, KS |dv| "
            f"{ks_2samp(dv[w], tdv[tw]).statistic:.3f}"
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("source")
    m.add_argument("out")
    m.add_argument("--n", type=int, default=1500)
    m.add_argument("--seed", type=int, default=5)
    s = sub.add_parser("score")
    s.add_argument("truth")
    s.add_argument("samples", nargs="+", help="NAME=PATH (snapshot or catalogue)")
    for p in (m, s):
        p.add_argument("--radius", type=float, default=9.0)
        p.add_argument("--width", type=float, default=0.15)
        p.add_argument("--arc", type=float, default=90.0)
        p.add_argument("--v-phi", type=float, default=None, help="the stream's v_phi, km/s")
    m.add_argument("--sigma", type=float, default=3.0)
    a = ap.parse_args()
    make(a) if a.cmd == "make" else score(a)


if __name__ == "__main__":
    main()
