"""models/evaluation.py: the exact K, the live K (unbiased), AIS, Parzen, evaluation data."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.config import ModelConfig
from models.evaluation import (Evaluation, exact_K, live_K, live_strata, parzen_log_likelihood_nats,
                               resolve_eval_data)
from models.model import DiffusionModel


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("T,m", [(10, 3), (40, 64), (1000, 20), (2000, 200), (500, 8)])
def test_live_strata_cover_every_step_once(T, m):
    strata = live_strata(T, m)
    assert len(strata) == min(m, T - 1)
    covered = [k for lo, hi in strata for k in range(lo, hi)]
    assert covered == list(range(1, T))
    assert strata[0] == (1, 2)  # the steepest term is always evaluated exactly


def _model(kind: str) -> tuple[DiffusionModel, torch.Tensor, str]:
    torch.manual_seed(0)
    if kind == "gaussian":
        m = DiffusionModel(ModelConfig(T=16, hidden=16, layers=2)).eval()
        x = torch.tensor([[0.7, -1.2]]).repeat(3000, 1)
        return m, x, "bits/point"
    m = DiffusionModel(ModelConfig(kernel="binomial", T=16, example_shape=(6,), hidden=16, layers=2,
                                   schedule="binomial", param="paper", p_bar=0.3)).eval()
    x = torch.tensor([[1.0, 0, 0, 1, 0, 0]]).repeat(3000, 1)
    return m, x, "bits/seq"


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_live_K_is_an_unbiased_estimate_of_the_exact_K(kind):
    """One example repeated: the mean of 3000 live estimates (3 strata of 15 steps) and of 3000 exact
    sums agree within 4 combined standard errors, while the strata's terms differ by far more."""
    m, x, unit = _model(kind)
    ex = exact_K(m, x, unit, generator=torch.Generator().manual_seed(1))
    lv = live_K(m, x, unit, n_steps=3, generator=torch.Generator().manual_seed(2))
    assert lv.method == "live" and ex.method == "exact" and lv.n == ex.n == 3000
    tol = 4 * math.hypot(ex.K_stderr_bits, lv.K_stderr_bits)
    assert abs(lv.K_bits - ex.K_bits) < tol, (lv.K_bits, ex.K_bits, tol)
    # the test can fail: counting each stratum's drawn term once (no size weight) is far off
    kl = ex.kl_bits_per_step
    unweighted = ex.K_bits + kl[1:].sum() - sum(kl[lo:hi].mean() for lo, hi in live_strata(m.T, 3))
    assert abs(unweighted - ex.K_bits) > 10 * tol
    assert lv.K_minus_Lnull_bits - lv.K_bits == pytest.approx(ex.K_minus_Lnull_bits - ex.K_bits)


def test_live_K_with_a_stratum_per_step_is_the_exact_sum():
    m, x, unit = _model("gaussian")
    x = x[:50]
    ex = exact_K(m, x, unit, generator=torch.Generator().manual_seed(5))
    lv = live_K(m, x, unit, n_steps=m.T - 1, generator=torch.Generator().manual_seed(6))
    assert np.isfinite(lv.kl_bits_per_step).all()
    assert abs(lv.K_bits - ex.K_bits) < 4 * math.hypot(ex.K_stderr_bits, lv.K_stderr_bits)


def test_exact_K_reports_its_terms_and_cap():
    m, x, unit = _model("gaussian")
    ev = exact_K(m, x[:64], unit, generator=torch.Generator().manual_seed(0), batch_size=20)
    assert isinstance(ev, Evaluation) and ev.n == 64 and ev.T == m.T and ev.unit == unit
    assert ev.kl_bits_per_step.shape == (m.T,) and ev.kl_bits_per_step[0] == 0
    assert ev.beta_1 == pytest.approx(float(m.schedule_tensors().beta[0]))
    assert ev.cap_bits is not None and ev.K_minus_Lnull_bits <= ev.cap_bits
    d = ev.to_dict()
    assert d["n_eval"] == 64 and d["K_bits"] == ev.K_bits and "ais_bits" not in d
    b, xb, ub = _model("binomial")
    assert exact_K(b, xb[:8], ub).cap_bits is None


def test_parzen_matches_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    x, s = torch.randn(7, 3, generator=g), torch.randn(11, 3, generator=g)
    sigma = 0.4
    got = parzen_log_likelihood_nats(x, s, sigma, chunk=3)
    comp = torch.distributions.Normal(s.double(), sigma)
    want = torch.logsumexp(comp.log_prob(x.double()[:, None]).sum(-1), dim=1) - np.log(11)
    torch.testing.assert_close(got, want)
    both = parzen_log_likelihood_nats(x, s, [sigma, 1.0])
    torch.testing.assert_close(both[0], want)


def test_resolve_eval_data_refuses_a_file_that_names_no_data(tmp_path):
    from models.data import DataError
    from models.files import load_model, save_model

    m, _, _ = _model("gaussian")
    save_model(tmp_path / "m.h5", m, norm={"mean": 0.0, "std": 1.0, "levels": None})
    with pytest.raises(DataError, match="m.h5"):
        resolve_eval_data(load_model(tmp_path / "m.h5"))
