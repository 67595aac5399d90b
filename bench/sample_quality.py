"""Sample quality of image models, measured with a small classifier trained on the bundled real digits.

    python bench/sample_quality.py resources/models/digits.h5 resources/models/mnist5k.h5 --threads 1
    python bench/sample_quality.py resources/models/mnist5k.h5 --peer --threads 1   # + diffusers peer row

For each model file (a digits or mnist5k model: the data set is read from the file's meta "data"), a small
CNN is trained on that data set's training split (seeded, one thread, well under two minutes) and then
classifies

* N samples of the model (``dpm sample``'s sampler, all T steps, seed ``--seed``), and
* the first N held-out real images (the same held-out split the model's K is measured on),

and the bench prints, for both: the fraction classified with confidence (max softmax) ≥ 0.9, the mean
confidence, and the entropy of the histogram of predicted classes (all ten digits equally often = log2 10
= 3.32 bits), plus the classifier's held-out accuracy. Floors for the bundled models are in
resources/models/README.md.

``--peer``: also trains diffusers' ``UNet2DModel`` + ``DDPMScheduler`` (the standard ε-prediction DDPM
recipe: linear β from 1e-4 to 0.02, T = 1000, MSE on ε, AdamW, EMA) on the same training split for the
same CPU seconds as the model file's own training (meta ``train_seconds``, or ``--peer-seconds``),
samples N images with all 1000 DDPM steps and prints its row and the ratio of our figures to the peer's.
diffusers is a bench-only optional dependency (``pip install diffusers``); nothing else in the project
imports it.

Timing: the numbers this prints are measured, nothing is asserted; sampling costs T network passes per
batch (a few minutes for N = 100 on one thread).
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.data import load_preset  # noqa: E402
from models.files import load_model  # noqa: E402
from models.paths import DATA_DIR  # noqa: E402
from models.sampling import sample  # noqa: E402

CONFIDENT = 0.9
CLASSIFIER_DATA = ("digits", "mnist5k")
CLASSIFIER_EPOCHS = {"digits": 40, "mnist5k": 12}


@dataclass(frozen=True)
class Quality:
    """Classifier figures for a set of images: fraction with confidence ≥ 0.9, mean confidence, entropy
    (bits) of the predicted-class histogram, per-class counts."""

    n: int
    confident: float
    mean_confidence: float
    class_entropy_bits: float
    counts: tuple[int, ...]


# ---------------------------------------------------------------------------------------------------
# data and classifier


def labelled_split(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """The bundled images with labels, split exactly as the preset splits them (the held-out indices in
    the preset's order). Returns (train u [N, 1, H, W] uint8, train labels, held-out u, held-out labels,
    levels)."""
    from models.data.dataset import _split  # the preset's own split
    from models.data.registry import DIGITS_N_HELDOUT, MNIST5K_N_HELDOUT

    with h5py.File(DATA_DIR / f"{name}.h5", "r") as f:
        u, y = f["images"][()], f["labels"][()].astype(np.int64)
    n_held, levels = (DIGITS_N_HELDOUT, 17.0) if name == "digits" else (MNIST5K_N_HELDOUT, 256.0)
    tr, he = _split(len(u), n_held)
    return u[tr][:, None], y[tr], u[he][:, None], y[he], levels


def to_unit(u: np.ndarray, levels: float, rng: np.random.Generator | None) -> torch.Tensor:
    """Integers → [0, 1] values: (u + U(0, 1)) / levels (dequantised like the data sets) or (u + ½) / levels."""
    noise = rng.random(u.shape, dtype=np.float32) if rng is not None else np.float32(0.5)
    return torch.from_numpy((u.astype(np.float32) + noise) / np.float32(levels))


class Classifier(nn.Module):
    """Two 3×3 conv layers (32, 64 channels) → max-pool → dense 128 → 10 classes. [B, 1, H, W] in [0, 1]."""

    def __init__(self, side: int):
        super().__init__()
        pool = 2 if side <= 8 else 4
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), *( [nn.MaxPool2d(2)] if pool == 4 else [] ),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(64 * (side // pool) ** 2, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _shift(x: torch.Tensor, g: torch.Generator, max_shift: int) -> torch.Tensor:
    """Random translations by up to ``max_shift`` pixels (zero fill), one per image."""
    if max_shift == 0:
        return x
    B, _, H, W = x.shape
    p = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (B,), generator=g)
    dx = torch.randint(0, 2 * max_shift + 1, (B,), generator=g)
    return torch.stack([p[i, :, dy[i]:dy[i] + H, dx[i]:dx[i] + W] for i in range(B)])


def train_classifier(name: str, seed: int = 0, cache: Path | None = None) -> tuple[Classifier, float, float]:
    """Train on the preset's training split. Returns (classifier, held-out accuracy, seconds).
    With ``cache`` (a folder), the weights are kept there as .npz (no pickle) and reused."""
    u_tr, y_tr, u_he, y_he, levels = labelled_split(name)
    if cache is not None:
        f = cache / f"classifier_{name}_seed{seed}_ep{CLASSIFIER_EPOCHS[name]}.npz"
        if f.is_file():
            clf = Classifier(u_tr.shape[-1])
            with np.load(f, allow_pickle=False) as z:
                clf.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
            clf.eval()
            with torch.no_grad():
                pred = clf(to_unit(u_he, levels, None)).argmax(1).numpy()
            return clf, float((pred == y_he).mean()), 0.0
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    clf = Classifier(u_tr.shape[-1])
    opt = torch.optim.Adam(clf.parameters(), 1e-3)
    epochs, bs = CLASSIFIER_EPOCHS[name], 64
    y = torch.from_numpy(y_tr)
    t0 = time.perf_counter()
    clf.train()
    for _ in range(epochs):
        x = to_unit(u_tr, levels, rng)
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            xb = _shift(x[idx], g, 1)
            loss = F.cross_entropy(clf(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    clf.eval()
    sec = time.perf_counter() - t0
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(f, **{k: v.numpy() for k, v in clf.state_dict().items()})
    with torch.no_grad():
        pred = clf(to_unit(u_he, levels, None)).argmax(1).numpy()
    return clf, float((pred == y_he).mean()), sec


@torch.no_grad()
def quality(clf: Classifier, x01: torch.Tensor) -> Quality:
    """Figures for images x01 [N, 1, H, W] in [0, 1]."""
    p = torch.softmax(clf(x01.clamp(0, 1)), dim=1)
    conf, pred = p.max(1)
    counts = np.bincount(pred.numpy(), minlength=10)
    f = counts / counts.sum()
    ent = float(-(f[f > 0] * np.log2(f[f > 0])).sum())
    return Quality(len(x01), float((conf >= CONFIDENT).float().mean()), float(conf.mean()), ent,
                   tuple(int(c) for c in counts))


# ---------------------------------------------------------------------------------------------------
# our models


def model_samples(path: Path, n: int, seed: int, batch: int = 50) -> tuple[torch.Tensor, str, dict]:
    """N samples of a model file, shown in [0, 1] ([N, 1, H, W]); its data set name and meta."""
    lm = load_model(path)
    name = lm.meta.get("data")
    if name not in CLASSIFIER_DATA:
        raise SystemExit(f"{path}: a model of {name!r}; this bench classifies digits or mnist5k models only")
    data = load_preset(name)
    m = lm.model.eval()
    g = torch.Generator().manual_seed(seed)
    out = [sample(m, min(batch, n - i), generator=g) for i in range(0, n, batch)]
    return torch.from_numpy(data.display(torch.cat(out))), name, lm.meta


# ---------------------------------------------------------------------------------------------------
# the peer: diffusers UNet2DModel + DDPMScheduler


def peer_samples(seconds: float, n: int, seed: int, batch_size: int = 32) -> tuple[torch.Tensor, int, int]:
    """Train diffusers' DDPM on mnist5k's training split for ``seconds`` of CPU time (one thread) and
    draw n samples with all 1000 steps. Returns (samples [n, 1, 28, 28] in [0, 1], iterations,
    parameters)."""
    try:
        from diffusers import DDPMScheduler, UNet2DModel
    except ImportError as e:
        raise SystemExit(f"--peer needs diffusers (pip install diffusers): {e}") from None
    u_tr, *_ = labelled_split("mnist5k")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    # a small UNet2DModel at 32×32 (MNIST padded by 2), three resolutions with the mnist5k preset's widths
    # (16, 32, 64), no attention: comparable in size and cost per step to our net
    net = UNet2DModel(sample_size=32, in_channels=1, out_channels=1, block_out_channels=(16, 32, 64),
                      down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D"),
                      up_block_types=("UpBlock2D", "UpBlock2D", "UpBlock2D"), layers_per_block=1,
                      norm_num_groups=8)
    sched = DDPMScheduler(num_train_timesteps=1000)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    ema = copy.deepcopy(net).eval()
    t0, it = time.process_time(), 0  # CPU seconds of this process (one thread), not wall time
    net.train()
    while time.process_time() - t0 < seconds:
        idx = rng.integers(0, len(u_tr), batch_size)
        x0 = F.pad(to_unit(u_tr[idx], 256.0, rng) * 2 - 1, (2, 2, 2, 2), value=-1.0)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, 1000, (batch_size,), generator=g)
        loss = F.mse_loss(net(sched.add_noise(x0, noise, t), t).sample, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
        with torch.no_grad():
            d = min(0.999, (1 + it) / (10 + it))
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
    out = []
    with torch.no_grad():
        for i in range(0, n, 50):
            x = torch.randn((min(50, n - i), 1, 32, 32), generator=g)
            sched.set_timesteps(1000)
            for t in sched.timesteps:
                x = sched.step(ema(x, t).sample, t, x, generator=g).prev_sample
            out.append(x[:, :, 2:30, 2:30])
    x = torch.cat(out)
    return ((x + 1) / 2).clamp(0, 1), it, sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------------------------------------------


def save_grid(x01: torch.Tensor, path: Path, cols: int = 6, scale: int = 4) -> None:
    """The first cols² images [N, C, H, W] in [0, 1] as one PNG grid (1-pixel grey gaps, nearest-neighbour
    upscaled by ``scale``)."""
    from PIL import Image

    x = x01[: cols * cols].clamp(0, 1).numpy()
    n, C, H, W = x.shape
    rows = math.ceil(n / cols)
    grid = np.full((C, rows * (H + 1) + 1, cols * (W + 1) + 1), 0.5, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[:, 1 + r * (H + 1):1 + r * (H + 1) + H, 1 + c * (W + 1):1 + c * (W + 1) + W] = x[i]
    img = (grid * 255 + 0.5).astype(np.uint8).repeat(scale, 1).repeat(scale, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img[0] if C == 1 else np.moveaxis(img, 0, -1)).save(path)


def _row(label: str, q: Quality) -> str:
    return (f"{label:34s} {q.n:5d} {100 * q.confident:9.1f} % {q.mean_confidence:9.3f} {q.class_entropy_bits:9.2f}"
            f"   {' '.join(f'{c:3d}' for c in q.counts)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", type=Path, help="digits / mnist5k model files")
    ap.add_argument("-n", type=int, default=100, help="samples per model (and real held-out images)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grids", type=Path, default=None,
                    help="folder to write a 6×6 grid of each model's first 36 samples to (MODEL-STEM.png)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="folder to keep the trained classifiers in (.npz) and reuse them from")
    ap.add_argument("--peer", action="store_true", help="also train and score diffusers' DDPM on mnist5k")
    ap.add_argument("--peer-seconds", type=float, default=None,
                    help="the peer's training budget in CPU seconds (default: the mnist5k model's meta "
                         "train_seconds, which is wall time: on a shared machine give the CPU seconds instead)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if not a.models and not a.peer:
        ap.error("give model files and/or --peer")
    header = (f"{'images':34s} {'N':>5s} {'conf≥0.9':>11s} {'mean conf':>9s} {'H(class)':>9s}   "
              "predicted-class counts 0..9")
    classifiers: dict[str, tuple[Classifier, Quality]] = {}

    def classifier(name: str) -> tuple[Classifier, Quality]:
        if name not in classifiers:
            clf, acc, sec = train_classifier(name, a.seed, a.cache)
            _, _, u_he, _, levels = labelled_split(name)
            real = quality(clf, to_unit(u_he[:a.n], levels, np.random.default_rng(a.seed)))
            how = f"{sec:.0f} s to train, one thread" if sec else f"read from {a.cache}"
            print(f"\n{name}: classifier held-out accuracy {100 * acc:.1f} % ({how})")
            print(header)
            print(_row(f"real held-out {name}", real))
            classifiers[name] = (clf, real)
        return classifiers[name]

    ours_mnist: tuple[Quality, dict] | None = None
    for path in a.models:
        t0 = time.perf_counter()
        x, name, meta = model_samples(path, a.n, a.seed)
        clf, real = classifier(name)
        q = quality(clf, x)
        if a.grids is not None:
            save_grid(x, a.grids / f"{path.stem}.png")
        its = meta.get("iterations")
        print(_row(f"{path.name} ({its} its)", q) + f"   [{time.perf_counter() - t0:.0f} s to sample]")
        print(f"{'':34s} ratio to real: conf≥0.9 {q.confident / max(real.confident, 1e-9):.2f}, "
              f"entropy {q.class_entropy_bits / real.class_entropy_bits:.2f}")
        if name == "mnist5k":
            ours_mnist = (q, meta)
    if a.peer:
        seconds = a.peer_seconds
        if seconds is None:
            if ours_mnist is None or not ours_mnist[1].get("train_seconds"):
                raise SystemExit("--peer needs an mnist5k model file (for its train_seconds) or --peer-seconds")
            seconds = float(ours_mnist[1]["train_seconds"])
        clf, real = classifier("mnist5k")
        x, its, n_par = peer_samples(seconds, a.n, a.seed)
        q = quality(clf, x)
        if a.grids is not None:
            save_grid(x, a.grids / "diffusers_ddpm_mnist5k.png")
        print(_row(f"diffusers DDPM ({its} its, {seconds:.0f} s)", q) + f"   [{n_par:,} parameters]")
        if ours_mnist is not None:
            o = ours_mnist[0]
            print(f"{'':34s} ours / peer: conf≥0.9 {o.confident / max(q.confident, 1e-9):.2f}, mean conf "
                  f"{o.mean_confidence / max(q.mean_confidence, 1e-9):.2f}, entropy "
                  f"{o.class_entropy_bits / max(q.class_entropy_bits, 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
