"""Evaluating a model: one typed result, :class:`Evaluation`, and the functions that produce it
(models/README.md, **Evaluation protocol**).

- :func:`exact_K` — the bound K (Eq. 14 with the per-example edge terms of App. B) summed over all
  T − 1 KL terms, one x^t draw per (example, step), on held-out data;
- :func:`live_K` — a cheap estimate of the same K for progress reports while training: ``n_steps``
  step indices per example, drawn stratified over log-spaced strata of {1 … T−1} and weighted by their
  stratum's size, so its expectation equals the exact K;
- :func:`ais_estimate` — the AIS/Jarzynski estimate of log p (Eq. 9; K ≤ AIS in expectation);
- :func:`parzen_estimate` — the Parzen-window log-likelihood of model samples (Breuleux et al.; the
  paper's MNIST figure);
- :func:`resolve_eval_data` and :func:`evaluate_model_file` — which held-out data a model file is
  evaluated on, and everything ``dpm eval`` reports for it.

Units: K in bits per the data's unit (``bits/point``, ``bits/seq``, ``bits/pixel`` with colour channels
summed: per-example bits / H·W); Parzen in nats (and bits) per example.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .bound import LN2, ais_log_likelihood_nats, bound_terms, step_kl, unit_divisor
from .model import DiffusionModel
from .runtime import make_generator, resolve_device

__all__ = ["Evaluation", "AISEstimate", "ParzenEstimate", "EvalData", "exact_K", "live_K", "live_strata",
           "ais_estimate", "parzen_estimate", "parzen_log_likelihood_nats", "resolve_eval_data",
           "evaluate_model_file", "to_display", "draw_samples", "PARZEN_SIGMAS", "eval_batch_size"]

#: Parzen window widths tried on validation data (Breuleux et al.'s protocol: logspace(−1, 0, 10))
PARZEN_SIGMAS = np.logspace(-1, 0, 10)

#: progress(stage, done, total): stage is "K", "AIS", "samples" or "Parzen"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class AISEstimate:
    """AIS/Jarzynski log-likelihood (Eq. 9), bits per unit: mean over examples and its standard error,
    with ``n_traj`` forward trajectories per example."""

    bits: float
    stderr_bits: float | None
    minus_Lnull_bits: float
    n_traj: int


@dataclass(frozen=True)
class ParzenEstimate:
    """Parzen-window log-likelihood per example of the test set under model samples: nats (and bits),
    standard error, the σ chosen on validation data, the number of samples and test examples, and the
    space it was computed in ("pixels in [0, 1]" for images, else "normalised units")."""

    nats: float
    stderr_nats: float | None
    sigma: float
    n_samples: int
    n_test: int
    validation: str
    space: str

    @property
    def bits(self) -> float:
        return self.nats / LN2

    @property
    def stderr_bits(self) -> float | None:
        return None if self.stderr_nats is None else self.stderr_nats / LN2


@dataclass(frozen=True)
class Evaluation:
    """K of a model on held-out data, in bits per ``unit``.

    K_bits ± K_stderr_bits: the mean over ``n`` examples and its standard error; K_minus_Lnull_bits:
    K − log π(x^0) (the gain over the null model, models/README.md **Units and the null model**);
    kl_bits_per_step [T]: the mean KL term of each step (index k = t − 1; k = 0 is the fixed last
    step, 0; NaN where a live estimate drew no example); beta_1: β_1 of the schedule; cap_bits: the
    Gaussian β_1 cap on K − L_null (models/README.md **Ceilings**), None for binomial models;
    method: "exact" (all steps) or "live" (stratified steps, unbiased); ais/parzen when asked for;
    data: what it was evaluated on; seconds: how long it took.
    """

    K_bits: float
    K_stderr_bits: float
    K_minus_Lnull_bits: float
    L_null_bits: float
    kl_bits_per_step: np.ndarray
    n: int
    unit: str
    beta_1: float
    cap_bits: float | None
    T: int
    method: str = "exact"
    ais: AISEstimate | None = None
    parzen: ParzenEstimate | None = None
    data: str = ""
    seconds: float | None = None

    def replace(self, **changes) -> "Evaluation":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """A flat JSON-safe dict (NaN → None): K_bits, K_stderr_bits, K_minus_Lnull_bits, L_null_bits,
        beta_1, cap_bits, n_eval, unit, T, method, data, seconds, and ais_* / parzen_* when present."""
        d = dict(K_bits=self.K_bits, K_stderr_bits=self.K_stderr_bits, K_minus_Lnull_bits=self.K_minus_Lnull_bits,
                 L_null_bits=self.L_null_bits, beta_1=self.beta_1, cap_bits=self.cap_bits, n_eval=self.n,
                 unit=self.unit, T=self.T, method=self.method, data=self.data, seconds=self.seconds)
        if self.ais is not None:
            a = self.ais
            d.update(ais_bits=a.bits, ais_stderr_bits=a.stderr_bits, ais_minus_Lnull_bits=a.minus_Lnull_bits,
                     ais_n_traj=a.n_traj)
        if self.parzen is not None:
            p = self.parzen
            d.update(parzen_nats=p.nats, parzen_stderr_nats=p.stderr_nats, parzen_bits=p.bits,
                     parzen_stderr_bits=p.stderr_bits, parzen_sigma=p.sigma, parzen_samples=p.n_samples,
                     parzen_n_test=p.n_test, parzen_validation=p.validation, parzen_space=p.space)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def eval_batch_size(model: DiffusionModel) -> int:
    """Examples per network batch for evaluation: 256 for image models, 4096 otherwise."""
    return 256 if len(model.config.example_shape) == 3 else 4096


def _summarise(model: DiffusionModel, K_nats: torch.Tensor, null_nats: torch.Tensor, kl_mean_nats: np.ndarray,
               unit: str, example_shape, method: str, s) -> Evaluation:
    div = unit_divisor(tuple(example_shape))
    K = K_nats.to(torch.float64) / LN2 / div
    null = null_nats.to(torch.float64) / LN2 / div
    n = K.numel()
    cap = model.kernel.cap_bits_per_dim(s.beta)  # the β_1 cap per dimension (None: no cap for this kernel)
    if cap is not None:
        cap = int(np.prod(example_shape)) / div * cap
    return Evaluation(
        K_bits=float(K.mean()), K_stderr_bits=float(K.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan"),
        K_minus_Lnull_bits=float((K - null).mean()), L_null_bits=float(null.mean()),
        kl_bits_per_step=np.asarray(kl_mean_nats, dtype=np.float64) / LN2 / div, n=n, unit=unit,
        beta_1=float(s.beta[0]), cap_bits=cap, T=model.T, method=method)


@torch.no_grad()
def exact_K(model: DiffusionModel, x0: torch.Tensor, unit: str, generator: torch.Generator | None = None,
            batch_size: int | None = None, progress: Progress | None = None) -> Evaluation:
    """K summed over all T − 1 KL terms (one x^t draw per example and step) on ``x0`` [N, *S] (the
    model's normalised units), in bits per ``unit``."""
    s = model.schedule_tensors()
    bs = batch_size or eval_batch_size(model)
    N = x0.shape[0]
    if N < 1:
        raise ValueError("no examples to evaluate on")
    Ks, nulls = [], []
    kl_sum = torch.zeros(model.T, dtype=torch.float64, device=x0.device)
    for i in range(0, N, bs):
        terms = bound_terms(model, x0[i:i + bs], generator, s)
        Ks.append(terms.K_nats)
        nulls.append(terms.log_null_nats)
        kl_sum += terms.kl_nats.sum(dim=0)
        if progress is not None:
            progress("K", min(i + bs, N), N)
    return _summarise(model, torch.cat(Ks), torch.cat(nulls), (kl_sum / N).cpu().numpy(), unit, x0.shape[1:],
                      "exact", s)


def live_strata(T: int, n_steps: int) -> list[tuple[int, int]]:
    """Split the KL steps k ∈ {1 … T−1} into at most ``n_steps`` contiguous strata [lo, hi), log-spaced
    (the KL terms fall steeply with t, so the first steps get strata of their own). With
    ``n_steps`` ≥ T − 1 every step is its own stratum (the exact sum)."""
    if T < 2:
        return []
    m = max(1, min(int(n_steps), T - 1))
    if m == T - 1:
        return [(k, k + 1) for k in range(1, T)]
    edges = sorted(set(np.round(np.geomspace(1, T, m + 1)).astype(int).tolist()) | {1, T})
    # too few distinct edges at the low end: fill with unit strata until there are m strata
    while len(edges) - 1 < m:
        gaps = [(b - a, i) for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])) if b - a > 1]
        if not gaps:
            break
        width, i = max(gaps)
        edges.insert(i + 1, edges[i] + width // 2)
    return list(zip(edges[:-1], edges[1:]))


@torch.no_grad()
def live_K(model: DiffusionModel, x0: torch.Tensor, unit: str, n_steps: int = 64,
           generator: torch.Generator | None = None, batch_size: int | None = None) -> Evaluation:
    """An unbiased estimate of :func:`exact_K` from ``n_steps`` KL terms per example (not T − 1).

    The steps are split into log-spaced strata (:func:`live_strata`); each example draws one step
    uniformly inside each stratum, and the term is weighted by the stratum's size. Each step k is
    then counted with expectation 1, so E[live K] = E[exact K] (the exact K's own x^t draws included);
    the standard error is that of the per-example estimates. ``kl_bits_per_step`` holds the mean term
    of each step that some example drew (NaN elsewhere)."""
    s = model.schedule_tensors()
    strata = live_strata(model.T, n_steps)
    bs = batch_size or eval_batch_size(model)
    N = x0.shape[0]
    if N < 1:
        raise ValueError("no examples to evaluate on")
    kl_at = torch.zeros(model.T, dtype=torch.float64, device=x0.device)
    count = torch.zeros(model.T, dtype=torch.float64, device=x0.device)
    Ks, nulls = [], []
    for i in range(0, N, bs):
        xb = x0[i:i + bs]
        B = xb.shape[0]
        terms = bound_terms(model, xb, generator, s, steps=())  # the edge terms only
        kl_total = torch.zeros(B, dtype=torch.float64, device=x0.device)
        for lo, hi in strata:
            u = torch.rand(B, generator=generator, device=x0.device)
            k = (lo + torch.floor(u * (hi - lo))).long().clamp(lo, hi - 1)
            noise = model.kernel.noise_like(xb, generator)
            kl = step_kl(model, xb, k, s, noise).to(torch.float64)
            kl_total += (hi - lo) * kl
            kl_at.index_add_(0, k, kl)
            count.index_add_(0, k, torch.ones_like(kl))
        Ks.append(-kl_total - terms.prior_kl_nats - terms.h_x1_given_x0_nats + terms.edge_nats)
        nulls.append(terms.log_null_nats)
    kl_mean = torch.where(count > 0, kl_at / count.clamp_min(1), torch.full_like(kl_at, float("nan")))
    kl_mean[0] = 0.0
    return _summarise(model, torch.cat(Ks), torch.cat(nulls), kl_mean.cpu().numpy(), unit, x0.shape[1:], "live", s)


@torch.no_grad()
def ais_estimate(model: DiffusionModel, x0: torch.Tensor, n_traj: int, L_null_bits: float,
                 generator: torch.Generator | None = None, batch_size: int | None = None,
                 progress: Progress | None = None) -> AISEstimate:
    """AIS with ``n_traj`` trajectories per example of ``x0`` [N, *S], in bits per unit
    (:func:`models.bound.ais_log_likelihood_nats`); ``L_null_bits`` from the matching K evaluation."""
    bs = batch_size or eval_batch_size(model)
    per = max(1, bs // n_traj)
    N = x0.shape[0]
    vals = []
    for i in range(0, N, per):
        vals.append(ais_log_likelihood_nats(model, x0[i:i + per], n_traj=n_traj, generator=generator).cpu())
        if progress is not None:
            progress("AIS", min(i + per, N), N)
    a = torch.cat(vals) / LN2 / unit_divisor(tuple(x0.shape[1:]))
    n = a.numel()
    return AISEstimate(bits=float(a.mean()), stderr_bits=float(a.std() / math.sqrt(n)) if n > 1 else None,
                       minus_Lnull_bits=float(a.mean()) - L_null_bits, n_traj=int(n_traj))


@torch.no_grad()
def parzen_log_likelihood_nats(x: torch.Tensor, samples: torch.Tensor, sigma: float | Sequence[float],
                               chunk: int = 256) -> torch.Tensor:
    """Isotropic Gaussian Parzen window (Goodfellow et al.'s ``parzen_ll``): log p(x) in nats for each
    row of ``x`` [N, D] under the mixture of N(s_i, σ²I) over ``samples`` [S, D]. ``sigma`` a float →
    [N]; a list of σ → [len(σ), N]."""
    sigmas = [float(sigma)] if isinstance(sigma, (int, float)) else [float(s) for s in sigma]
    x = x.reshape(x.shape[0], -1).to(torch.float64)
    s = samples.reshape(samples.shape[0], -1).to(x.device, torch.float64)
    S, D = s.shape
    s2 = (s * s).sum(1)
    out = torch.empty(len(sigmas), x.shape[0], dtype=torch.float64, device=x.device)
    for i in range(0, x.shape[0], chunk):
        xb = x[i:i + chunk]
        d2 = ((xb * xb).sum(1, keepdim=True) + s2[None] - 2 * xb @ s.T).clamp_min(0)  # [b, S]
        for j, sg in enumerate(sigmas):
            out[j, i:i + chunk] = (torch.logsumexp(-d2 / (2 * sg * sg), dim=1) - math.log(S)
                                   - 0.5 * D * math.log(2 * math.pi * sg * sg))
    return out[0] if isinstance(sigma, (int, float)) else out


@torch.no_grad()
def draw_samples(model: DiffusionModel, n: int, generator: torch.Generator, batch_size: int,
                 example_shape: tuple[int, ...] | None = None, progress: Progress | None = None) -> torch.Tensor:
    """``n`` samples x^0 [n, *S] (CPU, float32), ``batch_size`` at a time."""
    from .sampling import sample

    out, done = [], 0
    while done < n:
        b = min(batch_size, n - done)
        out.append(sample(model, b, generator=generator, example_shape=example_shape).float().cpu())
        done += b
        if progress is not None:
            progress("samples", done, n)
    return torch.cat(out)


def to_display(z: np.ndarray, norm, kind: str, display_range=None) -> np.ndarray:
    """Normalised z → data units (float32, same shape); images → [0, 1] (``display_range`` mapped to
    [0, 1], then clipped), as :meth:`models.data.DataSet.display`."""
    v = np.asarray(norm.inverse(np.asarray(z, dtype=np.float32)), dtype=np.float32)
    if kind == "images":
        if display_range is not None:
            lo, hi = float(display_range[0]), float(display_range[1])
            if (lo, hi) != (0.0, 1.0) and hi > lo:
                v = (v - lo) / (hi - lo)
        v = np.clip(v, 0.0, 1.0)
    return np.ascontiguousarray(v, dtype=np.float32)


# ---------------------------------------------------------------------------------------------------
# evaluation data and model files


@dataclass(frozen=True)
class EvalData:
    """Held-out data for evaluating a model: ``x`` [N, *S] in the model's normalised units, its unit and
    kind, a description, and the data set it came from (None for a held-out split stored in the file)."""

    x: torch.Tensor
    unit: str
    kind: str
    description: str
    dataset: object | None = None


def _convert_norm(z: torch.Tensor, src, dst) -> torch.Tensor:
    if src == dst:
        return z
    return dst.forward(src.inverse(z)).to(torch.float32)


def _check_shape(loaded, shape: tuple[int, ...], what: str) -> None:
    from .data import DataError

    c = loaded.config
    want = tuple(c.example_shape)
    if c.fully_convolutional:
        if len(shape) != 3 or shape[0] != want[0]:
            raise DataError(f"{what}: examples have shape {shape}, but {loaded.path} holds an image model for "
                            f"{want[0]} channel(s) ([C, H, W] = {want})")
    elif tuple(shape) != want:
        raise DataError(f"{what}: examples have shape {shape}, but the model in {loaded.path} expects {want}")


def resolve_eval_data(loaded, data: str | os.PathLike | None = None, n: int | None = None,
                      cifar_dir=None) -> EvalData:
    """The held-out set to evaluate a :class:`models.files.LoadedModel` on: ``data`` (a preset name or a
    file, normalised as the model's data), else the preset its metadata names, else the held-out split
    stored in the file; its first ``n`` examples (None = all). Problems raise DataError or
    CheckpointError naming the file."""
    from .files import CheckpointError
    from .data import DataError
    from .metadata import ModelMeta, data_kind, loaded_norm, unit_of
    from .presets import PRESETS, load_data

    norm = loaded_norm(loaded)
    meta = ModelMeta.from_dict(loaded.meta)
    shape = tuple(loaded.config.example_shape)
    image_size = shape[-1] if len(shape) == 3 else 32
    if data is not None:
        data = os.fspath(data)
        if data in PRESETS and not Path(data).exists():
            ds = load_data(preset=data, cifar_dir=cifar_dir, image_size=image_size)
            what = f"preset {data!r}"
        else:
            ds = load_data(path=data, patch_size=image_size if len(shape) == 3 else (meta.patch_size or 32))
            what = str(Path(data).expanduser())
    elif meta.data_source == "preset" and meta.preset in PRESETS:
        ds = load_data(preset=meta.preset, cifar_dir=cifar_dir or meta.cifar_dir, image_size=image_size)
        what = f"preset {meta.preset!r}"
    elif loaded.heldout is not None:
        x = torch.from_numpy(np.ascontiguousarray(loaded.heldout, dtype=np.float32))
        if tuple(x.shape[1:]) != shape and not loaded.config.fully_convolutional:
            raise CheckpointError(os.fspath(loaded.path), f"the stored held-out set has examples of shape "
                                                          f"{tuple(x.shape[1:])}, the model expects {shape}")
        if n is not None:
            x = x[:n]
        return EvalData(x=x, unit=unit_of(loaded), kind=data_kind(loaded),
                        description=f"held-out split stored in {loaded.path} ({meta.data or 'own data'})")
    else:
        raise DataError(f"{loaded.path}: the file names no preset and stores no held-out data; "
                        "give the data to evaluate on")
    _check_shape(loaded, tuple(ds.example_shape), what)
    if loaded.config.kernel == "binomial" and ds.kind != "binary":
        raise DataError(f"{what}: the model in {loaded.path} is binomial, but this data holds {ds.kind}")
    n_use = ds.n_heldout if n is None else min(n, ds.n_heldout)
    x = _convert_norm(ds.heldout(n_use), ds.norm, norm)
    return EvalData(x=x, unit=ds.unit, kind=ds.kind, description=f"{what}: held-out set ({ds.source})", dataset=ds)


def parzen_estimate(loaded, ed: EvalData, x: torch.Tensor, n_samples: int, device, seed: int, batch_size: int,
                    progress: Progress | None = None) -> ParzenEstimate:
    """The Parzen protocol: σ from :data:`PARZEN_SIGMAS` chosen on validation data (training examples
    when the data set is known, else the first half of the stored held-out split), then the mean
    log-likelihood (nats) of the test set under ``n_samples`` model samples, with its standard error.
    Images in pixels [0, 1]; other data in normalised units."""
    from .data import DataError
    from .metadata import loaded_norm

    norm = loaded_norm(loaded)
    kind = ed.kind
    disp = loaded.meta.get("display_range")

    def space(z: torch.Tensor) -> torch.Tensor:
        if kind == "images":
            return torch.from_numpy(to_display(z.cpu().numpy(), norm, kind, disp))
        return z.cpu().float()

    test = x
    if ed.dataset is not None:  # validation: training examples
        ds = ed.dataset
        n_val = min(1000, max(1, ds.n_train or 1000))
        val = _convert_norm(ds.sample_train(n_val, torch.Generator().manual_seed(seed + 2)), ds.norm, norm)
        val_desc = f"{n_val} training examples"
    else:  # only a stored held-out split: its first part validates, the rest is the test set
        if x.shape[0] < 2:
            raise DataError(f"{loaded.path}: the Parzen estimate needs at least 2 held-out examples")
        n_val = min(1000, x.shape[0] // 2)
        val, test = x[:n_val], x[n_val:]
        val_desc = f"the first {n_val} held-out examples (the rest are the test set)"
    shape = tuple(x.shape[1:]) if loaded.config.fully_convolutional else None
    samples = draw_samples(loaded.model, n_samples, make_generator(device, seed + 3), batch_size, shape, progress)
    samp = space(samples).to(device)
    val_ll = parzen_log_likelihood_nats(space(val).to(device), samp, list(PARZEN_SIGMAS)).mean(dim=1).cpu()
    sigma = float(PARZEN_SIGMAS[int(torch.argmax(val_ll))])
    ll = parzen_log_likelihood_nats(space(test).to(device), samp, sigma).cpu()
    if progress is not None:
        progress("Parzen", 1, 1)
    n = ll.numel()
    return ParzenEstimate(nats=float(ll.mean()), stderr_nats=float(ll.std() / math.sqrt(n)) if n > 1 else None,
                          sigma=sigma, n_samples=int(n_samples), n_test=n, validation=val_desc,
                          space="pixels in [0, 1]" if kind == "images" else "normalised units")


def evaluate_model_file(path, *, data: str | os.PathLike | None = None, n: int | None = None,
                        ais: int | None = None, parzen: bool = False, parzen_samples: int = 10_000,
                        device: str | torch.device = "auto", seed: int = 0, batch_size: int | None = None,
                        cifar_dir=None, loaded=None, progress: Progress | None = None) -> Evaluation:
    """Everything ``dpm eval`` reports for the model file ``path``: the exact K (mean, standard error),
    K − L_null, β_1 and its cap on :func:`resolve_eval_data`'s data; with ``ais`` the AIS estimate
    (that many trajectories per example); with ``parzen`` the Parzen estimate from ``parzen_samples``
    samples. ``loaded``: the already loaded model (else it is loaded from ``path`` onto ``device``).
    Seeded: the same arguments give the same numbers on the same device."""
    from .files import load_model

    dev = resolve_device(device)
    lm = loaded if loaded is not None else load_model(path, device=dev)
    model = lm.model.to(dev)
    model.eval()
    ed = resolve_eval_data(lm, data, n, cifar_dir)
    x = ed.x.to(dev)
    if x.shape[0] < 1:
        from .data import DataError

        raise DataError(f"{path}: no held-out examples to evaluate on")
    bs = batch_size or eval_batch_size(model)
    t0 = time.perf_counter()
    ev = exact_K(model, x, ed.unit, generator=make_generator(dev, seed), batch_size=bs, progress=progress)
    ev = ev.replace(data=ed.description)
    if ais:
        ev = ev.replace(ais=ais_estimate(model, x, ais, ev.L_null_bits, generator=make_generator(dev, seed + 1),
                                         batch_size=bs, progress=progress))
    if parzen:
        ev = ev.replace(parzen=parzen_estimate(lm, ed, x, parzen_samples, dev, seed, bs, progress))
    return ev.replace(seconds=time.perf_counter() - t0)
