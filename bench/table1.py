"""Table 1 of Sohl-Dickstein et al. (2015), side by side with ours.

For each preset: train within a stated time budget (``dpm train PRESET --seconds S``), evaluate K exactly
(all T steps) on the preset's held-out set, and print our K and K − L_null next to the paper's, with our
β_1, the β_1 cap on K − L_null and the known ceiling on K (models/README.md, Ceilings: heartbeat −log2 5),
training seconds and iterations. With ``--from-bundled`` the bundled models in resources/models/*.h5 are
evaluated instead of training new ones. Results go to bench/results/table1.json.

    python bench/table1.py --seconds 20 --presets swissroll heartbeat     # a quick check
    python bench/table1.py --device cuda                                   # each preset's own budget
    python bench/table1.py --from-bundled

The numbers are not asserted anywhere: they depend on the time budget and the machine. Our data sets
are the project's own (models/README.md, Presets and data sets), so only the Swiss roll and the heartbeat are the paper's data; the
image rows compare the same family of data, not the same data.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from models.files import atomic_write
from models.cli import main as dpm_main
from models.evaluation import evaluate_model_file
from models.files import load_model
from models.paths import MODELS_DIR
from models.presets import BUNDLED, PRESETS

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "table1.json"


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _row(preset: str, res: dict, meta: dict, source: str) -> dict:
    """One table row from an evaluation result (``dpm eval --json`` fields) and the model's meta."""
    p = PRESETS.get(preset)
    K, se, KL, cap = (_num(res.get(k)) for k in ("K_bits", "K_stderr_bits", "K_minus_Lnull_bits", "cap_bits"))
    ceiling = p.ceiling if p is not None else None
    row = dict(
        preset=preset, source=source, unit=res.get("unit"), n_eval=res.get("n_eval"),
        K_bits=K, K_stderr_bits=se, paper_K=p.paper_K if p else None,
        K_minus_Lnull_bits=KL, paper_K_minus_Lnull=p.paper_K_minus_Lnull if p else None,
        beta_1=_num(res.get("beta_1")), cap_bits=cap, ceiling_bits=ceiling,
        train_seconds=_num(meta.get("train_seconds")), iterations=meta.get("iterations"),
        device=meta.get("device"), T=res.get("T"), note=p.note if p else "",
    )
    # honesty checks (models/README.md, Ceilings): K below a known ceiling (within 3 standard errors), K − L_null below the cap
    tol = 3 * (se or 0.0)
    row["below_ceiling"] = None if ceiling is None or K is None else bool(K <= ceiling + tol)
    row["below_cap"] = None if cap is None or KL is None else bool(KL <= cap + tol)
    return row


def train_and_evaluate(preset: str, seconds: float | None, device: str, workdir: Path, n_eval: int | None,
                       threads: int | None, cifar_dir: str | None) -> dict:
    out = workdir / f"{preset}.h5"
    argv = ["train", preset, "--out", str(out), "--device", device, "--quiet"]
    if seconds is not None:
        argv += ["--seconds", str(seconds)]
    if n_eval is not None:
        argv += ["--n-eval", str(n_eval)]
    if threads:
        argv += ["--threads", str(threads)]
    if cifar_dir:
        argv += ["--cifar-dir", cifar_dir]
    budget = seconds if seconds is not None else PRESETS[preset].train.seconds
    print(f"training {preset} for {budget:g} s on {device} …", file=sys.stderr, flush=True)
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = dpm_main(argv)
    if rc != 0:
        raise RuntimeError(err.getvalue().strip() or f"dpm train {preset} failed ({rc})")
    lm = load_model(out)
    m = lm.meta
    res = {k: m.get(k) for k in ("K_bits", "K_stderr_bits", "K_minus_Lnull_bits", "cap_bits", "beta_1", "unit",
                                  "n_eval")}
    res["T"] = lm.config.T
    row = _row(preset, res, m, "trained")
    row["model"] = str(out)
    return row


def evaluate_bundled(path: Path, device: str, n_eval: int | None) -> dict:
    lm = load_model(path)
    preset = lm.meta.get("data") if lm.meta.get("data") in PRESETS else path.stem
    print(f"evaluating {path} …", file=sys.stderr, flush=True)
    res = evaluate_model_file(str(path), device=device, n=n_eval).to_dict()
    row = _row(preset, res, lm.meta, "bundled")
    row["model"] = str(path)
    return row


def _f(v, digits: int = 3, width: int = 8) -> str:
    if v is None:
        return "—".rjust(width)
    if isinstance(v, bool):
        return ("yes" if v else "NO").rjust(width)
    if isinstance(v, int):
        return str(v).rjust(width)
    return f"{v:.{digits}f}".rjust(width)


def print_table(rows: list[dict]) -> None:
    head = (f"{'preset':<11}{'unit':<11}{'K':>9}{'± s.e.':>8}{'paper K':>9}{'K−Lnull':>9}{'paper':>8}"
            f"{'β_1':>10}{'cap':>8}{'ceiling':>9}{'≤ceil':>6}{'sec':>8}{'iters':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['preset']:<11}error: {r['error']}")
            continue
        print(f"{r['preset']:<11}{(r['unit'] or ''):<11}{_f(r['K_bits'], 3, 9)}{_f(r['K_stderr_bits'], 3)}"
              f"{_f(r['paper_K'], 3, 9)}{_f(r['K_minus_Lnull_bits'], 3, 9)}{_f(r['paper_K_minus_Lnull'], 3)}"
              f"{(format(r['beta_1'], '.3g') if r['beta_1'] is not None else '—'):>10}{_f(r['cap_bits'], 2)}{_f(r['ceiling_bits'], 3, 9)}"
              f"{_f(r['below_ceiling'], 0, 6)}{_f(r['train_seconds'], 0)}{_f(r['iterations'], 0, 9)}")
    print("K, K − L_null: bits in the unit, exact over all T steps on held-out data; cap: the β_1 cap on K − L_null "
          "(models/README.md, Ceilings); ceiling: a known upper limit on K (same section).")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", metavar="NAME", help=f"default: {' '.join(BUNDLED)}")
    ap.add_argument("--seconds", type=float, help="training budget per preset (default: the preset's own)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--from-bundled", action="store_true", help="evaluate resources/models/*.h5 instead of training")
    ap.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="bundled models (with --from-bundled)")
    ap.add_argument("--workdir", type=Path, default=HERE / "results" / "models", help="where trained models go")
    ap.add_argument("--n-eval", type=int, help="held-out examples for K (default: the whole held-out set)")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--cifar-dir", help="CIFAR-10 binary batches (to include cifar10)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    presets = args.presets or list(BUNDLED) + (["cifar10"] if args.cifar_dir else [])
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        ap.error(f"unknown preset(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    rows: list[dict] = []
    t0 = time.perf_counter()
    if args.from_bundled:
        files = sorted(args.models_dir.glob("*.h5"))
        if args.presets:
            files = [f for f in files if f.stem in presets]
        if not files:
            print(f"table1: no bundled models in {args.models_dir}", file=sys.stderr)
            return 2
        for f in files:
            try:
                rows.append(evaluate_bundled(f, args.device, args.n_eval))
            except Exception as e:  # keep going: one broken file must not hide the others
                rows.append(dict(preset=f.stem, source="bundled", model=str(f), error=f"{type(e).__name__}: {e}"))
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        for p in presets:
            try:
                rows.append(train_and_evaluate(p, args.seconds, args.device, args.workdir, args.n_eval, args.threads,
                                               args.cifar_dir))
            except Exception as e:
                rows.append(dict(preset=p, source="trained", error=f"{type(e).__name__}: {e}"))
    print_table(rows)
    report = dict(
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        mode="bundled" if args.from_bundled else "trained", seconds_per_preset=args.seconds,
        torch=torch.__version__, python=platform.python_version(), cuda=torch.cuda.is_available(),
        threads=torch.get_num_threads(), wall_seconds=time.perf_counter() - t0, rows=rows,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=1, allow_nan=False, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
