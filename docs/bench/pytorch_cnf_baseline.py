#!/usr/bin/env python3
"""The PyTorch way to train a 3D CNF, as the baseline of `cargo bench -p cnf` (not a test).

Same architecture and workload as the Rust benchmark: an MLP vector field on [y, t] with
width 64, depth 3 (hidden layers), tanh; exact trace of dF/dy by autograd (3 backward passes,
create_graph); torchdiffeq `odeint` with fixed-step RK4, 10 steps over t in [0, 1]; batch 4096;
maximum-likelihood loss against a standard normal base; Adam. Prints training samples/s.

Usage (scratch virtualenv, never part of the project's tests):
    python3 -m venv /tmp/ptb && /tmp/ptb/bin/pip install torch==2.9.0 torchdiffeq
    /tmp/ptb/bin/python docs/bench/pytorch_cnf_baseline.py [--threads 2] [--iters 20]
        [--batch 4096] [--device cpu|cuda]
"""
import argparse
import math
import time

import torch
from torch import nn
from torchdiffeq import odeint


class Field(nn.Module):
    def __init__(self, width=64, depth=3):
        super().__init__()
        layers, d = [], 4
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.Tanh()]
            d = width
        layers.append(nn.Linear(d, 3))
        self.net = nn.Sequential(*layers)

    def forward(self, t, state):
        y = state[0]
        with torch.enable_grad():
            y = y.requires_grad_(True)
            f = self.net(torch.cat([y, t.expand(y.shape[0], 1)], dim=1))
            tr = sum(
                torch.autograd.grad(f[:, i].sum(), y, create_graph=True)[0][:, i] for i in range(3)
            )
        return f, -tr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    field = Field().to(dev)
    opt = torch.optim.Adam(field.parameters(), lr=1e-3)
    t = torch.tensor([0.0, 1.0], device=dev)
    x = torch.randn(a.batch, 3, device=dev) * torch.tensor([1.0, 2.0, 0.5], device=dev)

    def step():
        opt.zero_grad()
        z, dlogp = odeint(field, (x, torch.zeros(a.batch, device=dev)), t, method="rk4",
                          options={"step_size": 0.1})
        z, dlogp = z[-1], dlogp[-1]
        logp = -0.5 * (z**2).sum(1) - 1.5 * math.log(2 * math.pi) - dlogp
        loss = -logp.mean()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        step()
    dt = time.perf_counter() - t0
    where = f"cpu threads={a.threads}" if dev.type == "cpu" else str(dev)
    print(f"pytorch+torchdiffeq {where} batch={a.batch}: train samples/s = {a.iters * a.batch / dt:.0f}")


if __name__ == "__main__":
    main()
