"""Where computations run: torch's CPU thread count, the device, seeded generators, and the limits on
what a user may ask for (models/README.md, **Limits**).

One rule for threads, used by every ``dpm`` command and by the app: torch's intra-op threads = the
CPU cores this process may use − 1, at least 1 (``DPM_THREADS`` or an explicit count overrides). On a
busy 2-core machine two intra-op threads are several times slower than one, and the app's GUI thread
needs a core of its own.
"""
from __future__ import annotations

import os

import torch

__all__ = ["available_cores", "default_threads", "configure_threads", "resolve_device", "make_generator",
           "MAX_T", "MAX_SAMPLES", "MAX_OUTPUT_VALUES", "MAX_AIS_TRAJECTORIES", "MAX_BATCH", "MAX_IMAGE_SIDE",
           "MAX_IMAGE_SAMPLES", "DEFAULT_IMAGE_SIDE"]

# ---- limits on what a command may be asked for (each refused with a line naming the limit) -------------
#: diffusion steps of a new model (the paper uses at most 2000)
MAX_T = 10_000
#: samples per ``dpm sample`` run, and model samples for the Parzen estimate
MAX_SAMPLES = 100_000
#: values in one array a command writes (samples or a trajectory): 2^28 float32 = 1 GiB
MAX_OUTPUT_VALUES = 2**28
#: AIS trajectories per example
MAX_AIS_TRAJECTORIES = 10_000
#: examples per network batch
MAX_BATCH = 65_536
#: side of an image sampled at a custom size (``dpm sample --size``), or worked on by ``dpm inpaint``/``denoise``
MAX_IMAGE_SIDE = 4096
#: ``dpm inpaint``/``denoise`` shrink a larger image to this longest side unless told otherwise
DEFAULT_IMAGE_SIDE = 512
#: samples side by side for ``dpm inpaint`` / ``dpm denoise``
MAX_IMAGE_SAMPLES = 64


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """The thread rule: ``DPM_THREADS`` when it is a positive integer, else cores − 1, at least 1."""
    env = os.environ.get("DPM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, available_cores() - 1)


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count to ``n`` (None → :func:`default_threads`); returns it."""
    n = default_threads() if n is None else int(n)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    torch.set_num_threads(n)
    return n


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) → CUDA when present, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    Asking for CUDA without a GPU, or for anything else, is a ValueError with a clear message."""
    if isinstance(device, torch.device):
        device = str(device)
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for, but no CUDA GPU is available")
        try:
            return torch.device(device)
        except RuntimeError:
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from None
    if device != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return torch.device("cpu")


def make_generator(device: str | torch.device = "cpu", seed: int | None = 0) -> torch.Generator:
    """A torch generator on ``device`` (torch's CUDA kernels refuse a CPU generator), seeded with
    ``seed``, or from the OS's entropy when ``seed`` is None."""
    g = torch.Generator(device=torch.device(device) if isinstance(device, str) else device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g
