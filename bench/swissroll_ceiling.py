"""How close is a Swiss-roll model to the best its model class can do under its own β schedule?

For the noise-free roll (models/README.md, Presets and data sets) the true reverse step q(x^{t−1} | x^t)
is computable: x^0 lies on a curve, so q(x^0 | x^t) is a one-dimensional posterior over the roll's angle θ,
evaluated here on a fine grid of θ. The best *diagonal Gaussian* reverse step (what the paper's model can express) matches its
mean and per-dimension variance: mean = E[μ̃ | x^t], var = β̃ + c₀²·Var[x^0 | x^t] (c₀ the x^0
coefficient of μ̃). This "oracle" is put into the exact bound K (Eq. 14 with the edge terms) on the same
held-out points as the model, under the model's β. A trained network can only come close to it from
below (up to Monte Carlo error), so the gap tells whether the network or the schedule (T, β_1) limits K.

    python bench/swissroll_ceiling.py resources/models/swissroll.h5 [--n 2000] [--grid 40000]

Prints the model's K and the oracle's (same points, same noise draws), each with its standard error, their
paired difference, and the per-step KL of both.
Takes a few minutes on one CPU core (T × n × grid work, float64).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import torch

from models.bound import step_kl
from models.data import SWISSROLL_THETA, load_preset
from models.data.registry import _swissroll_norm
from models.files import load_model
from models.kernels import GaussianDist, GaussianKernel, ScheduleTensors

LN2 = math.log(2)


def roll_grid(n: int) -> torch.Tensor:
    a, b = SWISSROLL_THETA
    th = (np.arange(n) + 0.5) / n * (b - a) + a  # θ ~ U(a, b): equal weights on an even grid
    p = np.stack([th * np.cos(th), th * np.sin(th)], 1)
    nm = _swissroll_norm(0.0)
    return torch.tensor((p - np.array(nm.mean)) / nm.std)


@torch.no_grad()
def oracle_terms(beta: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, grid: torch.Tensor, chunk: int = 250):
    """Per-example K (nats) of the moment-matched diagonal-Gaussian oracle and its KL per step [T]."""
    s = ScheduleTensors.from_beta(beta)
    kern = GaussianKernel()
    T = s.T
    g2 = (grid**2).sum(1)
    n = x0.shape[0]
    kl_total = torch.zeros(n, dtype=torch.float64)
    kl_step = torch.zeros(T, dtype=torch.float64)
    for k in range(1, T):
        ab = s.alpha_bar[k]
        xt = kern.q_sample(x0, k, s, eps[k])
        c0 = torch.sqrt(s.alpha_bar_prev[k]) * s.beta[k] / (1 - ab)  # μ̃'s coefficient of x^0
        e1 = torch.empty_like(xt)
        e2 = torch.empty_like(xt)
        for i in range(0, n, chunk):
            xc = xt[i:i + chunk]
            d2 = (xc**2).sum(1, keepdim=True) - 2 * ab.sqrt() * (xc @ grid.T) + ab * g2[None]
            w = torch.softmax(-d2 / (2 * (1 - ab)), dim=1)  # q(x^0 = grid point | x^t)
            e1[i:i + chunk] = w @ grid
            e2[i:i + chunk] = w @ grid**2
        q = kern.q_posterior(x0, xt, k, s)
        mean_p = kern.q_posterior(e1, xt, k, s).mean  # μ̃ is linear in x^0: E[μ̃ | x^t] = μ̃(E[x^0 | x^t])
        var_p = q.var + c0**2 * (e2 - e1**2).clamp_min(0)
        kl = q.kl(GaussianDist(mean_p, var_p))
        kl_total += kl
        kl_step[k] = kl.mean()
    e = kern.edge_terms(x0, s)
    return -kl_total - e["prior_kl"] - e["h_x1_given_x0"] + e["edge"], kl_step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a Swiss-roll model file (the noise-free roll of models/README.md, Presets and data sets)")
    ap.add_argument("--n", type=int, default=2000, help="held-out points (default 2000)")
    ap.add_argument("--grid", type=int, default=40000, help="θ grid points (default 40000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    loaded = load_model(a.model)
    model = loaded.model.double().eval()
    if tuple(model.config.example_shape) != (2,) or not model.is_gaussian:
        print(f"{a.model}: not a 2-D Gaussian (Swiss-roll) model", file=sys.stderr)
        return 2
    x0 = load_preset("swissroll").heldout(a.n).to(torch.float64)
    g = torch.Generator().manual_seed(a.seed)
    beta = model.schedule_tensors().beta.detach()
    T = beta.shape[0]
    t0 = time.perf_counter()
    eps = torch.randn((T, a.n, 2), generator=g, dtype=torch.float64)
    # the model's bound with the same noise draws as the oracle's (common random numbers), so that their
    # difference is measured far more precisely than either K
    s = model.schedule_tensors()
    kl_model = torch.zeros(a.n, T, dtype=torch.float64)
    with torch.no_grad():
        for k in range(1, T):
            kl_model[:, k] = step_kl(model, x0, torch.full((a.n,), k, dtype=torch.long), s, eps[k])
        e = model.kernel.edge_terms(x0, s)
    K_model = (-kl_model.sum(1) - e["prior_kl"] - e["h_x1_given_x0"] + e["edge"]) / LN2
    K_oracle, kl_oracle = oracle_terms(beta, x0, eps, roll_grid(a.grid))
    K_oracle = K_oracle / LN2
    diff = K_oracle - K_model
    res = {
        "model": a.model, "n": a.n, "grid": a.grid, "T": T, "beta_1": float(beta[0]),
        "K_model_bits": float(K_model.mean()), "K_model_stderr": float(K_model.std() / math.sqrt(a.n)),
        "K_oracle_bits": float(K_oracle.mean()), "K_oracle_stderr": float(K_oracle.std() / math.sqrt(a.n)),
        "oracle_minus_model_bits": float(diff.mean()), "oracle_minus_model_stderr": float(diff.std() / math.sqrt(a.n)),
        "kl_model_bits_per_step": (kl_model.mean(0) / LN2).tolist(),
        "kl_oracle_bits_per_step": (kl_oracle / LN2).tolist(),
        "seconds": time.perf_counter() - t0,
    }
    if a.json:
        print(json.dumps(res))
        return 0
    print(f"{a.model}: T = {T}, β_1 = {res['beta_1']:.3g}, {a.n} held-out points, θ grid {a.grid}")
    print(f"  model  K = {res['K_model_bits']:.3f} ± {res['K_model_stderr']:.3f} bits/point")
    print(f"  oracle K = {res['K_oracle_bits']:.3f} ± {res['K_oracle_stderr']:.3f} bits/point "
          "(best diagonal-Gaussian reverse under the same β)")
    print(f"  oracle − model = {res['oracle_minus_model_bits']:.3f} ± {res['oracle_minus_model_stderr']:.3f} bits/point "
          "(same points, same noise)")
    km, ko = res["kl_model_bits_per_step"], res["kl_oracle_bits_per_step"]
    print("  KL per step, bits (model / oracle):")
    for k in range(1, T):
        print(f"    t = {k + 1:3d}  {km[k]:7.3f}  {ko[k]:7.3f}")
    print(f"  ({res['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
