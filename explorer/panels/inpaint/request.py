"""The inpainting panel's form → one library call, without Qt (testable with no widgets).

A page of the panel fills one of the frozen forms below (:class:`ImageForm`, :class:`PlaneForm`,
:class:`BitsForm`); :func:`build_request` checks it against the model and returns a :class:`Request`:
a factory of the library's step generator (paper §2.5, App. C: p̃(x^0) ∝ p(x^0)·r(x^0)), how many states
it yields, what to record with the result, and notes for the user. :func:`stream` walks the generator
and thins it into :class:`Frame` records for a worker thread to hand to the GUI.

Pages are the panel's own word: "image" (image models: inpainting, denoising), "plane" (Gaussian models
of 2-D points: a painted region or a Gaussian r), "bits" (binomial models: fixed bits).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from models import conditioning as cond  # the library's samplers (models/README.md, Conditioning (p·r))
from models import images as img
from models.runtime import MAX_BATCH

PAGES = ("image", "plane", "bits")
PLANE_EXTENT = (-3.5, 3.5, -3.5, 3.5)  # the painted plane, normalised units (x_min, x_max, y_min, y_max)
PLANE_GRID = 64  # cells per side of the painted region
MAX_SIDE = 128  # a conv model's input is shrunk to this longest side by default (time grows with pixels)
MAX_FRAMES = 600  # states kept per run (every k-th)
CACHE_BYTES = 256 * 2**20

#: samples per run when a model is opened, per page: a few images (each a whole chain of a conv net),
#: a cloud of points, a table of bit strings
DEFAULT_SAMPLES = {"image": 2, "plane": 500, "bits": 16}
#: SMC particles per sample: the library's default, fewer for images (each particle is a conv net's chain)
DEFAULT_PARTICLES = {"image": 16, "plane": cond.DEFAULT_PARTICLES, "bits": cond.DEFAULT_PARTICLES}

TASKS = ("inpaint", "denoise")
REGIONS = ("region", "gaussian")
NOISE = ("add", "noisy")


@dataclass(frozen=True)
class MethodText:
    """What the panel says about a method: a short label and its tooltip (how exact it is)."""

    label: str
    tip: str


_SMC = MethodText(
    "SMC (exact)",
    "Sequential Monte Carlo: particles move by the model's own reverse steps and are weighted and\n"
    "resampled so that they target the model's p·r exactly as the particle count grows\n"
    "(SMCDiff, Trippe et al. 2022). The plot below shows the effective sample size per step\n"
    "(a fraction of the particles); a low ESS means few particles carry the result.\n"
    "Cost: particles × the network evaluations of one chain, per sample.")

#: Labels and known biases, per page and task (the library's method names are the keys). The figures
#: are the library's (models/posterior.py, models/conditioning.py, bench/posterior_bias.py): a model whose
#: reverse steps are exact for a correlated 2-D Gaussian (ρ = 0.8, unit variances, T = 200), x₁ = 1.5
#: observed, x₂ against the model's own closed-form conditional.
METHOD_TEXT: dict[str, dict[str, MethodText]] = {
    "inpaint": {
        "clamp": MethodText(
            "Clamp (paper)",
            "The paper's r = δ on the known pixels at every step (Fig. 5, Eq. 23).\n"
            "Not the exact conditional: on a correlated Gaussian it puts the unknown part's mean\n"
            "0.49 sd too low and its variance 41 % too high, and more steps T do not shrink the error."),
        "annealed": MethodText(
            "Annealed r",
            "A narrow Gaussian r on the known pixels raised to (T − t)/T, an exact clamp at the end.\n"
            "As biased as the clamp (mean −0.50 sd, variance +41 % on a correlated Gaussian)."),
        "repaint": MethodText(
            "RePaint",
            "Forward-noised known pixels with jumps back up to harmonise (Lugmayr et al. 2022).\n"
            "Closer, still off: −0.31 sd in the mean and +17 % variance on a correlated Gaussian\n"
            "(jumps of 10 steps, 5 passes)."),
        "smc": _SMC,
    },
    "denoise": {
        "observation": MethodText(
            "Product, start at y (code)",
            "Every reverse step multiplied exactly by r = N(y, σ²) (Eq. 22, 23), starting at x^T = y.\n"
            "Each step is exact, the chain is not: the per-step normalisers are dropped (for N(0, 1)\n"
            "data it tends to p·r² rather than p·r)."),
        "prior": MethodText(
            "Product, start at π·r (paper)",
            "Every reverse step multiplied exactly by r = N(y, σ²) (Eq. 22, 23), starting at π·r.\n"
            "Biased like the start at y: the per-step normalisers are dropped."),
        "matched": MethodText(
            "Matched noise level",
            "The plain chain started at the step whose noise level equals σ. Exact for a perfect model\n"
            "only when σ² falls on the schedule's grid; elsewhere the result is off\n"
            "(variance +3.5 % at T = 100, σ = 1; +0.24 % at T = 1000)."),
        "smc": _SMC,
    },
    "region": {
        "shift": MethodText(
            "Shift (App. C)",
            "Each reverse step's mean moves by Σ·∇log r (App. C), the same r at every step (Eq. 23).\n"
            "Approximate: the per-step normalisers are dropped, so the result is not exactly p·r."),
        "smc": _SMC,
    },
    "gaussian": {
        "shift": MethodText(
            "Product (Eq. 22)",
            "Every reverse step multiplied exactly by the Gaussian r, starting at π·r.\n"
            "Each step is exact, the chain is not: the per-step normalisers are dropped (for N(0, 1)\n"
            "data it tends to p·r² rather than p·r)."),
        "smc": _SMC,
    },
    "bits": {
        "clamp": MethodText(
            "Fixed (Table App.1)",
            "The binomial r fixes the chosen bits at every step (constant in t, Table App.1).\n"
            "Not the exact conditional of the free bits: the clamp's bias applies to bits too."),
        "annealed": MethodText(
            "Annealed r",
            "The binomial r raised to (T − t)/T, an exact clamp at the end; biased like the clamp."),
        "smc": _SMC,
    },
}


def has_smc() -> bool:
    """Whether the library offers the SMC sampler."""
    return "smc" in tuple(getattr(cond, "METHODS", ()))


def page_for(kind: str, example_shape) -> str | None:
    """The panel page for a model of ``kind`` ("points" | "binary" | "images") and ``example_shape``;
    None when the panel cannot condition it."""
    shape = tuple(int(s) for s in example_shape)
    if kind == "images" and len(shape) == 3:
        return "image"
    if kind == "points" and shape == (2,):
        return "plane"
    if kind == "binary" and len(shape) == 1:
        return "bits"
    return None


def methods_for(topic: str) -> tuple[str, ...]:
    """The library's methods for ``topic`` ("inpaint", "denoise", "region", "gaussian", "bits"), the
    paper's first; labels and tooltips in :data:`METHOD_TEXT`."""
    if topic == "inpaint":
        return tuple(cond.METHODS)
    if topic == "denoise":
        return tuple(cond.DENOISE_STARTS)
    if topic in ("region", "gaussian"):
        return tuple(cond.REGION_METHODS)
    if topic == "bits":
        return tuple(m for m in cond.METHODS if m != "repaint")  # RePaint's forward noising is Gaussian
    raise ValueError(f"unknown topic {topic!r}")


# ---------------------------------------------------------------------------------------------------
# forms


@dataclass(frozen=True)
class Sampling:
    """Shared by every page: ``n`` samples, ``seed``, and for SMC the ``particles`` per sample."""

    n: int = 2
    seed: int = 0
    particles: int = 16


@dataclass(frozen=True)
class ImageForm:
    """Inpainting or denoising one image.

    y: float32 [1, C, H, W] observation (normalised); known: bool [H, W], True = observed (inpainting);
    method: one of ``methods_for(task)``; sigma_pixels: the noise σ on the [0, 1] pixel scale
    (denoising); noise: "add" (y is clean; noise of that σ is added, drawn from the run's seed) or
    "noisy" (y is the noisy observation)."""

    y: torch.Tensor
    known: np.ndarray
    task: str = "inpaint"
    method: str = "clamp"
    sampling: Sampling = Sampling()
    sigma_r: float = 0.05
    jump_length: int = 10
    jump_n: int = 5
    sigma_pixels: float = 0.2
    noise: str = "add"
    image_name: str = ""


@dataclass(frozen=True)
class PlaneForm:
    """r(x) on the plane: a painted region ``weights`` [PLANE_GRID, PLANE_GRID] (row 0 = y_min) with a
    ``softness`` fall-off, or a Gaussian N(centre, std²·I)."""

    r: str = "region"
    weights: np.ndarray | None = None
    softness: float = 0.25
    centre: tuple[float, float] = (1.0, 0.0)
    std: float = 0.5
    method: str = "shift"
    sampling: Sampling = Sampling(n=500)
    extent: tuple[float, float, float, float] = PLANE_EXTENT


@dataclass(frozen=True)
class BitsForm:
    """Fixed bits: ``bits`` int [D], 1 or 0 fixed, −1 free."""

    bits: np.ndarray
    method: str = "clamp"
    sampling: Sampling = Sampling(n=16)


@dataclass(frozen=True)
class Request:
    """A run, ready to start: ``make_steps()`` returns the library's generator of Steps (t, x [N, *S],
    ess); it yields ``total`` states of about ``state_bytes`` bytes each. ``meta`` is stored with an
    exported trajectory; ``notes`` are for the user (an odd mask)."""

    make_steps: Callable[[], Iterator]
    total: int
    state_bytes: int
    meta: dict
    notes: tuple[str, ...] = ()

    @property
    def stride(self) -> int:
        """Every how many states one is kept (at most MAX_FRAMES states, CACHE_BYTES bytes)."""
        return max(1, math.ceil(self.total / MAX_FRAMES), math.ceil(self.total * self.state_bytes / CACHE_BYTES))


@dataclass(frozen=True)
class Frame:
    """One step of a run: ``index`` in the chain, paper time ``t``, ``x`` float32 [N, *S] (normalised)
    for a kept state or None (progress only), ``ess`` SMC's effective sample size as a fraction of the
    particles (None for other methods)."""

    index: int
    t: int
    x: np.ndarray | None
    ess: float | None = None


def _generator(model, seed: int) -> torch.Generator:
    return torch.Generator(device=model.device).manual_seed(int(seed))


def _check(topic: str, method: str, s: Sampling) -> None:
    allowed = methods_for(topic)
    if method not in allowed:
        raise ValueError(f"method {method!r} is not offered here; choose one of {', '.join(allowed)}")
    if s.n < 1:
        raise ValueError(f"the number of samples must be at least 1, got {s.n}")
    if method == "smc" and s.particles < 1:
        raise ValueError(f"the particle count must be at least 1, got {s.particles}")
    chains = s.n * (s.particles if method == "smc" else 1)
    if chains > MAX_BATCH:  # every chain is one row of the network's batch at each step
        raise ValueError(f"{chains:,} chains (samples × particles) is more than the limit of {MAX_BATCH:,}")


def _meta(model, s: Sampling, method: str, **kw) -> dict:
    meta = dict(model_T=int(model.T), seed=int(s.seed), n_samples=int(s.n), units="normalised", method=method, **kw)
    if method == "smc":
        meta["particles"] = int(s.particles)
    return meta


def _bytes(values: int, s: Sampling) -> int:
    """Bytes of one kept state: n samples of ``values`` float32 (SMC shows one particle per sample)."""
    return int(values) * int(s.n) * 4


def noisy_observation(y: torch.Tensor, sigma_normalised: float, seed: int) -> torch.Tensor:
    """y + σ·ε, ε drawn from ``seed`` (the same noise for the preview and the run)."""
    g = torch.Generator().manual_seed(int(seed))
    return y + sigma_normalised * torch.randn(tuple(y.shape), generator=g, dtype=y.dtype)


def build_request(model, norm: dict, form) -> Request:
    """Check ``form`` against ``model`` (a DiffusionModel, used read-only: give a copy while training
    runs) and ``norm`` (its normalisation dict) and return the run. Raises ValueError with a message
    for the user."""
    if model is None:
        raise ValueError("no model: open or train one first")
    if isinstance(form, ImageForm):
        return _image_request(model, norm, form)
    if isinstance(form, PlaneForm):
        return _plane_request(model, form)
    if isinstance(form, BitsForm):
        return _bits_request(model, form)
    raise TypeError(f"unknown form {type(form).__name__}")


def _image_request(model, norm, f: ImageForm) -> Request:
    if f.task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {f.task!r}")
    s = f.sampling
    _check(f.task, f.method, s)
    n, g, P = int(s.n), _generator(model, s.seed), int(s.particles)
    per = _bytes(f.y.numel(), s)
    if not model.is_gaussian and (f.task == "denoise" or f.method in ("annealed", "repaint")):
        raise ValueError(f"{METHOD_TEXT[f.task][f.method].label} needs a Gaussian model")
    if f.task == "denoise":
        if f.noise not in NOISE:
            raise ValueError(f"noise must be one of {', '.join(NOISE)}, got {f.noise!r}")
        if not (f.sigma_pixels > 0 and math.isfinite(f.sigma_pixels)):
            raise ValueError(f"the noise σ must be positive, got {f.sigma_pixels}")
        sz = img.sigma_to_normalised(f.sigma_pixels, norm)
        y = noisy_observation(f.y, sz, s.seed) if f.noise == "add" else f.y
        meta = _meta(model, s, f.method, kind="denoise", image=f.image_name, norm=dict(norm or {}),
                     sigma_pixels=float(f.sigma_pixels), sigma_normalised=sz, noise=f.noise, start=f.method)
        total = cond.matched_start_index(model, sz) + 1 if f.method == "matched" else model.T + 1
        return Request(lambda: cond.denoise_steps(model, y, sz, n_samples=n, generator=g, start=f.method,
                                                  particles=P), total, per, meta)
    known = np.asarray(f.known, dtype=bool)
    note = img.mask_note(known)
    extra = {}
    if f.method == "annealed":
        if not f.sigma_r > 0:
            raise ValueError(f"σ_r must be positive, got {f.sigma_r}")
        extra["sigma_r"] = float(f.sigma_r)
    if f.method == "repaint":
        if f.jump_length < 1 or f.jump_n < 1:
            raise ValueError("RePaint's jump length and count must be at least 1")
        extra.update(jump_length=int(f.jump_length), jump_n=int(f.jump_n))
    meta = _meta(model, s, f.method, kind="inpaint", image=f.image_name, norm=dict(norm or {}), **extra)
    if known.all():
        total = 1
    elif not known.any():
        total = model.T + 1
    else:
        total = cond.count_inpaint_steps(model.T, f.method, jump_length=int(f.jump_length), jump_n=int(f.jump_n))
    y = f.y
    return Request(lambda: cond.inpaint_steps(model, y, known, method=f.method, n_samples=n, generator=g,
                                              sigma_r=float(f.sigma_r), jump_length=int(f.jump_length),
                                              jump_n=int(f.jump_n), particles=P),
                   total, per, meta, notes=(note,) if note else ())


def _plane_request(model, f: PlaneForm) -> Request:
    if f.r not in REGIONS:
        raise ValueError(f"r must be one of {', '.join(REGIONS)}, got {f.r!r}")
    s = f.sampling
    _check(f.r, f.method, s)
    n, g, P = int(s.n), _generator(model, s.seed), int(s.particles)
    per = _bytes(2, s)
    if f.r == "gaussian":
        if not (f.std > 0 and math.isfinite(f.std)):
            raise ValueError(f"the Gaussian's std must be positive, got {f.std}")
        c = (float(f.centre[0]), float(f.centre[1]))
        meta = _meta(model, s, f.method, kind="gaussian_region", centre=list(c), std=float(f.std))
        return Request(lambda: cond.gaussian_region_steps(model, c, float(f.std), n, g, method=f.method, particles=P),
                       model.T + 1, per, meta)
    w = None if f.weights is None else np.asarray(f.weights, dtype=np.float32)
    if w is None or not w.any():
        raise ValueError("the region is empty: paint some of the plane first (or pick a Gaussian r)")
    if not (f.softness >= 0 and math.isfinite(f.softness)):
        raise ValueError(f"softness must be at least 0, got {f.softness}")
    meta = _meta(model, s, f.method, kind="region", extent=list(f.extent), softness=float(f.softness))
    return Request(lambda: cond.region_steps(model, w, f.extent, n, g, softness=float(f.softness), method=f.method,
                                             particles=P), model.T + 1, per, meta)


def _bits_request(model, f: BitsForm) -> Request:
    s = f.sampling
    _check("bits", f.method, s)
    bits = np.asarray(f.bits, dtype=np.int64).copy()
    n, g, P = int(s.n), _generator(model, s.seed), int(s.particles)
    meta = _meta(model, s, f.method, kind="fixed_bits", bits=bits.tolist())
    return Request(lambda: cond.fix_bits_steps(model, bits, n, g, method=f.method, particles=P), model.T + 1,
                   _bytes(len(bits), s), meta)


def stream(request: Request, stride: int | None = None) -> Iterator[Frame]:
    """Walk the request's chain: a :class:`Frame` with the state for every ``stride``-th step and the
    last, a progress-only Frame (``x`` None) for the others. Runs in a worker thread; ``torch.no_grad``
    throughout; x copied to float32 numpy."""
    every = request.stride if stride is None else max(1, int(stride))
    end = request.total - 1
    with torch.no_grad():
        steps = request.make_steps()
        try:
            last = None
            sent = -1
            i = -1
            for i, st in enumerate(steps):
                last = st
                ess = getattr(st, "ess", None)
                ess = None if ess is None else float(ess)
                if i % every == 0 or i == end:
                    sent = i
                    yield Frame(i, int(st.t), _numpy(st.x), ess)
                else:
                    yield Frame(i, int(st.t), None, ess)
            if last is not None and sent != i:
                yield Frame(i, int(last.t), _numpy(last.x), None)  # the chain ran past ``total``: keep its end
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()


def _numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())


@dataclass
class Run:
    """The frames of one run as they arrive (GUI side): states ``frames`` float32 [N, *S] at ``times``,
    their chain ``indices``, and SMC's ESS fraction ``ess`` at times ``ess_t`` (empty for other methods)."""

    request: Request
    frames: list = field(default_factory=list)
    times: list = field(default_factory=list)
    indices: list = field(default_factory=list)
    ess_t: list = field(default_factory=list)
    ess: list = field(default_factory=list)
    completed: bool = False

    def add(self, fr: Frame) -> bool:
        """Record a frame; True when it carried a state."""
        if fr.ess is not None:
            self.ess_t.append(fr.t)
            self.ess.append(fr.ess)
        if fr.x is None:
            return False
        self.frames.append(fr.x)
        self.times.append(fr.t)
        self.indices.append(fr.index)
        return True
