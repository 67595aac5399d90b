"""The best K any factorised (product-of-Bernoullis) reverse process can reach on the heartbeat data.

The heartbeat has 5 equiprobable sequences, so the true reverse step is computable exactly: the
posterior over the 5 sequences given x^t, and from it each bit's reverse marginal
q(x_i^{t−1} = 1 | x^t) = Σ_seq P(seq | x^t)·q(x_i^{t−1} = 1 | x_i^t, x_i^0 = seq_i). A model whose
f_b is a product of Bernoullis (the paper's) does best with exactly these marginals; this script puts
them into the exact bound K and prints it beside the model's K on the same held-out sequences.

    python bench/heartbeat_ceiling.py [resources/models/heartbeat.h5] [--n 2000]
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch

from models.evaluation import exact_K
from models.data import load_preset
from models.files import load_model
from models.kernels import BinomialKernel, ScheduleTensors
from models.kernels.binomial import bernoulli_kl
from models.schedules import binomial_betas

LN2 = math.log(2)


@torch.no_grad()
def factorised_oracle_K(x0: torch.Tensor, T: int = 2000, p_bar: float = 0.2, seed: int = 0):
    """Per-example K (bits) of the factorised oracle, and its KL per step (bits) [T]."""
    s = ScheduleTensors.from_beta(torch.as_tensor(binomial_betas(T)))
    kern = BinomialKernel(p_bar)
    seqs = torch.unique(x0, dim=0)  # the distinct sequences (5), equiprobable
    x0 = x0.to(torch.float64)
    seqs = seqs.to(torch.float64)
    g = torch.Generator().manual_seed(seed)
    kl_total = torch.zeros(x0.shape[0], dtype=torch.float64)
    per = np.zeros(T)
    for k in range(1, T):
        ab = s.alpha_bar[k]
        xt = (torch.rand(x0.shape, generator=g, dtype=torch.float64) < ab * x0 + (1 - ab) * p_bar).double()
        m = ab * seqs + (1 - ab) * p_bar  # q(x^{k+1} = 1 | seq) [S, D]
        w = torch.softmax(xt @ torch.log(m).T + (1 - xt) @ torch.log1p(-m).T, dim=1)  # P(seq | x^{k+1})
        p0 = w @ seqs  # P(x_i^0 = 1 | x^{k+1})
        one, zero = torch.ones_like(xt), torch.zeros_like(xt)
        prob = p0 * kern.q_posterior(one, xt, k, s).prob + (1 - p0) * kern.q_posterior(zero, xt, k, s).prob
        kl = bernoulli_kl(kern.q_posterior(x0, xt, k, s).prob, prob).sum(1)
        kl_total += kl
        per[k] = float(kl.mean()) / LN2
    e = kern.edge_terms(x0, s)
    K = (-kl_total - e["prior_kl"] - e["h_x1_given_x0"] + e["edge"]) / LN2
    return K, per


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", help="a heartbeat model file (optional: its K is printed beside)")
    ap.add_argument("--n", type=int, default=1000, help="held-out sequences (default 1000)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    x0 = load_preset("heartbeat").heldout(a.n)
    K, per = factorised_oracle_K(x0)
    print(f"heartbeat, T = 2000, p̄ = 0.2, {a.n} held-out sequences")
    print(f"  factorised oracle K = {K.mean():.4f} ± {K.std() / math.sqrt(len(K)):.4f} bits/seq "
          f"(ceiling −log2 5 = {-math.log2(5):.4f}; paper −2.414)")
    if a.model:
        lm = load_model(a.model)
        sm = exact_K(lm.model, x0, "bits/seq", torch.Generator().manual_seed(1))
        print(f"  model             K = {sm.K_bits:.4f} ± {sm.K_stderr_bits:.4f} bits/seq ({a.model})")
        model_per = np.asarray(sm.kl_bits_per_step)
    deciles = [(int(i * 2000 / 10), int((i + 1) * 2000 / 10)) for i in range(10)]
    print("  KL by tenth of the chain, bits (oracle" + (" / model" if a.model else "") + "):")
    for lo, hi in deciles:
        row = f"    t = {lo + 1:4d}..{hi:4d}  {per[lo:hi].sum():7.3f}"
        if a.model:
            row += f"  {model_per[lo:hi].sum():7.3f}"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
