"""Tests of models/posterior.py: conditioning the reverse chain on r(x) (Eq. 22, App. C)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models import posterior, sampling
from models.kernels import BernoulliDist, GaussianDist
from models.schedules import reference_betas

from math_helpers import assert_close, binomial_model, gaussian_model, heartbeat_batch, with_exact_reverse

# ----------------------------------------------------------------------------------------------------
# posterior conditions (§2.5, Eq. 22–23, App. C)


def test_clamp_inpainting_keeps_known_coordinates_exactly():
    m = gaussian_model(T=10, D=4, perturb=0.3)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(8, 4, generator=g)
    known = torch.tensor([True, False, True, False])
    for last_step in (True, False):
        steps = list(sampling.reverse_steps(m, x_T=posterior.inpaint_start(y, known, g), generator=g,
                                            condition=posterior.Clamp(y, known), last_step=last_step))
        assert [st.t for st in steps] == list(range(10, -1, -1))
        for st in steps:
            assert torch.equal(st.x[:, known], y[:, known])
        assert not torch.allclose(steps[-1].x[:, ~known], y[:, ~known])
    # all known: the result is y
    allk = torch.ones(4, dtype=torch.bool)
    x = sampling.sample(m, 8, generator=g, x_T=posterior.inpaint_start(y, allk, g), condition=posterior.Clamp(y, allk))
    assert torch.equal(x, y)
    # binomial clamp
    mb = binomial_model(T=10, D=20, perturb=0.3)
    yb = heartbeat_batch(6, g)
    kb = torch.zeros(20, dtype=torch.bool)
    kb[:10] = True
    xb = sampling.sample(mb, 6, generator=g, condition=posterior.Clamp(yb, kb))
    assert torch.equal(xb[:, kb], yb[:, kb])


def _gp_chain_moments(beta: np.ndarray, y: float, obs_var: float, lam) -> tuple[float, float]:
    """Mean and variance of x^0 from the chain x^T ~ N(0, 1), x^k ~ N(√(1−β)x^{k+1}, β)·N(x^k; y, obs_var/λ_k)
    (normalised per x^{k+1}), for the exact reverse of N(0, 1) data: a linear-Gaussian recursion."""
    m, v = 0.0, 1.0
    for k in range(len(beta) - 1, -1, -1):
        c = 1.0 / (1.0 / beta[k] + lam(k) / obs_var)
        a = c * math.sqrt(1 - beta[k]) / beta[k]
        m, v = a * m + c * lam(k) * y / obs_var, a * a * v + c
    return m, v


@pytest.mark.parametrize("schedule", ["constant", "annealed"])
def test_gaussian_product_denoising_with_an_exact_reverse(schedule):
    """Denoising y with r(x) = N(x; y, σ²) for data N(0, 1), where the true posterior is
    N(y/(1+σ²), σ²/(1+σ²)).

    Finding (documented here, reported): the paper's recipe (Eq. 22–23) — multiply every normalised reverse
    step by the same r and start at the prior — does *not* sample p·r. For a reversible step K and a tilt r,
    the normalised tilted kernel K̃(x'|x) = K(x'|x)r(x')/Z(x) has stationary density ∝ π(x)·r(x)·Z(x), and
    Z(x) = ∫K(x'|x)r(x')dx' → r(x) for small steps: the chain converges to ∝ π·r², i.e. the observation is
    counted twice (mean 2y/(2+σ²), variance σ²/(2+σ²)). With the reference schedule at T = 20 and σ² = 1 the
    chain gives N(0.649·y, 0.349) (p·r²: N(0.667·y, 0.333)) instead of the posterior N(0.5·y, 0.5); starting
    at x^T = y (the reference code) or at p̃(x^T) ∝ π·r changes this only slightly (0.666·y, 0.657·y). The test checks the implementation against that
    exact recursion (so GaussianProduct itself is right), and documents the gap to the true posterior.
    A time-dependent r_k(x^k) = p(y | x^k) = N(y; √ᾱ_k x^k, σ² + 1 − ᾱ_k), started from p(x^T | y), does give
    the exact posterior (last check)."""
    T, N, obs_var = 20, 20000, 1.0
    beta = reference_betas(T)
    m = with_exact_reverse(gaussian_model(T=T, D=2, betas=beta))
    yv = torch.tensor([1.5, -0.5])
    y = yv.expand(N, 2)
    g = torch.Generator().manual_seed(0)
    cond = posterior.GaussianProduct(y, obs_var, T, schedule=schedule)
    x = sampling.sample(m, N, generator=g, condition=cond)
    lam = (lambda k: 1.0) if schedule == "constant" else (lambda k: (T - k) / T)
    for d in range(2):
        mu, var = _gp_chain_moments(beta, float(yv[d]), obs_var, lam)
        assert float(x[:, d].mean()) == pytest.approx(mu, abs=5 * math.sqrt(var / N))
        assert float(x[:, d].var()) == pytest.approx(var, rel=5 * math.sqrt(2 / N))
        if schedule == "constant":
            exact_mu, exact_var = float(yv[d]) / (1 + obs_var), obs_var / (1 + obs_var)
            r2_mu, r2_var = 2 * float(yv[d]) / (2 + obs_var), obs_var / (2 + obs_var)
            assert abs(var - exact_var) > 0.1  # not the posterior p·r …
            assert abs(var - r2_var) < 0.03  # … but close to p·r² already at T = 20
            assert abs(mu - r2_mu) < 0.05 * abs(r2_mu) + 1e-9
    if schedule == "constant":
        # the exact alternative: r_k(x) = N(y; √ᾱ_k x, σ² + 1 − ᾱ_k) and x^T ~ p(x^T | y)
        s = m.schedule_tensors()
        abar_at = torch.cat([torch.ones(1, dtype=torch.float64), s.alpha_bar])  # ᾱ at paper time t = 0..T

        def exact_condition(k, x_t, dist):
            a = float(abar_at[k])
            v_r = (obs_var + 1 - a) / a  # as a Gaussian in x: N(x; y/√a, (σ²+1−a)/a)
            prec = 1 / dist.var + 1 / v_r
            return GaussianDist((dist.mean / dist.var + y / math.sqrt(a) / v_r) / prec, 1 / prec)

        aT = float(abar_at[-1])
        x_T = math.sqrt(aT) * y / (1 + obs_var) + math.sqrt(1 - aT / (1 + obs_var)) * torch.randn(N, 2, generator=g)
        x = sampling.sample(m, N, generator=g, x_T=x_T, condition=exact_condition)
        for d in range(2):
            exact_mu, exact_var = float(yv[d]) / (1 + obs_var), obs_var / (1 + obs_var)
            assert float(x[:, d].mean()) == pytest.approx(exact_mu, abs=5 * math.sqrt(exact_var / N))
            assert float(x[:, d].var()) == pytest.approx(exact_var, rel=5 * math.sqrt(2 / N))


def test_gaussian_product_step_is_the_exact_product_of_gaussians():
    g = torch.Generator().manual_seed(0)
    mean, var = torch.randn(5, 3, generator=g), torch.rand(5, 3, generator=g) + 0.1
    y = torch.randn(5, 3, generator=g)
    known = torch.tensor([True, True, False])
    d = posterior.GaussianProduct(y, 0.5, 10, known=known)(3, None, GaussianDist(mean, var))
    v = 1 / (1 / var + 1 / 0.5)
    mu = v * (mean / var + y / 0.5)
    assert_close(d.mean[:, :2], mu[:, :2])
    assert_close(d.var[:, :2], v[:, :2])
    assert_close(d.mean[:, 2], mean[:, 2])
    assert_close(d.var[:, 2], var[:, 2])


def test_binomial_r_fixes_bits():
    T = 10
    mb = binomial_model(T=T, D=20, perturb=0.5)
    r = torch.full((20,), 0.5)
    r[[0, 3, 7]] = 1.0
    r[[1, 2, 19]] = 0.0
    g = torch.Generator().manual_seed(0)
    for schedule in ("constant", "annealed"):
        x = sampling.sample(mb, 64, generator=g, condition=posterior.BinomialR(r, T, schedule=schedule))
        assert torch.all(x[:, [0, 3, 7]] == 1) and torch.all(x[:, [1, 2, 19]] == 0)
        free = x[:, 4:7]
        assert 0 < float(free.mean()) < 1
    # the Table App.1 formula at one step
    c = torch.tensor([[0.3, 0.6, 0.9]])
    d = torch.tensor([0.2, 0.5, 0.7])
    out = posterior.BinomialR(d, T)(4, None, BernoulliDist(c)).prob
    assert_close(out, c * d / (c * d + (1 - c) * (1 - d)))


def test_binomial_r_fixes_bits_even_where_the_model_is_certain():
    """A confident model outputs probabilities that round to exactly 0 or 1 in float32 (σ(z) = 1 for
    z ≳ 17); fixing a bit against it must still fix the bit (r is a hard constraint)."""
    T = 6
    mb = binomial_model(T=T, D=4)

    def certain(x_t, k, s=None):
        return BernoulliDist(torch.tensor([1.0, 0.0, 1.0, 0.0]).expand(x_t.shape[0], 4).clone())

    mb.reverse_step = certain
    r = torch.tensor([0.0, 1.0, 0.5, 0.5])
    x = sampling.sample(mb, 16, generator=torch.Generator().manual_seed(0), condition=posterior.BinomialR(r, T))
    assert torch.all(x[:, 0] == 0) and torch.all(x[:, 1] == 1)
    assert torch.all(x[:, 2] == 1) and torch.all(x[:, 3] == 0)


def test_smooth_shift_moves_means_toward_a_gaussian_r():
    """log r = −|x − c|²/(2s²): App. C's shift is μ + Σ∇log r(μ) = μ + Σ(c − μ)/s², toward c."""
    g = torch.Generator().manual_seed(0)
    c, s2 = torch.tensor([2.0, -1.0]), 4.0

    def log_r(x):
        return -((x - c) ** 2).sum(1) / (2 * s2)

    mean, var = torch.randn(10, 2, generator=g), torch.rand(10, 2, generator=g) * 0.5 + 0.01
    d = posterior.SmoothShift(log_r, 10)(5, None, GaussianDist(mean, var))
    assert_close(d.mean, mean + var * (c - mean) / s2)
    assert_close(d.var, var)
    assert torch.all((d.mean - c).abs() < (mean - c).abs())
    # along a whole chain (exact reverse of N(0, 1) data): the samples' mean moves toward c
    T, N = 20, 4000
    m = with_exact_reverse(gaussian_model(T=T, D=2))
    plain = sampling.sample(m, N, generator=torch.Generator().manual_seed(1))
    shifted = sampling.sample(m, N, generator=torch.Generator().manual_seed(1), condition=posterior.SmoothShift(log_r, T))
    assert torch.all((shifted.mean(0) - c).abs() < (plain.mean(0) - c).abs() - 0.2)
    with pytest.raises(ValueError):
        posterior.SmoothShift(log_r, T, schedule="sometimes")


def test_repaint_ends_with_known_equal_to_y():
    T = 20
    m = gaussian_model(T=T, D=4, perturb=0.3)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(5, 4, generator=g)
    known = torch.tensor([False, True, True, False])
    steps = list(posterior.repaint_steps(m, y, known, jump_length=5, jump_n=3, generator=g))
    ts = [st.t for st in steps]
    assert ts[0] == T and ts[-1] == 0
    assert all(abs(a - b) == 1 for a, b in zip(ts[:-1], ts[1:]))
    assert len(ts) > T + 1  # it did jump back
    assert torch.equal(steps[-1].x[:, known], y[:, known])
    assert not torch.allclose(steps[-1].x[:, ~known], y[:, ~known])
    # on the way down, the known coordinates are forward-noised observations: x^t_known ~ q(x^t | y)
    N = 4000
    yy = y[:1].expand(N, 4)
    first_visit = {}
    for st in posterior.repaint_steps(m, yy, known, jump_length=5, jump_n=2, generator=g):
        first_visit.setdefault(st.t, st.x)
    s = m.schedule_tensors()
    for t in (T - 1, 12, 3, 1):
        q = m.kernel.q_marginal(y[:1], t - 1, s)  # q(x^t | x^0 = y)
        mean, var = q.mean, q.var
        xk = first_visit[t][:, known]
        assert torch.all((xk.mean(0) - mean[0, known]).abs() < 5 * (var[0, known] / N).sqrt()), t
        assert torch.all((xk.var(0) / var[0, known] - 1).abs() < 5 * math.sqrt(2 / N)), t


# ----------------------------------------------------------------------------------------------------
# the grid look-up of log r: one implementation, cells read at their centres


def _bench():
    """bench/posterior_bias.py (models with analytic reverse steps)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "posterior_bias.py"
    spec = importlib.util.spec_from_file_location("posterior_bias", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("softness", [0.0, 0.5])
def test_grid_log_r_reads_each_cell_at_its_centre(softness):
    """The soft (softness > 0) and the hard (softness = 0) painted region put the region in the same place:
    at a cell's centre log r is that cell's grid value. (Before, the hard path looked the grid up with
    align_corners=True, half a cell away from the soft path's cell centres.)"""
    ext = (0.0, 8.0, -4.0, 4.0)
    w = np.zeros((8, 8), np.float32)
    w[:, 5] = 1  # one painted column, cells x ∈ [5, 6]
    L = posterior.region_log_r(w, ext, softness)
    log_r = posterior.GridLogR(L, ext, softness)
    xs, ys = posterior.cell_centres(ext, (8, 8))
    assert xs[5] == 5.5 and ys[0] == -3.5
    px, py = np.meshgrid(xs, ys)
    pts = torch.tensor(np.stack([px.ravel(), py.ravel()], 1), dtype=torch.float32)
    got = log_r(pts).reshape(8, 8).numpy()
    np.testing.assert_allclose(got, L, atol=1e-5)
    along = log_r(torch.tensor([[x, 0.5] for x in np.linspace(0.5, 7.5, 57)], dtype=torch.float32))
    assert float(np.linspace(0.5, 7.5, 57)[int(along.argmax())]) == pytest.approx(5.5, abs=0.07)


def test_laplace_shift_never_overshoots_where_the_first_order_shift_diverges():
    """A smooth r with log r = −d²/(2s²): the first-order shift μ + Σ∇log r overshoots when Σ > 2s² (the
    painted-region divergence); with the curvature the step is the exact Gaussian product."""
    c, s2 = torch.tensor([[2.0, 1.0]]), 0.25**2
    log_r = lambda x: -((x - c) ** 2).sum(1) / (2 * s2)  # noqa: E731
    mean, var = torch.tensor([[-1.0, 0.0]]), torch.full((1, 2), 0.5)
    d = GaussianDist(mean, var)
    first = posterior.SmoothShift(log_r, 10)(3, None, d)
    laplace = posterior.SmoothShift(log_r, 10, curvature=lambda v: torch.full_like(v, 1 / s2))(3, None, d)
    assert float((first.mean - c).abs().max()) > float((mean - c).abs().max())  # overshoots
    v_exact = 1 / (1 / 0.5 + 1 / s2)
    assert_close(laplace.var, torch.full((1, 2), v_exact), rtol=1e-6)
    assert_close(laplace.mean, v_exact * (mean / 0.5 + c / s2), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------------
# RePaint's time list


def _old_repaint_times(T, jump_length, jump_n):
    """The walk as the loop used to produce it, step by step."""
    t, out, done = T, [T], {}
    while t > 0:
        t -= 1
        out.append(t)
        if t > 0 and t % jump_length == 0 and t + jump_length <= T and done.get(t, 0) < jump_n - 1:
            done[t] = done.get(t, 0) + 1
            out.extend(range(t + 1, t + jump_length + 1))
            t += jump_length
    return out


@pytest.mark.parametrize("T,jl,jn", [(20, 5, 3), (23, 5, 2), (10, 10, 4), (12, 3, 1), (7, 1, 2)])
def test_repaint_times_is_the_jump_rule(T, jl, jn):
    times = posterior.repaint_times(T, jl, jn)
    assert times == _old_repaint_times(T, jl, jn)
    assert times[0] == T and times[-1] == 0
    assert all(abs(a - b) == 1 for a, b in zip(times[:-1], times[1:]))
    points = sum(1 for t in range(jl, T, jl) if t + jl <= T)
    assert len(times) == 1 + T + points * (jn - 1) * 2 * jl


# ----------------------------------------------------------------------------------------------------
# sequential Monte Carlo: exact for p·r as the particles grow


def test_smc_denoising_samples_p_times_r_on_the_exact_model():
    """N(0, 1) data, exact reverse steps, r = N(y, σ²): p·r = N(y/(1 + σ²), σ²/(1 + σ²)), where the
    product chain is far off (tests/models/test_conditioning.py)."""
    m = with_exact_reverse(gaussian_model(T=20, D=1))
    y, s2, n = 1.5, 0.25, 3000
    r = posterior.GaussianR(torch.tensor([[y]]), s2)
    steps = list(posterior.smc_steps(m, n=n, particles=32, generator=torch.Generator().manual_seed(0), smooth=r))
    assert [st.t for st in steps] == list(range(20, -1, -1))
    assert all(0 < st.ess <= 1 for st in steps) and min(st.ess for st in steps) < 0.95  # weights did work
    x = steps[-1].x[:, 0].double()
    mean, var = y / (1 + s2), s2 / (1 + s2)
    assert abs(float(x.mean()) - mean) < 5 * math.sqrt(var / n)
    assert abs(float(x.var()) / var - 1) < 5 * math.sqrt(2 / n) + 0.02


def test_smc_conditions_a_correlated_gaussian_exactly_where_the_clamp_does_not():
    B = _bench()
    model = B.ExactGaussian([[1, 0.8], [0.8, 1]], T=40)
    mm, S = model.output_law()
    y = 1.5
    c_mean, c_var = mm[1] + S[0, 1] / S[0, 0] * (y - mm[0]), S[1, 1] - S[0, 1] ** 2 / S[0, 0]
    yv, kn = torch.tensor([y, 0.0]), torch.tensor([True, False])
    smc = B.gauss_errors(B.run_method(model, yv, kn, "smc", 1000, 0, particles=32), c_mean, c_var)
    clamp = B.gauss_errors(B.run_method(model, yv, kn, "clamp", 1000, 0), c_mean, c_var)
    assert abs(smc["mean_err_sd"]) < 0.13 and abs(smc["var_err_pct"]) < 18  # ≈ 5 standard errors
    assert clamp["mean_err_sd"] < -0.3 and clamp["var_err_pct"] > 15  # the paper's clamp: low and wide


def test_smc_fixes_bits_with_the_exact_conditional_law():
    B = _bench()
    table = np.zeros(8)
    for k, v in B.TABLE.items():
        table[k] = v
    model = B.ExactBits(table, 3, T=10)
    law, states = model.output_law(), model.states.numpy()
    known = np.array([True, False, False])
    sel = states[:, 0] == 1
    x = B.run_method(model, torch.tensor([1.0, 0.0, 0.0]), torch.tensor(known), "smc", 3000, 0, particles=16)
    assert (x[:, 0] == 1).all() and set(np.unique(x)) <= {0.0, 1.0}
    err = B.bits_errors(x, states[sel], law[sel], known)
    assert err["tv"] < 0.04 and err["mean_err_sd"] < 0.08


def test_smc_rejects_bad_arguments():
    m = gaussian_model(T=5, D=2)
    r = posterior.GaussianR(torch.zeros(1, 2), 1.0)
    with pytest.raises(ValueError, match="exactly one"):
        next(posterior.smc_steps(m, n=2, particles=4))
    with pytest.raises(ValueError, match="particles"):
        next(posterior.smc_steps(m, n=2, particles=0, smooth=r))
    with pytest.raises(ValueError, match="Gaussian"):
        next(posterior.smc_steps(binomial_model(T=5, D=4), n=2, particles=4, smooth=r))
