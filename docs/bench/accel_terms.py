#!/usr/bin/env python3
"""Re-solves the acceleration acceptance points offline from a dump of the EOM terms.

Input: the CSV of `tests/flow.rs::dump_acceleration_terms` (run it with
`FLOW_DUMP=RUN/models,terms.csv,K cargo test ... --test flow -- --ignored dump_acceleration_terms`).
For each point it solves v·∇x log f + a·∇v log f = 0 by ordinary and by total least squares
(the project's `--fit ols|tls`), with the flows' gradients, the truth's, and mixtures of the two,
and prints the median relative error against the sample's analytic Plummer acceleration. This is
how docs/EOM.md located the error (velocity flow) and the attenuation bias of OLS.
Needs numpy only. Usage: python3 docs/bench/accel_terms.py terms.csv
"""
import sys

import numpy as np

G, M, B = 4.30091727e-06, 1e8, 0.5  # kpc (km/s)^2 / Msun, Msun, kpc: data/snap_099.truth.json


def main(path):
    d = np.genfromtxt(path, delimiter=",", names=True)
    n = int(d["i"].max()) + 1
    k = len(d) // n
    col = lambda *names: np.stack([d[c] for c in names], 1).reshape(n, k, len(names))
    x = col("x", "y", "z")[:, 0]
    v = col("vx", "vy", "vz")
    fx, fv = col("fx", "fy", "fz"), col("fvx", "fvy", "fvz")
    tx, tv = col("tx", "ty", "tz"), col("tvx", "tvy", "tvz")
    ok = np.isfinite(tx).all(2) & np.isfinite(tv).all(2)  # the truth is empty where unbound
    tx, tv = np.where(ok[..., None], tx, 0), np.where(ok[..., None], tv, 0)
    r2 = (x**2).sum(1)
    truth = -G * M * x / ((r2 + B * B) ** 1.5)[:, None]

    def solve(s, g, tls):
        w = ok.astype(float)
        m = np.einsum("nk,nki,nkj->nij", w, g, g)
        b = np.einsum("nk,nk,nki->ni", w, s, g)
        if tls:  # (M - λI) a + B = 0, λ the smallest eigenvalue of [[M, cB], [cB', c²S]]
            ss = np.einsum("nk,nk->n", w, s * s)
            c = np.sqrt(np.trace(m, axis1=1, axis2=2) / ss)
            big = np.zeros((n, 4, 4))
            big[:, :3, :3] = m
            big[:, :3, 3] = big[:, 3, :3] = c[:, None] * b
            big[:, 3, 3] = c * c * ss
            m = m - np.linalg.eigvalsh(big)[:, 0, None, None] * np.eye(3)
        return -np.linalg.solve(m, b[..., None])[..., 0]

    def report(name, s, g):
        for tls in (False, True):
            a = solve(s, g, tls)
            e = np.linalg.norm(a - truth, axis=1) / np.linalg.norm(truth, axis=1)
            radial = np.median((a * x).sum(1) / (truth * x).sum(1))
            print(f"{name:28s} {'TLS' if tls else 'OLS'}: median error {np.median(e):.3f}, "
                  f"radial component / truth {radial:.3f}")

    dot = lambda a, b: np.einsum("nki,nki->nk", a, b)
    print(f"{n} points, K = {k}; unbound under the truth: {1 - ok.mean():.4f}")
    report("flows", dot(v, fx), fv)
    report("truth (checks the harness)", dot(v, tx), tv)
    report("flows' ∇v, truth's ∇x", dot(v, tx), fv)
    report("truth's ∇v, flows' ∇x", dot(v, fx), tv)
    def rel(f, t):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.median((np.linalg.norm(f - t, axis=2) / np.linalg.norm(t, axis=2))[ok])

    print(f"per-sample gradient error, median: ∇v {rel(fv, tv):.3f}, ∇x {rel(fx, tx):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
