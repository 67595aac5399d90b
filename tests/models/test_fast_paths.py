"""Tests of the shortcuts that keep the trainer and the sampler cheap on a small network (bench/overhead.py):
each must give the numbers of the plain computation it replaces."""
from __future__ import annotations

import copy

import pytest
import torch

from math_helpers import learned_betas, odd_betas, sched
from models.config import ModelConfig
from models.kernels import ScheduleTensors, coefficients, gather
from models.kernels.gaussian import COLUMNS, GaussianKernel
from models.model import DiffusionModel
from models.schedules import Schedule, reference_betas
from models.training import _by_device_and_dtype, _clip_grads_, _FusedAdamStep, _grad_norm, _grads


def _mixed_params(seed: int) -> list[torch.Tensor]:
    """Parameters of two dtypes, as a model with a learned β has (float64 coefficients first)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [((10,), torch.float64), ((12, 64), torch.float32), ((64,), torch.float32), ((40, 64), torch.float32)]
    return [torch.randn(s, generator=g, dtype=dt).requires_grad_(True) for s, dt in shapes]


def _set_grads(params, seed: int, scale: float) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype) * scale


@pytest.mark.parametrize("max_norm, scale", [(1.0, 1.0), (0.3, 3.0), (1.0, 1e-3), (None, 1.0)])
def test_grad_norm_and_clipping_are_torchs_clip_grad_norm_to_the_last_bit(max_norm, scale):
    for seed in range(12):
        a, b = _mixed_params(seed), _mixed_params(seed)
        _set_grads(a, 100 + seed, scale)
        _set_grads(b, 100 + seed, scale)
        if max_norm is None:
            want = torch.nn.utils.get_total_norm([p.grad for p in a], foreach=True)
        else:
            want = torch.nn.utils.clip_grad_norm_(a, max_norm, foreach=True)
        grads = _grads(_by_device_and_dtype(b))
        got = _grad_norm(grads)
        if max_norm is not None:
            _clip_grads_(grads, max_norm, float(got))
        assert torch.equal(got, want)
        assert all(torch.equal(p.grad, q.grad) for p, q in zip(a, b))
        if max_norm is not None and scale >= 1.0:  # clipping did act
            norm = torch.linalg.vector_norm(torch.stack([q.grad.norm().double() for q in b]))
            assert float(norm) == pytest.approx(max_norm)


def test_fused_adam_step_is_optimizer_step_to_the_last_bit_also_after_loading_a_state():
    a, b = _mixed_params(0), _mixed_params(0)

    def adam(ps):
        return torch.optim.Adam([{"params": ps[1:], "lr": 1e-2}, {"params": ps[:1], "lr": 3e-3}], fused=True)

    oa, ob = adam(a), adam(b)
    fast = _FusedAdamStep(ob)
    for i in range(6):
        _set_grads(a, 10 + i, 1.0)
        _set_grads(b, 10 + i, 1.0)
        for g in (*oa.param_groups, *ob.param_groups):
            g["lr"] *= 0.9  # the trainer's learning-rate decay
        oa.step()
        fast()
    assert fast._plan is not None  # steps after the first took the shortcut
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    sa, sb = oa.state_dict()["state"], ob.state_dict()["state"]
    assert all(torch.equal(sa[i][key], sb[i][key]) for i in sa for key in sa[i])
    # a state loaded into the optimiser (a resumed run) is the one stepped from then on
    state = oa.state_dict()
    ob.load_state_dict(copy.deepcopy(state))  # (a loaded state may share the tensors it was given)
    oa.load_state_dict(copy.deepcopy(state))
    _set_grads(a, 99, 1.0)
    _set_grads(b, 99, 1.0)
    oa.step()
    fast()
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert all(torch.equal(oa.state[p]["step"], ob.state[q]["step"]) for p, q in zip(a, b))
    # a parameter without a gradient is left alone, as optimizer.step() leaves it
    before = b[0].detach().clone()
    _set_grads(b, 100, 1.0)
    b[0].grad = None
    fast()
    assert torch.equal(b[0], before) and not torch.equal(b[1], a[1])


@pytest.mark.parametrize("betas", [odd_betas(12), learned_betas(30), reference_betas(50)])
def test_coefficients_are_their_formulas_at_every_step(betas):
    s = sched(betas)
    T = s.T
    b, a, ap = s.beta, s.alpha_bar, s.alpha_bar_prev
    want = {"sqrt_abar": torch.sqrt(a), "post_c0": torch.sqrt(ap) * b / (1 - a), "post_var": b * (1 - ap) / (1 - a),
            "logit_beta": torch.log(b) - torch.log1p(-b), "log_post_var": torch.log(b * (1 - ap) / (1 - a))}
    names = tuple(want)
    k = torch.tensor([1, 2, T - 1, 5, 1, 3, T - 2])
    for dtype, tol in ((torch.float64, 1e-13), (torch.float32, 1e-7)):  # (logit β near β = ½: atol)
        x = torch.zeros(7, 3, 2, dtype=dtype)
        got = coefficients(s, k, x, names, COLUMNS)
        for g, n in zip(got, names):
            assert g.shape == (7, 1, 1) and g.dtype == dtype
            torch.testing.assert_close(g, gather(want[n], k, x), rtol=tol, atol=1e-15)
        for kk in (0, 4, T - 1):  # an int step without gradient: Python floats, the table's values
            vals = coefficients(s, kk, x, names, COLUMNS)
            assert all(isinstance(v, float) for v in vals)
            kv = torch.full((7,), kk)
            assert vals == tuple(float(v[0, 0, 0]) for v in coefficients(s, kv, x, names, COLUMNS))
    # at k = 0 (t = 1) 1 − ᾱ_0 = 0: the posterior's weights on x^0 and its variance are 0, not NaN
    c0, var = coefficients(s, 0, torch.zeros(1, 2), ("post_c0", "post_var"), COLUMNS)
    assert c0 != 0 and var == 0.0


def test_a_table_made_without_gradient_is_not_used_where_the_schedule_is_learned():
    sch = Schedule(reference_betas(20), learn=True)
    with torch.no_grad():
        sch.coeffs.normal_()
    s = ScheduleTensors.from_beta(sch())
    x0 = torch.randn(4, 2)
    k = torch.tensor([1, 5, 9, 19])
    with torch.no_grad():
        GaussianKernel().q_sample(x0, k, s, torch.ones_like(x0))  # tables without gradient
        GaussianKernel().q_sample(x0, 3, s, torch.ones_like(x0))
    GaussianKernel().q_sample(x0, k, s, torch.ones_like(x0)).sum().backward()
    assert sch.coeffs.grad is not None and float(sch.coeffs.grad.abs().sum()) > 0


def test_learned_alpha_bar_gradient_is_cumprods():
    sch = Schedule(reference_betas(40), learn=True)
    with torch.no_grad():
        sch.coeffs.normal_()
    w = torch.randn(40, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    (ScheduleTensors.from_beta(sch()).alpha_bar * w).sum().backward()
    got = sch.coeffs.grad.clone()
    sch.coeffs.grad = None
    (torch.cumprod(1 - sch(), 0) * w).sum().backward()
    assert torch.equal(got, sch.coeffs.grad)


def test_a_schedules_constants_follow_a_loaded_base():
    a, b = Schedule(reference_betas(20), learn=True), Schedule(reference_betas(20, beta_1=1e-4) * 0.5, learn=True)
    before = a().detach().clone()
    a.load_state_dict(b.state_dict())
    assert torch.equal(a(), b()) and not torch.equal(a(), before)


@pytest.mark.parametrize("param", ["code", "paper", "posterior"])
def test_the_per_step_kl_with_gathered_coefficients_equals_the_per_call_one(param):
    """step_kl gathers every coefficient of a step at once; calling the pieces one by one gives the same."""
    from models.bound import step_kl

    cfg = ModelConfig(kernel="gaussian", T=25, example_shape=(2,), arch="mlp", hidden=16, layers=2, readout="bump",
                      J=5, schedule="linear", learn_beta=True, param=param)
    torch.manual_seed(0)
    m = DiffusionModel(cfg).double()
    with torch.no_grad():
        m.schedule.coeffs.normal_()
    x0 = torch.randn(16, 2, dtype=torch.float64)
    noise = torch.randn(16, 2, dtype=torch.float64)
    k = torch.randint(1, 25, (16,), generator=torch.Generator().manual_seed(1))
    kl = step_kl(m, x0, k, m.schedule_tensors(), noise)
    s = m.schedule_tensors()
    x_t = m.kernel.q_sample(x0, k, s, noise)
    ref = m.kernel.q_posterior(x0, x_t, k, s).kl(m.reverse_step(x_t, k, s))
    torch.testing.assert_close(kl, ref, rtol=1e-12, atol=1e-12)
    # the edge terms collected in a few operations are the sum of the reported ones
    e = m.kernel.edge_terms(x0, s)
    torch.testing.assert_close(m.kernel.edge_K(x0, s), -e["prior_kl"] - e["h_x1_given_x0"] + e["edge"],
                               rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("var_shape", [(6, 3), (6, 1), ()])
def test_the_gaussian_kl_gradient_is_autograds_through_the_formula(var_shape):
    from models.kernels import GaussianDist

    g = torch.Generator().manual_seed(0)
    mq, mp = (torch.randn(6, 3, generator=g, dtype=torch.float64).requires_grad_(True) for _ in range(2))
    vq = (torch.rand(var_shape, generator=g, dtype=torch.float64) + 0.1).requires_grad_(True)
    vp = (torch.rand(6, 3, generator=g, dtype=torch.float64) + 0.1).requires_grad_(True)

    def kl(mq, vq, mp, vp):
        return GaussianDist(mq, vq).kl(GaussianDist(mp, vp))

    assert torch.autograd.gradcheck(kl, (mq, vq, mp, vp))
    ref = (0.5 * (torch.log(vp) - torch.log(vq) + (vq + (mq - mp) ** 2) / vp - 1)).sum(1)
    w = torch.randn(6, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((kl(mq, vq, mp, vp) * w).sum(), (mq, vq, mp, vp))
    want = torch.autograd.grad((ref * w).sum(), (mq, vq, mp, vp))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kl(mq, vq, mp, vp), ref, rtol=1e-12, atol=1e-12)
    # a detached mean (the hybrid objective's) gets no gradient and the others theirs
    out = kl(mq, vq, mp.detach(), vp)
    assert out.grad_fn is not None


@pytest.mark.parametrize("param", ["code", "paper", "posterior", "unet"])
def test_the_samplers_fast_step_draws_the_plain_chains_numbers_bit_for_bit(param, monkeypatch):
    """sampling._fast_step (no distribution objects, in place) against reverse_step(...).sample(...) at every
    step: the same x^0 to the last bit, through sample() and through reverse_steps()."""
    from models import sampling

    if param == "unet":  # an image model (sinusoidal step features, the ε-style posterior parameterisation)
        cfg = ModelConfig(kernel="gaussian", T=12, example_shape=(1, 8, 8), arch="unet", hidden=8, conv_layers=1,
                          n_scales=2, time_features=8, schedule="reference", learn_beta=False, param="posterior")
    else:
        cfg = ModelConfig(kernel="gaussian", T=12, example_shape=(3,), arch="mlp", hidden=16, layers=2,
                          readout="bump", J=5, schedule="linear", learn_beta=True, param=param)
    torch.manual_seed(0)
    m = DiffusionModel(cfg)
    with torch.no_grad():
        if cfg.learn_beta:
            m.schedule.coeffs.normal_()
        for p in m.net.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    assert sampling._has_fast_step(m)

    def runs():
        a = sampling.sample(m, 33, generator=torch.Generator().manual_seed(5))
        b = [st.x for st in sampling.reverse_steps(m, 33, generator=torch.Generator().manual_seed(5))]
        return a, b

    monkeypatch.setattr(sampling, "FOLD_STEP", False)  # the network called as reverse_step calls it
    fast, fast_steps = runs()
    monkeypatch.setattr(sampling, "FOLD_STEP", True)
    folded = sampling.sample(m, 33, generator=torch.Generator().manual_seed(5))
    monkeypatch.setattr(sampling, "_has_fast_step", lambda model: False)
    plain, plain_steps = runs()
    assert torch.equal(fast, plain) and torch.equal(fast, fast_steps[-1])
    assert len(fast_steps) == len(plain_steps) == 13
    assert all(torch.equal(p, q) for p, q in zip(fast_steps, plain_steps))
    # with the step's time rows folded into the weights (MLP nets): the same draws up to float rounding
    torch.testing.assert_close(folded, plain, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kw", [dict(readout="bump", time_features=5), dict(readout="bump", time_features=0),
                                dict(readout="per_step", time_features=3), dict(readout="bump", skip=4.0)])
def test_an_mlp_at_one_step_is_its_forward_up_to_rounding(kw):
    from models.networks import MLPNet

    torch.manual_seed(0)
    net = MLPNet(3, 2, 30, hidden=16, layers=2, J=6, **kw)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        x = torch.randn(50, 3, generator=torch.Generator().manual_seed(1))
        for k in (0, 1, 17, 29):
            want = net(x, torch.full((50,), k))
            torch.testing.assert_close(net.at_step(x, k), want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(net.double().at_step(x.double(), k), net(x.double(), torch.full((50,), k)),
                                       rtol=1e-12, atol=1e-12)
            net.float()


def test_the_fast_step_leaves_replaced_reverse_steps_and_binomial_models_alone():
    from math_helpers import binomial_model, gaussian_model, with_exact_reverse
    from models import sampling

    assert not sampling._has_fast_step(with_exact_reverse(gaussian_model(T=6)))
    assert not sampling._has_fast_step(binomial_model(T=6))
    assert sampling._has_fast_step(gaussian_model(T=6, param="code"))


def _learned_model(param: str, T: int = 25, D: int = 2, seed: int = 0) -> DiffusionModel:
    cfg = ModelConfig(kernel="gaussian", T=T, example_shape=(D,), arch="mlp", hidden=16, layers=2, readout="bump",
                      J=5, schedule="linear", learn_beta=True, param=param)
    torch.manual_seed(seed)
    m = DiffusionModel(cfg).double()
    with torch.no_grad():
        m.schedule.coeffs.normal_()
        for p in m.net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return m


def _loss_and_grads(m: DiffusionModel, steps: int, seed: int = 3):
    from models.bound import sampled_K_nats

    for p in m.parameters():
        p.grad = None
    x0 = torch.randn(24, *m.config.example_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    K = sampled_K_nats(m, x0, steps, torch.Generator().manual_seed(seed + 1))
    (K * torch.linspace(-1, 2, 24, dtype=torch.float64)).sum().backward()
    return K.detach(), [p.grad.clone() for p in m.parameters()]


@pytest.mark.parametrize("param", ["code", "paper", "posterior"])
@pytest.mark.parametrize("D", [2, 5])
def test_full_shape_coefficients_give_the_plain_numbers_and_gradients(param, D, monkeypatch):
    """prefetch's coefficients at the state's full shape (small states): K and every gradient (network
    and learned β) as with the broadcast [B, 1] ones, on a random model, data and steps."""
    import models.kernels as kernels

    m = _learned_model(param, D=D)
    fast = _loss_and_grads(m, 6)
    monkeypatch.setattr(kernels, "FULL_ROWS", False)
    plain = _loss_and_grads(m, 6)
    torch.testing.assert_close(fast[0], plain[0], rtol=1e-13, atol=1e-12)
    for a, b in zip(fast[1], plain[1]):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-13)
