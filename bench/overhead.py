"""What the trainer and the sampler cost on top of the network they drive, on this machine, in one run.

    python bench/overhead.py [--reps 41] [--block 10] [--json] [--breakdown] [--ops]

Swiss-roll preset (its MLP, T = 40), one CPU thread:

* **training**: the time per step of :meth:`models.training.Trainer.run` (batch 128 × 8 step indices
  per example = 1,024 network evaluations per step: data draw, noise, the K estimate with its edge terms,
  the learned β schedule, backward, clipping, Adam, the weight average) over a bare forward + backward of
  the same network on 1,024 inputs (target ≤ 1.3);
* **sampling**: :func:`models.sampling.sample` of 1,024 points (T − 1 network steps and the fixed last
  step) over the bare loop of T − 1 network forwards on 1,024 inputs (target ≤ 1.1). The sampler
  evaluates the network at one step for all points, with the step's bump-basis rows folded into the
  weights (:meth:`models.networks.MLPNet.at_step`, the same function up to rounding), which is cheaper
  than the bare loop's general call; ``--breakdown`` also times it with the network called as the bare
  loop calls it, the sampler's own overhead.

The machine may be loaded by other work: each repetition times a block of the measured loop and a
block of its bare counterpart back to back (A/B, in alternating order), and the ratio reported is the
median of the per-repetition ratios, so load that changes slowly cancels in it. Prints every figure;
``--json``: one object with ``train_ratio`` and ``sample_ratio`` (and the medians behind them).
``--breakdown`` then splits a training step into the bare network pass, the rest of the estimate of K
with its gradient (the schedule, the per-step coefficients, the KL terms, the edge terms), the data draw,
and the update (gradient norm and clipping, Adam, the weight average), each a median over ``--reps``
blocks, as fractions of the bare pass. ``--ops`` counts what each costs in operations (machine-independent):
the ATen operations dispatched (views apart) and the autograd nodes of the graph, for the bare pass, the
estimate of K with its gradient, a whole training step, and the sampler's and the bare loop's per step.

Where the time goes (this project's notes, issue 15): on this network every operation outside the network
is on [1024, 2]-sized tensors or smaller, so it costs its dispatch, not its arithmetic: ~2 µs in a tight
loop of one operation, but 10–15 µs in a training step's mix of many different ones (instruction-cache
and branch misses in the dispatcher: callgrind counts a step at only ~1.4× the bare pass's instructions
while it takes ~2× its time). Hand-fused autograd Functions for the step's KL, the learned schedule's
table and the edge terms were tried and measured no faster (a Python Function's own cost, ~10 µs
forward and ~20 µs backward, eats what the nodes it replaces cost).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from models.model import DiffusionModel
from models.presets import PRESETS, load_data
from models.runtime import make_generator
from models.sampling import sample
from models.training import Trainer

TRAIN_TARGET = 1.3
SAMPLE_TARGET = 1.1


def _timed(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def _breakdown(trainer: Trainer, bare_train, trainer_step, reps: int, block: int) -> tuple[dict, list[str]]:
    """Medians (ms) of a training step, its data draw, and its loss forward + backward, beside the bare pass;
    and the lines that print them."""
    batch = trainer.config.batch_size
    x0 = trainer.data.sample_train(batch, trainer.data_generator)
    params = list(trainer.model.parameters())

    def data_draw():
        trainer.data.sample_train(batch, trainer.data_generator)

    def loss_and_gradient():
        for p in params:
            p.grad = None
        trainer.loss_module(x0, trainer.generator)[0].backward()

    parts = {"bare": bare_train, "data": data_draw, "loss": loss_and_gradient, "step": trainer_step}
    times: dict[str, list[float]] = {name: [] for name in parts}
    for rep in range(reps):
        for name in (list(parts) if rep % 2 == 0 else list(parts)[::-1]):
            times[name].append(_timed(parts[name], block))
    ms = {name: statistics.median(v) * 1e3 for name, v in times.items()}
    out = dict(breakdown_bare_ms=ms["bare"], breakdown_K_rest_ms=ms["loss"] - ms["bare"], breakdown_data_ms=ms["data"],
               breakdown_update_ms=ms["step"] - ms["loss"] - ms["data"], breakdown_step_ms=ms["step"])
    b = ms["bare"]
    lines = [f"a training step, {ms['step']:.2f} ms = {ms['step'] / b:.2f} × the bare pass {b:.2f} ms:"]
    for label, key in (("the rest of the estimate of K and its gradient", "breakdown_K_rest_ms"),
                       ("the data draw", "breakdown_data_ms"),
                       ("norm, clipping, Adam, weight average (and the loop)", "breakdown_update_ms")):
        lines.append(f"  {label:52s} {out[key]:6.2f} ms  ({out[key] / b:.2f} × bare)")
    return out, lines


def _op_counts(fn) -> int:
    """ATen operations ``fn()`` dispatches, views apart."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not func.is_view:
                _Count.n += 1
            return func(*args, **(kwargs or {}))

    with _Count():
        fn()
    return _Count.n


def _graph_nodes(t: torch.Tensor) -> int:
    """Autograd nodes behind ``t``."""
    seen, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        todo.extend(nxt for nxt, _ in node.next_functions)
    return len(seen)


def _ops(trainer: Trainer, net, x, k, sampler_model, n_eval: int, T: int, g) -> tuple[dict, list[str]]:
    x0 = trainer.data.sample_train(trainer.config.batch_size, trainer.data_generator)
    loss = trainer.loss_module(x0, trainer.generator)[0]
    bare_out = net(x, k).sum()
    out = dict(ops_bare_pass=_op_counts(lambda: net(x, k).sum().backward()),
               ops_K_estimate=_op_counts(lambda: trainer.loss_module(x0, trainer.generator)[0].backward()),
               nodes_bare_pass=_graph_nodes(bare_out), nodes_K_estimate=_graph_nodes(loss))
    run = trainer.run(ticks=True)
    next(run)
    out["ops_training_step"] = _op_counts(lambda: next(run))
    with torch.no_grad():
        out["ops_bare_sample_step"] = _op_counts(lambda: net(x, k)[:, 0])
    out["ops_sample_step"] = (_op_counts(lambda: sample(sampler_model, n_eval, generator=g)) - 1) / (T - 1)
    lines = [f"operations (ATen, views apart): bare pass {out['ops_bare_pass']}, estimate of K with its gradient "
             f"{out['ops_K_estimate']}, training step {out['ops_training_step']}; autograd nodes: bare "
             f"{out['nodes_bare_pass']}, estimate of K {out['nodes_K_estimate']}",
             f"operations per sampler step {out['ops_sample_step']:.1f} (bare loop {out['ops_bare_sample_step']})"]
    return out, lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=41, help="A/B repetitions (default 41)")
    ap.add_argument("--block", type=int, default=10, help="training steps per timed block (default 10)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--breakdown", action="store_true", help="then split a training step into its parts")
    ap.add_argument("--ops", action="store_true", help="then count the operations and autograd nodes of each")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)

    preset = PRESETS["swissroll"]
    data = load_data(preset="swissroll")
    tc = preset.train.__class__(**{**preset.train.__dict__, "steps": None, "seconds": None, "report_every": 10**9,
                                   "n_eval": 256, "n_samples": 0})
    n_eval = tc.batch_size * tc.steps_per_example  # network evaluations per training step
    model = DiffusionModel(preset.model)
    trainer = Trainer(model, data, tc, device="cpu")
    run = trainer.run(ticks=True)  # yields None after every update

    net = DiffusionModel(preset.model).net
    g = make_generator("cpu", 1)
    x = torch.randn(n_eval, *preset.model.example_shape, generator=g)
    k = torch.randint(1, preset.model.T, (n_eval,), generator=g)

    def bare_train():
        net.zero_grad(set_to_none=True)
        net(x, k).sum().backward()

    def trainer_step():
        next(run)

    sampler_model = trainer.model  # the same network, in evaluation
    T = preset.model.T
    ks = [torch.full((n_eval,), kk, dtype=torch.long) for kk in range(T - 1, 0, -1)]

    @torch.no_grad()
    def bare_sample():
        h = x
        for kk in ks:
            h = net(h, kk)[:, 0]

    def sampler():
        sample(sampler_model, n_eval, generator=g)

    for _ in range(3):  # warm-up
        trainer_step(), bare_train(), bare_sample(), sampler()

    tr, tb, sr, sb, ratios_t, ratios_s = [], [], [], [], [], []
    for rep in range(args.reps):
        pair = [(trainer_step, tr), (bare_train, tb)]
        for fn, out in (pair if rep % 2 == 0 else pair[::-1]):
            out.append(_timed(fn, args.block))
        ratios_t.append(tr[-1] / tb[-1])
        pair = [(sampler, sr), (bare_sample, sb)]
        for fn, out in (pair if rep % 2 == 0 else pair[::-1]):
            out.append(_timed(fn, 1))
        ratios_s.append(sr[-1] / sb[-1])
        if not args.json:
            print(f"rep {rep:3d}  train {tr[-1] * 1e3:7.2f} ms / bare {tb[-1] * 1e3:7.2f} ms = {ratios_t[-1]:.3f}   "
                  f"sample {sr[-1] * 1e3:7.2f} ms / bare {sb[-1] * 1e3:7.2f} ms = {ratios_s[-1]:.3f}", flush=True)
    res = dict(
        train_ratio=statistics.median(ratios_t), sample_ratio=statistics.median(ratios_s),
        train_step_ms=statistics.median(tr) * 1e3, bare_train_ms=statistics.median(tb) * 1e3,
        sample_ms=statistics.median(sr) * 1e3, bare_sample_ms=statistics.median(sb) * 1e3,
        network_evaluations_per_step=n_eval, T=T, reps=args.reps, block=args.block, threads=torch.get_num_threads(),
        train_target=TRAIN_TARGET, sample_target=SAMPLE_TARGET)
    lines = []
    if args.breakdown:
        parts, lines = _breakdown(trainer, bare_train, trainer_step, args.reps, args.block)
        res.update(parts)
    if args.breakdown:  # the sampler with the network called as the bare loop calls it (no folded step)
        import models.sampling as sampling

        ratios = []
        for rep in range(args.reps):
            sampling.FOLD_STEP = False
            pair = [sampler, bare_sample]
            t = {}
            for fn in (pair if rep % 2 == 0 else pair[::-1]):
                t[fn] = _timed(fn, 1)
            sampling.FOLD_STEP = True
            ratios.append(t[sampler] / t[bare_sample])
        res["sample_ratio_same_network_call"] = statistics.median(ratios)
        lines.append(f"sampling with the network called as the bare loop calls it (no folded step): median ratio "
                     f"{res['sample_ratio_same_network_call']:.3f}")
    if args.ops:
        counts, more = _ops(trainer, net, x, k, sampler_model, n_eval, T, g)
        res.update(counts)
        lines += more
    if args.json:
        print(json.dumps(res))
    else:
        print(f"training: {res['train_step_ms']:.2f} ms per step over a bare forward+backward {res['bare_train_ms']:.2f} ms "
              f"({n_eval} evaluations): median ratio {res['train_ratio']:.3f} (target ≤ {TRAIN_TARGET})")
        print(f"sampling: {res['sample_ms']:.2f} ms per {n_eval} samples over the bare loop {res['bare_sample_ms']:.2f} ms "
              f"({T - 1} network steps): median ratio {res['sample_ratio']:.3f} (target ≤ {SAMPLE_TARGET})")
        for line in lines:
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
