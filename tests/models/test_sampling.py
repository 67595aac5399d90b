"""Tests of models/sampling.py: the reverse and forward chains as step generators."""
from __future__ import annotations

import math

import pytest
import torch

from models import sampling

from math_helpers import assert_close, binomial_model, gaussian_model, with_exact_reverse

# ----------------------------------------------------------------------------------------------------
# sampling


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_sampling_generators_order_and_reproducibility(kind):
    T = 8
    m = gaussian_model(T=T, D=3, perturb=0.3) if kind == "gaussian" else binomial_model(T=T, D=20, perturb=0.3)
    D = m.config.D

    def run(seed):
        return list(sampling.reverse_steps(m, 5, generator=torch.Generator().manual_seed(seed)))

    a, b, c = run(1), run(1), run(2)
    assert [st.t for st in a] == list(range(T, -1, -1))
    assert all(st.x.shape == (5, D) for st in a)
    assert all(torch.equal(p.x, q.x) for p, q in zip(a, b))
    assert not torch.equal(a[-1].x, c[-1].x)
    x0 = a[-1].x
    fa = list(sampling.forward_steps(m, x0, generator=torch.Generator().manual_seed(3)))
    fb = list(sampling.forward_steps(m, x0, generator=torch.Generator().manual_seed(3)))
    assert [st.t for st in fa] == list(range(T + 1))
    assert torch.equal(fa[0].x, x0)
    assert all(torch.equal(p.x, q.x) for p, q in zip(fa, fb))
    if kind == "binomial":
        assert all(torch.all((st.x == 0) | (st.x == 1)) for st in a + fa)
    traj, ts = sampling.collect(iter(a), T, stride=3)
    assert ts == sorted(set(range(0, T + 1, 3)) | {0, T})
    assert torch.equal(traj[0], a[-1].x) and torch.equal(traj[-1], a[0].x)
    assert_close(sampling.sample(m, 5, generator=torch.Generator().manual_seed(1)), a[-1].x)


def test_exact_reverse_chain_samples_the_data_distribution():
    """Sanity of reverse_steps itself: with the exact reverse for N(0, I) data, x^0 ~ N(0, I)."""
    T, N = 20, 20000
    m = with_exact_reverse(gaussian_model(T=T, D=2))
    x = sampling.sample(m, N, generator=torch.Generator().manual_seed(0))
    assert torch.all(x.mean(0).abs() < 5 / math.sqrt(N))
    assert torch.all((x.var(0) - 1).abs() < 5 * math.sqrt(2 / N))


# ----------------------------------------------------------------------------------------------------
# keeping part of a run


def test_thin_keeps_every_kth_state_and_the_last():
    steps = [sampling.Step(t, torch.full((2, 1), float(t))) for t in (5, 4, 3, 4, 3, 2, 1, 0)]
    assert [i for i, _ in sampling.thin(steps, 3)] == [0, 3, 6, 7]
    assert [i for i, _ in sampling.thin(steps, 7)] == [0, 7]
    assert [i for i, _ in sampling.thin(steps, 1)] == list(range(8))
    d = sampling.drain(iter(steps), 3)
    assert d.n_states == 8 and list(d.t) == [5, 4, 1, 0] and d.traj.shape == (4, 2, 1)
    assert d.traj.dtype == "float32" and float(d.x[0, 0]) == 0.0 and all(e != e for e in d.ess)  # NaN: no ESS
    last = sampling.drain(iter(steps), 3, keep=False)
    assert last.traj is None and last.n_states == 8 and float(last.x[0, 0]) == 0.0
    assert sampling.stride_for(1000, 2**20, max_bytes=100 * 2**20) == 10
    with pytest.raises(ValueError, match="no state"):
        sampling.drain(iter([]))
