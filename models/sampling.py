"""Sampling as generators over steps (spec §5.3): every x^t is yielded, so callers can stream, cache,
pause or stop. Randomness comes only from the explicit ``generator``; devices follow the model.

Both directions yield :class:`Step` records ordered as they are produced; ``Step.t`` is the paper time
of the state (x^t, t = 0 .. T).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from .model import DiffusionModel, StepDistribution

#: A posterior adjustment composed around a reverse step (see :mod:`models.posterior`):
#: condition(k, x_t, dist) → dist, where dist is p(x^k | x^{k+1} = x_t).
Condition = Callable[[int, torch.Tensor, StepDistribution], StepDistribution]


@dataclass(frozen=True)
class Step:
    """One state of a trajectory: ``x`` [N, *S] = x^t, at paper time ``t`` (0 = data, T = noise)."""

    t: int
    x: torch.Tensor


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
    for k in range(model.T - 1, -1, -1):
        dist = model.reverse_step(x, k, s)
        if condition is not None:
            dist = condition(k, x, dist)
        if k == 0 and not last_step:
            x = dist.mean if dist.is_gaussian else (dist.prob > 0.5).to(x.dtype)
        else:
            x = dist.sample(generator)
        yield Step(k, x)


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
    """n samples x^0 [n, *S]."""
    x = None
    for st in reverse_steps(model, n, generator=generator, **kw):
        x = st.x
    return x
