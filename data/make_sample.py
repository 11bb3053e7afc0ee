#!/usr/bin/env python3
"""Generate the shipped sample snapshot `data/snap_099.hdf5` (IllustrisTNG/AREPO layout).

The stellar system is an equilibrium Plummer sphere whose density, potential and acceleration
are known analytically, so later stages (flows, upsampling, accelerations) can be validated
against the truth. Its distribution function is made to rotate with Lynden-Bell's trick:

    f(E, Lz) = f_P(E) * (1 + alpha * sign(Lz)),

i.e. the sign of each star's azimuthal velocity is set positive with probability (1+alpha)/2.
f still depends only on integrals of motion (E, Lz) of the spherical potential, so it is a
steady state of the collisionless Boltzmann equation, the density stays Plummer's and the
acceleration stays a = -G M r / (r^2 + b^2)^{3/2}. The rotation gives the galaxy a well-defined
angular momentum axis for the frame finder.

Sampling follows Aarseth, Henon & Wielen (1974, A&A 37, 183): radii from the inverse cumulative
mass, speeds q * v_esc with q drawn by rejection from g(q) = q^2 (1 - q^2)^{7/2}, isotropic
directions. The system is then rotated by a fixed random rotation, shifted to a centre in the
box and given a bulk velocity, and written in TNG's code units (ckpc/h, km/s sqrt(a),
1e10 Msun/h, formation scale factors) at z = 0. A few wind particles
(GFM_StellarFormationTime <= 0) are mixed in; readers must drop them.

The truth's parameters are written both into the snapshot (group `SampleTruth`, ignored by
readers) and into `data/snap_099.truth.json`.

Usage:  python3 data/make_sample.py [--n 70000] [--seed 99] [--out data/snap_099.hdf5]
        python3 data/make_sample.py --independent 200000 --out truth_draw.npz
          (an independent draw of the same system in the galaxy frame, for two-sample tests)
Needs numpy and h5py (pip install numpy h5py).
"""

import argparse
import json
import math

import numpy as np

G = 4.30091727e-6  # kpc (km/s)^2 / Msun

# The physical system (galaxy frame).
M_TOTAL = 1.0e8  # Msun, current stellar mass
B_SCALE = 0.5  # kpc, Plummer scale radius
ALPHA_ROT = 0.6  # rotation parameter of f(E, Lz) = f_P(E) (1 + alpha sign Lz)
R_TRUNC = 20.0 * B_SCALE  # kpc; radii are drawn below this (the untruncated profile has 0.37% of its mass beyond)

# Cosmology and placement (TNG's Planck 2015 values).
HUBBLE = 0.6774
OMEGA0 = 0.3089
OMEGA_L = 0.6911
OMEGA_B = 0.0486
BOX = 75000.0  # ckpc/h
CENTER_CODE = np.array([12000.0, 18000.0, 24000.0])  # ckpc/h
BULK_VEL = np.array([120.0, -80.0, 45.0])  # km/s
N_WIND = 256


def plummer_radius(rng, n):
    """Radii (kpc) from the Plummer cumulative mass M(<r)/M = r^3/(r^2+b^2)^{3/2}, truncated."""
    x_max = R_TRUNC**3 / (R_TRUNC**2 + B_SCALE**2) ** 1.5
    x = rng.uniform(0.0, x_max, n)
    return B_SCALE / np.sqrt(x ** (-2.0 / 3.0) - 1.0)


def plummer_speed_fraction(rng, n):
    """q = v / v_esc by rejection from g(q) = q^2 (1 - q^2)^{7/2} (max < 0.1)."""
    out = np.empty(0)
    while out.size < n:
        q = rng.uniform(0.0, 1.0, 2 * n)
        y = rng.uniform(0.0, 0.1, 2 * n)
        out = np.concatenate([out, q[y < q**2 * (1.0 - q**2) ** 3.5]])
    return out[:n]


def isotropic(rng, n):
    """Unit vectors uniform on the sphere."""
    cz = rng.uniform(-1.0, 1.0, n)
    ph = rng.uniform(0.0, 2.0 * np.pi, n)
    sz = np.sqrt(1.0 - cz**2)
    return np.stack([sz * np.cos(ph), sz * np.sin(ph), cz], axis=1)


def draw_system(rng, n):
    """Positions (kpc) and velocities (km/s) of n stars of the rotating Plummer sphere, galaxy frame."""
    r = plummer_radius(rng, n)
    pos = r[:, None] * isotropic(rng, n)
    v_esc = np.sqrt(2.0 * G * M_TOTAL / np.sqrt(r**2 + B_SCALE**2))
    vel = (plummer_speed_fraction(rng, n) * v_esc)[:, None] * isotropic(rng, n)
    # Lynden-Bell: set the sign of v_phi, positive with probability (1 + alpha) / 2.
    R = np.hypot(pos[:, 0], pos[:, 1])
    R = np.where(R > 0, R, 1e-300)
    e_phi = np.stack([-pos[:, 1] / R, pos[:, 0] / R, np.zeros(n)], axis=1)
    v_phi = np.sum(vel * e_phi, axis=1)
    sign = np.where(rng.uniform(0.0, 1.0, n) < 0.5 * (1.0 + ALPHA_ROT), 1.0, -1.0)
    vel += ((sign * np.abs(v_phi)) - v_phi)[:, None] * e_phi
    return pos, vel


def cosmic_time(a):
    """Age of a flat LCDM universe at scale factor a, in Gyr."""
    h0 = HUBBLE / 9.777922216807891  # 1/Gyr
    return 2.0 / (3.0 * h0 * math.sqrt(OMEGA_L)) * np.arcsinh(np.sqrt(OMEGA_L / OMEGA0) * a**1.5)


def scale_factor_of_time(t):
    """Inverse of cosmic_time (Gyr -> a)."""
    h0 = HUBBLE / 9.777922216807891
    return (np.sinh(1.5 * h0 * math.sqrt(OMEGA_L) * t) / math.sqrt(OMEGA_L / OMEGA0)) ** (2.0 / 3.0)


def random_rotation(rng):
    """A random proper rotation matrix (rows: galaxy axes expressed in box coordinates)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def mass_loss_fraction(age):
    """Toy returned-mass fraction of a stellar population of the given age (Gyr)."""
    return 0.25 + 0.15 * np.clip(np.log10(1.0 + age) / math.log10(14.0), 0.0, 1.0)


def write(args):
    import h5py

    rng = np.random.default_rng(args.seed)
    n = args.n
    pos_g, vel_g = draw_system(rng, n)
    rot = random_rotation(rng)  # galaxy-frame vector u -> box vector rot.T @ u
    center_kpc = CENTER_CODE / HUBBLE  # a = 1
    pos_box = pos_g @ rot + center_kpc
    vel_box = vel_g @ rot + BULK_VEL

    age = rng.uniform(0.5, 12.5, n)  # Gyr, independent of position: keeps rho = Plummer
    t0 = float(cosmic_time(1.0))
    a_form = scale_factor_of_time(t0 - age)
    mass = np.full(n, M_TOTAL / n)
    init_mass = mass / (1.0 - mass_loss_fraction(age))
    z_sun = 0.0127
    metallicity = z_sun * 10.0 ** (-0.2 - 0.06 * age + rng.normal(0.0, 0.15, n))

    # Wind particles: anywhere within 3 kpc, GFM_StellarFormationTime <= 0.
    w_pos = center_kpc + rng.uniform(-3.0, 3.0, (N_WIND, 3))
    w_vel = BULK_VEL + rng.normal(0.0, 50.0, (N_WIND, 3))
    w_a = -rng.uniform(0.2, 1.0, N_WIND)
    w_a[:8] = 0.0

    order = rng.permutation(n + N_WIND)
    coords = np.concatenate([pos_box, w_pos])[order] * HUBBLE  # ckpc/h at a = 1
    vels = np.concatenate([vel_box, w_vel])[order]  # km/s sqrt(a) at a = 1
    masses = np.concatenate([mass, np.full(N_WIND, M_TOTAL / n)])[order] * HUBBLE / 1e10
    imass = np.concatenate([init_mass, np.full(N_WIND, M_TOTAL / n)])[order] * HUBBLE / 1e10
    tform = np.concatenate([a_form, w_a])[order]
    zmet = np.concatenate([metallicity, np.zeros(N_WIND)])[order]
    ids = (np.arange(n + N_WIND, dtype=np.uint64) + np.uint64(1_000_000_000))[order]

    ntot = n + N_WIND
    with h5py.File(args.out, "w", libver="earliest") as f:
        h = f.create_group("Header")
        npart = np.zeros(6, dtype=np.int32)
        npart[4] = ntot
        h.attrs["NumPart_ThisFile"] = npart
        h.attrs["NumPart_Total"] = npart.astype(np.uint32)
        h.attrs["NumPart_Total_HighWord"] = np.zeros(6, dtype=np.uint32)
        h.attrs["MassTable"] = np.zeros(6)
        h.attrs["Time"] = 1.0
        h.attrs["Redshift"] = 2.220446049250313e-16
        h.attrs["BoxSize"] = BOX
        h.attrs["NumFilesPerSnapshot"] = np.int32(1)
        h.attrs["Omega0"] = OMEGA0
        h.attrs["OmegaLambda"] = OMEGA_L
        h.attrs["OmegaBaryon"] = OMEGA_B
        h.attrs["HubbleParam"] = HUBBLE
        h.attrs["Flag_Sfr"] = np.int32(1)
        h.attrs["Flag_Cooling"] = np.int32(1)
        h.attrs["Flag_StellarAge"] = np.int32(1)
        h.attrs["Flag_Metals"] = np.int32(10)
        h.attrs["Flag_Feedback"] = np.int32(1)
        h.attrs["Flag_DoublePrecision"] = np.int32(0)
        h.attrs["UnitLength_in_cm"] = 3.085678e21
        h.attrs["UnitMass_in_g"] = 1.989e43
        h.attrs["UnitVelocity_in_cm_per_s"] = 1.0e5
        h.attrs["Git_commit"] = np.bytes_("sample-generator")
        # TNG snapshots carry Config and Parameters groups too.
        f.create_group("Config").attrs["GFM_STELLAR_EVOLUTION"] = np.int32(0)
        p = f.create_group("Parameters")
        p.attrs["HubbleParam"] = HUBBLE
        p.attrs["Omega0"] = OMEGA0
        p.attrs["ComovingIntegrationOn"] = np.int32(1)
        g = f.create_group("PartType4")
        kw = dict(compression="gzip", compression_opts=6, shuffle=True)
        g.create_dataset("Coordinates", data=coords.astype(np.float64), **kw)
        g.create_dataset("Velocities", data=vels.astype(np.float32), **kw)
        g.create_dataset("Masses", data=masses.astype(np.float32), **kw)
        g.create_dataset("GFM_InitialMass", data=imass.astype(np.float32), **kw)
        g.create_dataset("GFM_StellarFormationTime", data=tform.astype(np.float32), **kw)
        g.create_dataset("GFM_Metallicity", data=zmet.astype(np.float32), **kw)
        g.create_dataset("ParticleIDs", data=ids, **kw)

        truth = {
            "model": "rotating Plummer sphere, f(E,Lz) = f_Plummer(E) (1 + alpha sign Lz)",
            "G_kpc_kms2_per_Msun": G,
            "total_mass_Msun": M_TOTAL,
            "scale_radius_kpc": B_SCALE,
            "truncation_radius_kpc": R_TRUNC,
            "truncation_note": "radii are drawn from the Plummer profile truncated at truncation_radius_kpc: "
            "the sample's cumulative mass fraction is M(<r) / M(<r_t) with M(<r) = M r^3 / (r^2 + b^2)^(3/2); "
            "velocities use the untruncated potential (the truncated 0.37% changes it by < 0.4%)",
            "alpha_rotation": ALPHA_ROT,
            "n_stars": n,
            "n_wind": N_WIND,
            "seed": args.seed,
            "center_kpc": center_kpc.tolist(),
            "bulk_velocity_kms": BULK_VEL.tolist(),
            "rotation_galaxy_to_box_rows": rot.tolist(),
            "rotation_note": "row i of the matrix is galaxy axis i in box coordinates: x_box = R^T x_gal + center",
            "hubble_param": HUBBLE,
            "omega0": OMEGA0,
            "density": "rho(r) = 3 M / (4 pi b^3) (1 + r^2/b^2)^(-5/2)  [Msun/kpc^3]",
            "potential": "Phi(r) = -G M / sqrt(r^2 + b^2)  [(km/s)^2]",
            "acceleration": "a(x) = -G M x / (r^2 + b^2)^(3/2)  [(km/s)^2/kpc]",
            "age": "uniform in [0.5, 12.5] Gyr, independent of position",
            "metallicity": "0.0127 * 10^(-0.2 - 0.06 age/Gyr + N(0, 0.15))",
            "initial_mass": "mass / (1 - f_loss(age)), f_loss = 0.25 + 0.15 log10(1+age)/log10(14)",
        }
        t = f.create_group("SampleTruth")
        for k, v in truth.items():
            t.attrs[k] = np.asarray(v) if isinstance(v, list) else v
    with open(args.out.rsplit(".hdf5", 1)[0] + ".truth.json", "w") as fh:
        json.dump(truth, fh, indent=2)
        fh.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=70000, help="number of star particles")
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--out", default="data/snap_099.hdf5")
    ap.add_argument("--independent", type=int, default=0, help="write N independent stars (galaxy frame) to --out as .npz")
    args = ap.parse_args()
    if args.independent:
        rng = np.random.default_rng(args.seed + 1)
        pos, vel = draw_system(rng, args.independent)
        np.savez(args.out, position=pos, velocity=vel)
    else:
        write(args)


if __name__ == "__main__":
    main()
