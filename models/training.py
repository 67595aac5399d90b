"""Training as a generator of typed progress records (no printing, no threads; §2.4.1, App. B).

The loss is −K per dimension in bits, estimated with one random step per example (:func:`stochastic_K_nats`).
A learned β schedule gets its gradient through the same estimate with the noise held fixed
(reparameterisation). Non-finite updates are skipped; a run that keeps producing them stops with a
message and restores its last good parameters.

    trainer = Trainer(model, data, TrainConfig(steps=2000))
    for progress in trainer.run():   # stop = stop iterating (or call trainer.stop()); pause = don't call next
        ...
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np
import torch

from .bound import reverse_entropy_per_step, unit_divisor
from .config import OBJECTIVES
from .distributed import Launch, LossModule, agree, broadcast_flag, rank_seed, wrap
from .evaluation import Evaluation, live_K, live_strata
from .model import DiffusionModel
from .runtime import make_generator, resolve_device
from .sampling import sample

Optimizer = Literal["adam", "rmsprop"]


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run. ``steps`` and/or ``seconds`` bound it (None = unbounded)."""

    steps: int | None = 2000
    seconds: float | None = None
    batch_size: int = 256
    lr: float = 1e-3
    beta_lr: float | None = None  # learning rate of the learned β coefficients (None → lr)
    optimizer: Optimizer = "adam"
    lr_decay: bool = True  # cosine decay to 5 % over the run (needs steps or seconds)
    grad_clip: float | None = 1.0
    report_every: int = 100  # iterations between progress records
    n_eval: int = 256  # held-out examples for the live K
    eval_steps: int = 64  # strata of steps per live K (models.evaluation.live_K); exact when ≥ T − 1
    n_samples: int = 0  # fixed-seed samples drawn with each record (0 = none)
    sample_every: int = 1  # …every this many records
    seed: int = 0
    ema: float | None = 0.999  # evaluate with an exponential moving average of the weights
    max_bad_steps: int = 50
    steps_per_example: int = 1  # step indices per example in the training estimate (T − 1 = all; stratified)
    objective: str = "K"  # "K" (the paper's −K) or "hybrid" (noise regression + −K/T; models.bound.hybrid_terms)

    def __post_init__(self):
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {self.optimizer!r}")
        if self.batch_size < 1 or self.report_every < 1:
            raise ValueError("batch_size and report_every must be >= 1")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")


def _by_device_and_dtype(params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """``params`` grouped by device and dtype, in the order torch's gradient clipping groups them (so
    the norms it stacks come in the same order: the same total norm to the last bit)."""
    try:
        from torch.utils._foreach_utils import _group_tensors_by_device_and_dtype
    except ImportError:  # a torch without it: first appearance
        groups: dict = {}
        for p in params:
            groups.setdefault((p.device, p.dtype), []).append(p)
        return list(groups.values())
    return [list(ts) for (ts,), _ in _group_tensors_by_device_and_dtype([params]).values()]


def _grads(groups: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
    """The gradients of the parameters in ``groups`` (:func:`_by_device_and_dtype`), group by group."""
    grads = [[p.grad for p in ps if p.grad is not None] for ps in groups]
    return [gs for gs in grads if gs]


def _grad_norm(grads: list[list[torch.Tensor]]) -> torch.Tensor:
    """The total 2-norm of ``grads`` (:func:`_grads`), as ``torch.nn.utils.clip_grad_norm_(…, foreach=True)``
    computes it (the same number to the last bit), without its regrouping on every call. A 0-d tensor on
    the first gradient's device; no host read."""
    first = grads[0][0].device
    norms = [n if n.device == first else n.to(first) for gs in grads for n in torch._foreach_norm(gs, 2.0)]
    return torch.linalg.vector_norm(torch.stack(norms), 2.0)


def _clip_grads_(grads: list[list[torch.Tensor]], max_norm: float, norm: float) -> None:
    """Scale ``grads`` in place by min(1, max_norm/(norm + 1e-6)) (clip_grad_norm_'s numbers, its division
    included: a reciprocal and a product; nothing to do where that is 1)."""
    coef = max_norm * (1.0 / (norm + 1e-6))
    if coef < 1.0:
        for gs in grads:
            torch._foreach_mul_(gs, coef)


class _FusedAdamStep:
    """``optimizer.step()`` for this trainer's fused Adam (``torch.optim.Adam(fused=True)``: no weight
    decay, amsgrad or maximize): the same kernel, ``torch._fused_adam_``, on the same tensors, so the same
    numbers, without torch.optim's per-call bookkeeping (hooks, regrouping tensors by device and dtype),
    which costs more than the update itself on a small network. The first step (it creates the state),
    a parameter without a gradient, or any other setting goes through ``optimizer.step()``."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self._plan = None  # (state, param_groups, [(group, params, exp_avgs, exp_avg_sqs, steps)])

    def _make_plan(self):
        opt = self.optimizer
        plan = []
        for g in opt.param_groups:
            if not g.get("fused") or g.get("amsgrad") or g.get("weight_decay") or g.get("maximize") \
                    or g.get("capturable") or g.get("differentiable") or g.get("decoupled_weight_decay"):
                return None
            states = [opt.state.get(p) for p in g["params"]]
            if not all(st and "exp_avg" in st and "step" in st for st in states):
                return None
            for ps in _by_device_and_dtype(g["params"]):
                sts = [opt.state[p] for p in ps]
                plan.append((g, ps, [st["exp_avg"] for st in sts], [st["exp_avg_sq"] for st in sts],
                             [st["step"] for st in sts]))
        return opt.state, opt.param_groups, plan

    def __call__(self) -> None:
        opt = self.optimizer
        plan = self._plan
        if plan is None or plan[0] is not opt.state or plan[1] is not opt.param_groups:
            plan = self._plan = self._make_plan()
        if plan is None or any(p.grad is None for _, ps, _, _, _ in plan[2] for p in ps):
            opt.step()
            return
        for g, ps, exp_avgs, exp_avg_sqs, steps in plan[2]:
            beta1, beta2 = g["betas"]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(ps, [p.grad for p in ps], exp_avgs, exp_avg_sqs, [], steps, lr=g["lr"], beta1=beta1,
                               beta2=beta2, weight_decay=0.0, eps=g["eps"], amsgrad=False, maximize=False)


@dataclass(frozen=True)
class TrainProgress:
    """One progress record. Bits are in the data's unit (per point / sequence / pixel); per-step arrays
    are indexed by k = t − 1 and have length T."""

    iteration: int
    seconds: float
    its_per_s: float
    loss_bits: float  # mean −K estimate of the last interval (train minibatches)
    K_train_bits: float
    K_heldout_bits: float
    K_heldout_stderr_bits: float
    K_minus_Lnull_bits: float
    beta_1: float
    beta: np.ndarray  # [T] float64
    alpha_bar: np.ndarray  # [T]
    kl_bits_per_step: np.ndarray  # [T] held-out mean KL term per step (NaN where not evaluated)
    entropy_lower: np.ndarray  # [T] bounds on H(X^{t−1}|X^t), nats per dimension (Eq. 24)
    entropy_upper: np.ndarray  # [T]
    reverse_entropy: np.ndarray  # [T] the model's own reverse-step entropy (NaN where not evaluated)
    samples: np.ndarray | None  # [n, *S] float32, normalised units, fixed seed
    skipped_updates: int
    done: bool = False
    message: str = ""
    evaluation: Evaluation | None = None  # the live K behind the K_heldout_* figures


@dataclass(frozen=True)
class TrainSnapshot:
    """The evaluation model at one moment: its live K (``evaluation``, :func:`models.evaluation.live_K`),
    schedule β and ᾱ [T], bounds on H(X^{t−1}|X^t) per dimension (Eq. 24, nats [T]), its own
    reverse-step entropy (nats per dimension [T], NaN where not evaluated) and fixed-seed samples
    ([n, *S] float32, normalised units) or None."""

    evaluation: Evaluation
    beta: np.ndarray
    alpha_bar: np.ndarray
    entropy_lower: np.ndarray
    entropy_upper: np.ndarray
    reverse_entropy: np.ndarray
    samples: np.ndarray | None


class Trainer:
    """Holds a model, its data, optimiser and history; :meth:`run` is the training generator."""

    def __init__(self, model: DiffusionModel, data, config: TrainConfig, device: str | torch.device = "cpu",
                 history: dict | None = None, optimizer_state: dict | None = None, iteration: int = 0,
                 launch: Launch | None = None):
        self.config = config
        self.launch = launch  # under torchrun (models.distributed): DDP; rank 0 alone evaluates
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.model = model.to(self.device)
        # the objective as a module; under a launcher DDP around it, which now broadcasts rank 0's
        # parameters (before the weight average and the last good state copy them) and averages gradients
        self.loss_module = wrap(LossModule(self.model, config.steps_per_example, config.objective), launch, self.device)
        self.data = data
        self.iteration = iteration
        self.history: dict[str, list] = {k: list(v) for k, v in (history or {}).items()}
        self.seconds_before = float(self.history["seconds"][-1]) if self.history.get("seconds") else 0.0
        groups = [{"params": model.network_parameters(), "lr": config.lr}]
        if model.config.learn_beta:
            groups.append({"params": list(model.schedule.parameters()), "lr": config.beta_lr or config.lr})
        if config.optimizer == "adam":
            self.optimizer = torch.optim.Adam(groups, fused=True)  # one kernel for all parameters (5× the foreach step)
        else:  # the reference code's Blocks RMSProp (models/README.md, **Presets and data sets**)
            self.optimizer = torch.optim.RMSprop(groups, alpha=0.9, eps=1e-10, foreach=True)
        for g in self.optimizer.param_groups:
            g["base_lr"] = g["lr"]
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
            if config.optimizer == "adam":  # a state saved by the earlier foreach Adam still steps fused
                for g in self.optimizer.param_groups:
                    g["fused"], g["foreach"] = True, None
        self.ema_model = copy.deepcopy(self.model) if config.ema else None
        self._stop = False
        # data draws use a CPU generator; noise for the model's tensors one on the model's device (CUDA
        # kernels refuse a CPU generator); each rank of a distributed run draws its own
        self.data_generator = make_generator("cpu", rank_seed(config.seed + iteration, launch))
        self.generator = make_generator(self.device, rank_seed(config.seed + 1 + iteration, launch))
        self._params = [p for p in self.model.parameters()]
        self._param_groups = _by_device_and_dtype(self._params)  # for the gradient norm and clipping
        self._optimizer_step = _FusedAdamStep(self.optimizer) if config.optimizer == "adam" else self.optimizer.step
        self._ema_pairs = (([pe for pe in self.ema_model.parameters()], self._params) if self.ema_model is not None
                           else None)
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)  # on device between reports
        self._loss_n = 0
        self.heldout = data.heldout(config.n_eval).to(self.device)
        self.unit_div = unit_divisor(tuple(data.example_shape))
        self.D = int(np.prod(data.example_shape))
        self.last_good = copy.deepcopy(self.model.state_dict())

    # ---- control -----------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`run` to finish after the current iteration (it yields a final record)."""
        self._stop = True

    @property
    def eval_model(self) -> DiffusionModel:
        return self.ema_model if self.ema_model is not None else self.model

    def _progress_fraction(self, elapsed: float) -> float | None:
        c = self.config
        fr = []
        if c.steps:
            fr.append(self.iteration / c.steps)
        if c.seconds:
            fr.append((self.seconds_before + elapsed) / c.seconds)
        return min(1.0, max(fr)) if fr else None

    def _set_lr(self, elapsed: float) -> None:
        if not self.config.lr_decay:
            return
        f = self._progress_fraction(elapsed)
        if f is None:
            return
        factor = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * f))
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * factor

    def _finished(self, elapsed: float) -> bool:
        c = self.config
        if self._stop:
            return True
        if c.steps is not None and self.iteration >= c.steps:
            return True
        return c.seconds is not None and self.seconds_before + elapsed >= c.seconds

    # ---- one update ------------------------------------------------------------------------
    def step(self) -> float:
        """One optimiser update; returns the minibatch loss (−K, bits in the data's unit) or NaN if skipped."""
        before = self._loss_sum.clone()
        if not self.update():
            return float("nan")
        return float(self._loss_sum - before) * self.D / self.unit_div

    def update(self) -> bool:
        """One optimiser update; False when skipped (a non-finite loss or gradient). The loss stays on
        the device (summed into ``_loss_sum``); the one host read is whether the total gradient norm,
        which clipping computes anyway, is finite (a NaN or Inf anywhere makes it non-finite)."""
        x0 = self.data.sample_train(self.config.batch_size, self.data_generator).to(self.device)
        loss, neg_K = self.loss_module(x0, self.generator)
        for p in self._params:  # the optimiser's parameters are the model's
            p.grad = None
        loss.backward()  # under DDP, every rank's gradients are averaged here: all ranks see the same norm
        grads = _grads(self._param_groups)
        # the one host read: the gradient norm (for clipping) and the loss, both to check they are finite
        # (under DDP the norm alone: the same on every rank, where a rank-local loss could make them disagree)
        norm, loss_value = torch.stack([_grad_norm(grads), loss.detach()]).tolist()
        if not (math.isfinite(norm) and (self.launch is not None or math.isfinite(loss_value))):
            for p in self._params:
                p.grad = None
            return False
        if self.config.grad_clip:
            _clip_grads_(grads, self.config.grad_clip, norm)
        self._optimizer_step()
        self.iteration += 1
        if self._ema_pairs is not None:
            with torch.no_grad():
                d = min(self.config.ema, (1 + self.iteration) / (10 + self.iteration))
                torch._foreach_lerp_(self._ema_pairs[0], self._ema_pairs[1], 1 - d)
        self._loss_sum += neg_K
        self._loss_n += 1
        return True

    def _interval_loss(self) -> float:
        """Mean minibatch loss since the last call (bits in the data's unit), NaN when none; a host read."""
        n, total = self._loss_n, float(self._loss_sum)
        self._loss_sum.zero_()
        self._loss_n = 0
        return total / n * self.D / self.unit_div if n else float("nan")

    # ---- evaluation -------------------------------------------------------------------------
    def snapshot(self, with_samples: bool) -> TrainSnapshot:
        """:func:`snapshot` of the evaluation model on this trainer's held-out set."""
        return snapshot(self.eval_model, self.heldout, self.data, self.config, with_samples)

    def _record(self, snap: TrainSnapshot, loss_bits: float, elapsed: float, its: float, skipped: int, done: bool,
                message: str) -> TrainProgress:
        ev = snap.evaluation
        p = TrainProgress(
            iteration=self.iteration, seconds=self.seconds_before + elapsed, its_per_s=its, loss_bits=loss_bits,
            K_train_bits=-loss_bits, K_heldout_bits=ev.K_bits, K_heldout_stderr_bits=ev.K_stderr_bits,
            K_minus_Lnull_bits=ev.K_minus_Lnull_bits, beta_1=float(snap.beta[0]), beta=snap.beta,
            alpha_bar=snap.alpha_bar, kl_bits_per_step=ev.kl_bits_per_step, entropy_lower=snap.entropy_lower,
            entropy_upper=snap.entropy_upper, reverse_entropy=snap.reverse_entropy, samples=snap.samples,
            skipped_updates=skipped, done=done, message=message, evaluation=ev)
        h = self.history
        for key, val in (("iteration", p.iteration), ("seconds", p.seconds), ("loss_bits", p.loss_bits),
                         ("K_train_bits", p.K_train_bits), ("K_heldout_bits", p.K_heldout_bits),
                         ("K_minus_Lnull_bits", p.K_minus_Lnull_bits)):
            h.setdefault(key, []).append(float(val))
        h.setdefault("beta", []).append(p.beta.astype(np.float64))
        return p

    def history_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.history.items()}

    def run(self, ticks: bool = False) -> Iterator[TrainProgress | None]:
        """Train until ``steps``/``seconds`` or :meth:`stop`; yields a record every ``report_every``
        iterations and a final one with ``done=True``. ``ticks``: also yield None after every update,
        a cheap pause/stop point (time spent suspended there is not training time). Under a launcher
        (``launch``), every rank trains, the ranks agree once per update on the time and on stopping,
        and rank 0 alone evaluates and yields records."""
        c = self.config
        writer = self.launch is None or self.launch.is_writer
        t0 = time.perf_counter()
        interval_t0, interval_it = t0, self.iteration
        self._interval_loss()
        skipped, bad_run, n_records = 0, 0, 0
        message = ""
        self.model.train()
        while True:
            elapsed, stop_any = agree(self.launch, time.perf_counter() - t0, self._stop, self.device)
            if stop_any:
                self._stop = True
            if self._finished(elapsed):
                break
            self._set_lr(elapsed)
            ok = self.update()
            if ticks:
                suspended = time.perf_counter()
                yield None
                held = time.perf_counter() - suspended
                t0, interval_t0 = t0 + held, interval_t0 + held
            if not ok:
                skipped += 1
                bad_run += 1
                if bad_run >= c.max_bad_steps:
                    self.model.load_state_dict(self.last_good)
                    if self.ema_model is not None:
                        self.ema_model.load_state_dict(self.last_good)
                    message = (f"training diverged: {bad_run} non-finite updates in a row at iteration "
                               f"{self.iteration}; restored the last good parameters")
                    break
                continue
            bad_run = 0
            if self.iteration % c.report_every == 0:
                now = time.perf_counter()
                its = (self.iteration - interval_it) / max(now - interval_t0, 1e-9)
                loss_bits = self._interval_loss()
                ev = self.snapshot(with_samples=(n_records % max(1, c.sample_every) == 0)) if writer else None
                n_records += 1
                if broadcast_flag(self.launch, ev is not None and math.isfinite(ev.evaluation.K_bits), self.device):
                    self.last_good = copy.deepcopy(self.model.state_dict())
                if writer:
                    yield self._record(ev, loss_bits, now - t0, its, skipped, False, "")
                interval_t0, interval_it = time.perf_counter(), self.iteration
        now = time.perf_counter()
        its = (self.iteration - interval_it) / max(now - interval_t0, 1e-9)
        if self.ema_model is not None and not message:
            self.model.load_state_dict(self.ema_model.state_dict())  # the result is the averaged model
        loss_bits = self._interval_loss()
        if writer:
            ev = self.snapshot(with_samples=True)
            yield self._record(ev, loss_bits, now - t0, its, skipped, True,
                               message or ("stopped" if self._stop else "finished"))


@torch.no_grad()
def snapshot(m: DiffusionModel, heldout: torch.Tensor, data, config: TrainConfig, with_samples: bool) -> TrainSnapshot:
    """The model's live K on ``heldout`` (:func:`models.evaluation.live_K` with ``config.eval_steps``
    strata and a fixed seed, so records are comparable), its schedule, the entropy bounds of Eq. 24, its
    own reverse-step entropy at up to 32 steps, and (``with_samples``) ``config.n_samples`` fixed-seed
    samples. ``data`` gives the unit and the example shape. What the Trainer records while training, and
    what the app shows for a model it opened — without an optimiser or a copy of the model."""
    was_training = m.training
    m.eval()
    device = heldout.device
    s = m.schedule_tensors()
    g = make_generator(device, 1234)
    ev = live_K(m, heldout, data.unit, config.eval_steps, generator=g)
    strata = live_strata(m.T, config.eval_steps)
    lower, upper = m.kernel.entropy_bounds(s, heldout)
    rev_steps = [lo for lo, _ in strata][:: max(1, len(strata) // 32)]
    rev = reverse_entropy_per_step(m, heldout[:64], g, steps=rev_steps).cpu().numpy()
    samples = None
    if with_samples and config.n_samples > 0:
        gs = make_generator(device, config.seed + 777)
        x_T = m.kernel.prior_sample((config.n_samples, *data.example_shape), generator=gs, device=device)
        samples = sample(m, config.n_samples, generator=gs, x_T=x_T.to(device)).float().cpu().numpy()
    m.train(was_training)
    return TrainSnapshot(evaluation=ev, beta=s.beta.detach().cpu().numpy().copy(),
                         alpha_bar=s.alpha_bar.detach().cpu().numpy().copy(), entropy_lower=lower.cpu().numpy(),
                         entropy_upper=upper.cpu().numpy(), reverse_entropy=rev, samples=samples)
