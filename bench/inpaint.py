"""Inpainting speed on this machine: how long until the first conditioned frame, and the whole chain.

Two cases, with the paper's clamp method (paper Fig. 5) and one sample:

* ``bark64``: a 64×64 grey texture (resources/data/textures/bark-like), the central 32×32 filled, with a
  fully convolutional model shaped like the ``bark`` preset (T = 500). Uses resources/models/bark.h5 if
  it exists, else an untrained model of that config (the speed is the same; the output is noise).
  Targets: first frame < 1 s, total < 30 s.
* ``mnist28``: a 28×28 digit, the lower half filled, with a model shaped like ``mnist5k`` (T = 1000);
  resources/models/mnist5k.h5 if it exists, else untrained. Target: total < 20 s.

"First frame" is the time from the call until the first state the model produced (x^{T−1}), including
model loading and image preparation; x^T itself is ready before any network evaluation. Prints a table,
or with ``--json`` one JSON object: {case: {first_frame_s, total_s, steps, model, ...}}. Never asserts.

    python bench/inpaint.py
    python bench/inpaint.py --json --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

from models import conditioning as C
from models import images as I
from models.files import LoadedModel, load_model
from models.paths import DATA_DIR, MODELS_DIR
from models.presets import get_preset
from models.model import DiffusionModel

TARGETS = {"bark64": {"first_frame_s": 1.0, "total_s": 30.0}, "mnist28": {"total_s": 20.0}}


def _model(preset: str) -> tuple[LoadedModel, str]:
    path = MODELS_DIR / f"{preset}.h5"
    if path.exists():
        return load_model(path), str(path)
    torch.manual_seed(0)
    cfg = get_preset(preset).model
    norm = {"mean": 0.45, "std": 0.25, "levels": 256}
    return LoadedModel(model=DiffusionModel(cfg).eval(), norm=norm, history={}, meta={}), f"untrained {preset} config"


def _image(case: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(pixels [H, W] uint8, known [H, W] bool, source)."""
    if case == "bark64":
        tex = sorted((DATA_DIR / "textures").glob("*.png"))
        if tex:
            from models.data import load_image

            a = load_image(tex[0])[0]
            img, src = (a[:64, :64] * 255).round().astype(np.uint8), tex[0].name
        else:
            img, src = np.random.default_rng(0).integers(0, 256, (64, 64)).astype(np.uint8), "random pixels"
        known = np.ones((64, 64), bool)
        known[16:48, 16:48] = False
        return img, known, src
    img = np.zeros((28, 28), np.uint8)
    img[6:22, 12:16] = 255  # a "1"
    src = "a drawn 1"
    try:
        import h5py

        with h5py.File(DATA_DIR / "mnist5k.h5", "r") as f:
            key = next(k for k in f if f[k].ndim == 3)
            img, src = np.asarray(f[key][0], dtype=np.uint8), f"mnist5k.h5/{key}[0]"
    except Exception:
        pass
    known = np.ones((28, 28), bool)
    known[14:] = False
    return img, known, src


def run_case(case: str, method: str = "clamp") -> dict:
    preset = {"bark64": "bark", "mnist28": "mnist5k"}[case]
    t0 = time.perf_counter()
    lm, model_src = _model(preset)
    img, known, img_src = _image(case)
    prep = I.prepare_image(img, lm)
    g = torch.Generator(device=lm.model.device).manual_seed(0)
    first = None
    n = 0
    last = None
    for i, st in enumerate(C.inpaint_steps(lm.model, prep.y, known, method=method, generator=g)):
        if i == 1:
            first = time.perf_counter() - t0
        n += 1
        last = st
    total = time.perf_counter() - t0
    y = prep.y[0].numpy()
    exact = bool(np.array_equal(last.x[0].numpy()[:, known], y[:, known]))
    out = dict(first_frame_s=round(first, 3), total_s=round(total, 3), steps=n, T=lm.model.T,
               image=f"{img_src} {prep.shape_hw[1]}×{prep.shape_hw[0]}", model=model_src, method=method,
               known_pixels_exact=exact, per_step_ms=round(1000 * (total - first) / max(1, n - 2), 2))
    tgt = TARGETS.get(case, {})
    out["meets_targets"] = all(out[k] < v for k, v in tgt.items())
    out["targets"] = tgt
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--cases", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--method", default="clamp", choices=C.METHODS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    res = {c: run_case(c, args.method) for c in args.cases}
    info = dict(machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
                torch_threads=torch.get_num_threads(), torch=torch.__version__)
    if args.json:
        print(json.dumps(dict(res, _machine=info), sort_keys=True))
        return 0
    print(f"inpainting speed ({info['cpus']} CPUs, {info['torch_threads']} torch threads, torch {info['torch']})")
    for c, r in res.items():
        tg = ", ".join(f"{k} < {v:g}" for k, v in r["targets"].items())
        print(f"  {c:8s} first frame {r['first_frame_s']:7.3f} s   total {r['total_s']:7.2f} s   "
              f"{r['steps']} states, {r['per_step_ms']:.1f} ms/step   targets: {tg} → "
              f"{'met' if r['meets_targets'] else 'NOT met'}")
        print(f"           model: {r['model']}; image: {r['image']}; known pixels exact: {r['known_pixels_exact']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
