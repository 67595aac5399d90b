"""Sampling as generators over steps: every x^t is yielded, so callers can stream, cache, pause or stop.
Randomness comes only from the explicit ``generator``; devices follow the model.

Both directions yield :class:`Step` records ordered as they are produced; ``Step.t`` is the paper time
of the state (x^t, t = 0 .. T).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from .kernels import GaussianKernel, coefficients
from .kernels.gaussian import COLUMNS as GAUSSIAN_COLUMNS
from .model import GAUSSIAN_MOMENTS, PARAM_COLUMNS, DiffusionModel, StepDistribution

#: A posterior adjustment composed around a reverse step (see :mod:`models.posterior`):
#: condition(k, x_t, dist) → dist, where dist is p(x^k | x^{k+1} = x_t).
Condition = Callable[[int, torch.Tensor, StepDistribution], StepDistribution]


@dataclass(frozen=True)
class Step:
    """One state of a trajectory: ``x`` [N, *S] = x^t, at paper time ``t`` (0 = data, T = noise).

    ``ess``: for a weighted sampler (:func:`models.posterior.smc_steps`), the effective sample size of
    the particle weights behind this state as a fraction of the particle count (1 = equal weights;
    mean over the independent populations), before any resampling at this step; None otherwise."""

    t: int
    x: torch.Tensor
    ess: float | None = None


@torch.no_grad()
def reverse_steps(model: DiffusionModel, n: int | None = None, *, x_T: torch.Tensor | None = None,
                  generator: torch.Generator | None = None, condition: Condition | None = None,
                  example_shape: tuple[int, ...] | None = None, last_step: bool = True) -> Iterator[Step]:
    """Run the reverse chain: yields x^T (prior draw or ``x_T``), then x^{T−1}, …, x^0.

    ``example_shape`` overrides the model's (a fully convolutional model runs at any image size).
    With ``last_step=False`` the fixed step p(x^0|x^1) is skipped and x^0 = mean (as the code did)."""
    s = model.schedule_tensors()
    if x_T is None:
        if n is None:
            raise ValueError("give n or x_T")
        shape = (n, *(example_shape or model.config.example_shape))
        x = model.kernel.prior_sample(shape, generator=generator, device=model.device)
    else:
        x = x_T.to(model.device)
    yield Step(model.T, x)
    fast = condition is None and _has_fast_step(model)  # the same draws in fewer operations
    for k in range(model.T - 1, -1, -1):
        if fast and k > 0:
            x = _fast_step(model, x, k, s, generator)
            yield Step(k, x)
            continue
        dist = model.reverse_step(x, k, s)
        if condition is not None:
            dist = condition(k, x, dist)
        if k == 0 and not last_step:
            x = dist.mode()
        else:
            x = dist.sample(generator)
        yield Step(k, x)


def _has_fast_step(model: DiffusionModel) -> bool:
    """Whether :func:`_fast_step` serves ``model``: a Gaussian model whose ``reverse_step`` is the class's
    own (not replaced on the instance, as tests and oracles do)."""
    return (model.is_gaussian and type(model.kernel) is GaussianKernel and "reverse_step" not in model.__dict__
            and model.config.param in _FAST_PARAMS)


_FAST_PARAMS = tuple(GAUSSIAN_MOMENTS)
#: False: the fast step calls the network as reverse_step does (bit-identical draws); True: through the
#: network's ``at_step`` where it has one (the same function up to float rounding, fewer operations)
FOLD_STEP = True


def _fast_step(model: DiffusionModel, x: torch.Tensor, k: int, s, generator, kk: torch.Tensor | None = None) -> torch.Tensor:
    """x^k ~ p(x^k | x^{k+1} = ``x``) for an int step k ≥ 1 of a model :func:`_has_fast_step` serves:
    exactly the numbers of ``model.reverse_step(x, k, s).sample(generator)`` (the parameterisation's own
    :data:`models.model.GAUSSIAN_MOMENTS`, the same draw), without the distribution object, the step as a
    tensor where the network folds it in, or coefficient tensors (tests/models/test_fast_paths.py compares
    them bit for bit).
    ``kk``: the step as a LongTensor [B] for the network (made here when None)."""
    param = model.config.param
    at_step = getattr(model.net, "at_step", None) if FOLD_STEP else None
    if at_step is not None:  # every example at step k: the network with its time rows folded in (networks.py)
        z = at_step(x, k)
    else:
        if kk is None:
            kk = torch.full((x.shape[0],), k, dtype=torch.long, device=x.device)
        z = model.net(x, kk)
    c = coefficients(s, k, x, PARAM_COLUMNS[param], GAUSSIAN_COLUMNS)  # Python floats
    mean, var = GAUSSIAN_MOMENTS[param](model.T, z, x, c)  # as reverse_step computes them (models/model.py)
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean.addcmul_(var.sqrt_(), noise)  # GaussianDist.sample: mean + √var·noise


@torch.no_grad()
def _sample_fast(model: DiffusionModel, n: int, generator, example_shape=None) -> torch.Tensor:
    """:func:`sample` for a model :func:`_has_fast_step` serves, without the step records: the same draws."""
    s = model.schedule_tensors()
    x = model.kernel.prior_sample((n, *(example_shape or model.config.example_shape)), generator=generator,
                                  device=model.device)
    steps = torch.arange(model.T, device=x.device).unsqueeze(1).expand(-1, n)  # steps[k]: k for every example
    for k in range(model.T - 1, 0, -1):
        x = _fast_step(model, x, k, s, generator, steps[k])
    return model.reverse_step(x, 0, s).sample(generator)


@torch.no_grad()
def forward_steps(model: DiffusionModel, x0: torch.Tensor, generator: torch.Generator | None = None) -> Iterator[Step]:
    """Run the forward (data → noise) chain: yields x^0, x^1, …, x^T."""
    s = model.schedule_tensors()
    x = x0.to(model.device)
    yield Step(0, x)
    for k in range(model.T):
        x = model.kernel.q_step(x, k, s, generator)
        yield Step(k + 1, x)


def collect(steps: Iterator[Step], T: int, stride: int = 1) -> tuple[torch.Tensor, list[int]]:
    """Stack a run of steps into ``traj`` [S, N, *shape], ordered by paper time t ascending (traj[i]
    is x^{t[i]}), keeping every ``stride``-th t plus t = 0 and t = T."""
    keep: dict[int, torch.Tensor] = {}
    for st in steps:
        if st.t % stride == 0 or st.t in (0, T):
            keep[st.t] = st.x.detach().cpu()
    ts = sorted(keep)
    return torch.stack([keep[t] for t in ts]), ts


def sample(model: DiffusionModel, n: int, generator: torch.Generator | None = None, **kw) -> torch.Tensor:
    """n samples x^0 [n, *S] (the last state of :func:`reverse_steps`)."""
    if set(kw) <= {"example_shape"} and _has_fast_step(model):
        return _sample_fast(model, n, generator, kw.get("example_shape"))
    x = None
    for st in reverse_steps(model, n, generator=generator, **kw):
        x = st.x
    return x


def thin(steps: Iterable[Step], every: int = 1) -> Iterator[tuple[int, Step]]:
    """(index in the run, step) for every ``every``-th state of a run and always its last one, as
    they come (the one rule for keeping part of a trajectory; ``t`` need not be monotone)."""
    every = max(1, int(every))
    pending: tuple[int, Step] | None = None
    for i, st in enumerate(steps):
        if i % every == 0:
            pending = None
            yield i, st
        else:
            pending = (i, st)
    if pending is not None:
        yield pending


@dataclass(frozen=True)
class Drained:
    """A finished run: ``x`` the last state [N, *S]; ``traj`` float32 [K, N, *S] of the kept states in
    run order (None when not kept), ``t`` int64 [K] their paper times, ``ess`` float64 [K] (NaN where a
    step had none), ``n_states`` the number of states the run yielded."""

    x: torch.Tensor
    traj: np.ndarray | None
    t: np.ndarray
    ess: np.ndarray
    n_states: int


def drain(steps: Iterable[Step], every: int = 1, *, keep: bool = True) -> Drained:
    """Run a step generator to its end, keeping every ``every``-th state and the last (:func:`thin`);
    ``keep=False`` keeps only the last state."""
    traj, ts, es, last, n = [], [], [], None, 0
    for i, st in thin(steps, every if keep else 1):
        last, n = st, i + 1
        if keep:
            traj.append(st.x.detach().cpu().numpy().astype(np.float32))
            ts.append(st.t)
            es.append(math.nan if st.ess is None else float(st.ess))
    if last is None:
        raise ValueError("the run yielded no state")
    return Drained(x=last.x, traj=np.stack(traj) if keep else None, t=np.asarray(ts, dtype=np.int64),
                   ess=np.asarray(es, dtype=np.float64), n_states=n)


def stride_for(n_states: int, state_bytes: int, max_bytes: int = 512 * 2**20) -> int:
    """The smallest keep-every-k that holds ``n_states`` states of ``state_bytes`` in ``max_bytes``."""
    return max(1, math.ceil(n_states * state_bytes / max_bytes))
