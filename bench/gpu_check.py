"""Does everything run on a GPU, and how fast against the CPU? Run it on a CUDA machine.

    python bench/gpu_check.py [--steps 300] [--json]

On ``cuda`` (and, for comparison, on the CPU with one thread):

1. a short training of the Swiss-roll preset (``Trainer`` with its evaluation and fixed-seed samples);
2. sampling 10,000 points from the trained model;
3. inpainting a 32×32 crop with the bundled bark model (clamp and SMC), checking that the known pixels
   come back exactly;
4. a 1-GPU ``torchrun`` of ``dpm train`` (NCCL), checking that the file records world size 1 and a CUDA
   device, and that ``dpm eval`` opens it.

Prints iterations or samples per second on each device and the GPU/CPU ratio; ``--json``: one object.
On a machine without CUDA it says it needs one and exits 0 (nothing in the tests needs a GPU).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _train(device: str, steps: int) -> tuple[float, object]:
    from models.model import DiffusionModel
    from models.presets import PRESETS, load_data
    from models.training import TrainConfig, Trainer

    p = PRESETS["swissroll"]
    torch.manual_seed(0)
    tc = TrainConfig(**{**p.train.__dict__, "steps": steps, "seconds": None, "report_every": max(1, steps // 3),
                        "n_eval": 500, "n_samples": 200})
    tr = Trainer(DiffusionModel(p.model), load_data(preset="swissroll"), tc, device=device)
    t0 = time.perf_counter()
    last = None
    for rec in tr.run():
        last = rec
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    assert last is not None and last.done and np.isfinite(last.K_heldout_bits), "training produced no finite K"
    assert last.samples is not None and np.isfinite(last.samples).all()
    return steps / dt, tr.model


def _sample(model, device: str, n: int = 10_000) -> float:
    from models.runtime import make_generator
    from models.sampling import sample

    m = model.to(device)
    g = make_generator(device, 0)
    sample(m, 100, generator=g)  # warm-up
    t0 = time.perf_counter()
    x = sample(m, n, generator=g)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    assert x.device.type == torch.device(device).type and torch.isfinite(x).all()
    return n / dt


def _inpaint(device: str) -> dict:
    from models.conditioning import inpaint_steps
    from models.files import load_model
    from models.paths import bundled_model
    from models.runtime import make_generator
    from models.sampling import drain

    path = bundled_model("bark")
    if path is None:
        return {"skipped": "no bundled bark model"}
    m = load_model(path, device=device).model
    C = m.config.example_shape[0]
    g = make_generator(device, 0)
    y = torch.randn(1, C, 32, 32, generator=make_generator("cpu", 1))
    known = torch.ones(32, 32, dtype=torch.bool)
    known[8:24, 8:24] = False
    out = {}
    for method in ("clamp", "smc"):
        t0 = time.perf_counter()
        d = drain(inpaint_steps(m, y, known, method=method, n_samples=4, generator=g, particles=4), keep=False)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        x = d.x.cpu()
        assert torch.equal(x[:, :, known], y.expand(4, -1, -1, -1)[:, :, known]), f"{method}: known pixels changed"
        out[method + "_s"] = dt
    return out


def _torchrun(tmp: Path) -> dict:
    out = tmp / "ddp.h5"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "models.cli",
           "train", "swissroll", "--steps", "200", "--device", "cuda", "--n-eval", "1000", "--out", str(out)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"gpu_check: torchrun failed ({r.returncode}):\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    from models.files import load_model
    from models.metadata import ModelMeta

    meta = ModelMeta.from_dict(load_model(out).meta)
    assert meta.world_size == 1 and (meta.device or "").startswith("cuda"), (meta.world_size, meta.device)
    assert "nccl" in r.stderr, "the run did not say it joined with NCCL"
    ev = subprocess.run([sys.executable, "-m", "models.cli", "eval", str(out), "--json", "--device", "cuda"],
                        capture_output=True, text=True, timeout=600)
    assert ev.returncode == 0, ev.stderr
    return {"wall_s": dt, "device": meta.device, "world_size": meta.world_size,
            "K_bits": meta.recorded.K_bits if meta.recorded else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="training iterations per device (default 300)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: needs a CUDA GPU; torch.cuda.is_available() is False on this machine (nothing run)")
        return 0
    torch.set_num_threads(1)
    res: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    cpu_its, cpu_model = _train("cpu", max(20, args.steps // 5))
    gpu_its, gpu_model = _train("cuda", args.steps)
    res["train_its_per_s"] = {"cpu": cpu_its, "cuda": gpu_its, "ratio": gpu_its / cpu_its}
    cpu_sps = _sample(cpu_model, "cpu", 2000)
    gpu_sps = _sample(gpu_model, "cuda")
    res["sample_per_s"] = {"cpu": cpu_sps, "cuda": gpu_sps, "ratio": gpu_sps / cpu_sps}
    res["inpaint"] = {"cpu": _inpaint("cpu"), "cuda": _inpaint("cuda")}
    with tempfile.TemporaryDirectory() as tmp:
        res["torchrun_nccl"] = _torchrun(Path(tmp))
    if args.json:
        print(json.dumps(res))
    else:
        print(f"GPU: {res['gpu']} (torch {res['torch']})")
        t, s = res["train_its_per_s"], res["sample_per_s"]
        print(f"training (swissroll preset): cpu {t['cpu']:.1f} it/s, cuda {t['cuda']:.1f} it/s, ×{t['ratio']:.2f}")
        print(f"sampling: cpu {s['cpu']:.0f} samples/s, cuda {s['cuda']:.0f} samples/s, ×{s['ratio']:.2f}")
        for dev, r in res["inpaint"].items():
            print(f"inpainting 32×32 bark ({dev}): " + ", ".join(f"{k} {v:.2f} s" if isinstance(v, float) else f"{k} {v}"
                                                               for k, v in r.items()))
        tr = res["torchrun_nccl"]
        print(f"torchrun 1 GPU (NCCL): {tr['wall_s']:.1f} s, file records world size {tr['world_size']} on "
              f"{tr['device']}, K = {tr['K_bits']}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
