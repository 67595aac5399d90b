"""The first trajectory a user sees: a reverse run of images (or binary data) that would take long is
computed in two passes, every step for the first few examples first (sized from the measured time per
step), then the others, which are shown only once complete; the evaluation waits for the first pass."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from explorer_helpers import tiny_image_model

from models.config import ModelConfig
from models.model import DiffusionModel

pytestmark = pytest.mark.usefixtures("one_thread")


def image_model(T=12):
    return tiny_image_model(T, side=6)


def display(x):
    return np.clip(0.5 + 0.25 * np.asarray(x, dtype=np.float32), 0.0, 1.0)


def run_worker(request):
    """Run a TrajectoryWorker in this thread; returns the events in order: ("partial", traj, fraction),
    ("first",), ("ready", traj)."""
    from explorer.workers import TrajectoryWorker

    w = TrajectoryWorker(request, stream_every_s=0.0)
    events = []
    w.partial.connect(lambda traj, frac: events.append(("partial", traj, frac)))
    w.first_pass_done.connect(lambda: events.append(("first",)))
    w.trajectory_ready.connect(lambda traj: events.append(("ready", traj)))
    w.run()  # the signals are delivered directly
    return w, events


def test_first_pass_size_fits_the_budget():
    from explorer.workers import first_pass_size

    # (n, T, seconds per step with n, budget, n_small, seconds per step with n_small)
    assert first_pass_size(16, 500, 0.001, 2.0, 2, 0.0005) == 16  # 0.5 s for all: one pass
    assert first_pass_size(16, 500, 0.020, 2.0, 2, 0.0025) == 2  # linear cost: 2 examples take 1.25 s
    assert first_pass_size(16, 500, 0.010, 2.0, 2, 0.00125) == 4  # 4 take 1.25 s, 8 would take 2.5 s
    assert first_pass_size(16, 500, 0.040, 2.0, 2, 0.0050) == 1  # even one example is over the budget
    assert first_pass_size(16, 500, 0.010, 2.0, 2, 0.004) == 2  # a third of a step is fixed: 4 would take 2.4 s
    assert first_pass_size(16, 500, 0.010, 2.0, 2, 0.0055) == 16  # one example would take 52 % of a full step
    assert first_pass_size(64, 2000, 0.003, 2.0, 8, 0.0026) == 64  # a step costs the same whatever the batch
    assert first_pass_size(1, 500, 1.0, 2.0, 1, 1.0) == 1
    for n in (3, 6, 16, 64):  # always 1 ≤ m ≤ n
        for step in (1e-5, 1e-3, 0.1):
            for small in (0.0, step / 4, step, 2 * step):
                assert 1 <= first_pass_size(n, 1000, step, 2.0, max(1, n // 8), small) <= n


def test_reverse_run_in_two_passes():
    from explorer.workers import PENDING_FILL, TrajectoryRequest

    model = image_model(T=12)
    w, events = run_worker(TrajectoryRequest(model=model, kind="images", directions=("reverse",), n=6,
                                             display=display, first_pass=2))
    kinds = [e[0] for e in events]
    assert kinds.count("first") == 1 and kinds.count("ready") == 1 and kinds[-1] == "ready"
    assert kinds.index("first") < kinds.index("ready") and w.first_pass_n == 2
    final = events[-1][1]
    assert final.n_ready is None and final.frames.shape == (13, 6, 1, 6, 6) and list(final.t) == list(range(13))
    # the first pass: every partial holds the first two examples, growing from t = T down to t = 0
    parts = [(traj, frac) for k, traj, frac in (e for e in events if e[0] == "partial")]
    assert parts and all(traj.n_ready == 2 for traj, _f in parts)
    whole = [i for i, (traj, _f) in enumerate(parts) if int(traj.t[0]) == 0]
    assert whole, "the first pass reached t = 0"
    first, frac = parts[whole[0]]
    assert whole[0] == len(parts) - 1  # nothing of the second pass is streamed
    assert list(first.t) == list(final.t) and frac == pytest.approx(2 / 6)
    assert events.index(("first",)) > kinds.index("partial")  # first_pass_done after the first pass's frames
    fracs = [f for _t, f in parts]
    assert fracs == sorted(fracs) and max(fracs) < 1.0
    # what the user saw stays: the first two examples are the final ones; the others were placeholders
    np.testing.assert_array_equal(first.frames[:, :2], final.frames[:, :2])
    assert np.all(first.frames[:, 2:] == np.float32(PENDING_FILL))
    assert np.isfinite(final.frames).all() and not np.all(final.frames[:, 2:] == np.float32(PENDING_FILL))
    assert not np.array_equal(final.frames[0, 2:4], final.frames[0, :2])  # the second pass draws its own noise


def test_first_pass_is_sized_from_the_time_per_step(monkeypatch):
    from explorer import workers
    from explorer.workers import TrajectoryRequest

    calls = []

    def sizing(n, T, step_s, budget_s, n_small, small_s):
        calls.append((n, T, step_s, budget_s, n_small, small_s))
        return 1

    monkeypatch.setattr(workers, "first_pass_size", sizing)
    model = image_model(T=12)
    req = dict(model=model, kind="images", directions=("reverse",), n=8, display=display)
    w, events = run_worker(TrajectoryRequest(**req, first_pass_s=0.0))  # no time at all: timed, then split
    assert len(calls) == 1 and w.first_pass_n == 1
    n, T, step_s, budget_s, n_small, small_s = calls[0]
    assert (n, T, budget_s, n_small) == (8, 12, 0.0, 1) and step_s > 0 and small_s > 0 and step_s == w.step_s
    assert events[-1][0] == "ready" and events[-1][1].frames.shape[1] == 8 and events[-1][1].n_ready is None
    calls.clear()
    w, events = run_worker(TrajectoryRequest(**req, first_pass_s=1e9))  # plenty of time: one pass
    assert w.first_pass_n == 8 and not calls  # the small batch is timed only when one pass is too slow
    parts = [e[1] for e in events if e[0] == "partial"]
    assert parts and all(traj.n_ready is None for traj in parts)
    assert [e[0] for e in events].count("ready") == 1
    assert int(parts[0].t[0]) == 12  # the timed steps are not computed twice: x^T comes first, once
    ts = [int(traj.t[0]) for traj in parts]
    assert ts == sorted(ts, reverse=True)
    # points are never split
    pts = DiffusionModel(ModelConfig(kernel="gaussian", T=12, example_shape=(2,), arch="mlp", hidden=8, layers=1))
    w, events = run_worker(TrajectoryRequest(model=pts.eval(), kind="points", directions=("reverse",), n=50,
                                             first_pass_s=0.0))
    assert w.first_pass_n == 50 and all(e[1].n_ready is None for e in events if e[0] == "partial")


def test_the_state_shows_every_step_of_the_first_examples_before_the_rest(qtbot, qapp, monkeypatch, tmp_path):
    """Through the controller: the first trajectory that reaches t = 0 is the first pass (4 of 16
    examples, still incomplete, no samples taken from it); the complete one keeps those examples; the
    evaluation starts only once the first pass is in."""
    from explorer import workers
    from explorer.controller import Controller
    from explorer.session import Session
    from explorer.state import AppState
    from models.data import load_file

    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 256, (60, 1, 6, 6)).astype(np.uint8))
    data = load_file(tmp_path / "x.npy")
    monkeypatch.setattr(workers, "first_pass_size", lambda n, *a, **k: 4)
    import functools

    import explorer.controller as controller_module
    # no time for one pass: the steps are timed and the (patched) sizing says 4
    monkeypatch.setattr(controller_module, "TrajectoryRequest",
                        functools.partial(workers.TrajectoryRequest, first_pass_s=0.0))
    started = []
    real_eval = workers.evaluate_model

    def evaluate(*a, **k):  # the worker's first pass is in by the time the evaluation starts
        started.append(ctl.traj_worker is None or ctl.traj_worker.first_pass_complete)
        return real_eval(*a, **k)

    monkeypatch.setattr(controller_module, "evaluate_model", evaluate)
    state = AppState()
    ctl = Controller(state)
    seen = []
    state.trajectory_changed.connect(
        lambda d: seen.append((state.trajectories[d], state.trajectory_fraction.get(d, 1.0), state.samples is None))
        if d == "reverse" and d in state.trajectories else None)
    try:
        ctl.apply_session(Session(model=image_model(T=40), data=data, source="data"))
        qtbot.waitUntil(lambda: "reverse" in state.trajectories and not state.incomplete("reverse")
                        and state.evaluation is not None, timeout=60_000)
    finally:
        ctl.shutdown()
    final = state.trajectories["reverse"]
    assert final.n_ready is None and final.frames.shape[1] == 16
    k = next(i for i, (traj, _f, _s) in enumerate(seen) if int(traj.t[0]) == 0)
    first, frac, no_samples = seen[k]
    assert first.n_ready == 4 and frac == pytest.approx(0.25) and no_samples
    np.testing.assert_array_equal(first.frames[:, :4], final.frames[:, :4])
    assert all(traj.n_ready == 4 for traj, _f, _s in seen[:k])  # it grew over the first four examples
    assert state.samples is not None and state.samples.shape[0] == 16  # from the complete trajectory
    assert started == [True]


def test_cancel_after_the_first_pass_shows_its_examples_as_samples(qtbot, qapp, monkeypatch, tmp_path):
    """Cancel once the first pass reached x^0: the Samples panel shows the examples that got there (not
    nothing), and only those."""
    import functools

    import explorer.controller as controller_module
    from explorer import workers
    from explorer.controller import Controller
    from explorer.session import Session
    from explorer.state import AppState
    from models.data import load_file

    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 256, (60, 1, 6, 6)).astype(np.uint8))
    data = load_file(tmp_path / "x.npy")
    monkeypatch.setattr(workers, "first_pass_size", lambda n, *a, **k: 4)
    monkeypatch.setattr(controller_module, "TrajectoryRequest",
                        functools.partial(workers.TrajectoryRequest, first_pass_s=0.0))
    release = threading.Event()
    real_steps = workers.reverse_steps

    def held_second_pass(model, *a, **k):  # the second pass (the other 12 examples) waits to be cancelled
        if (a[0] if a else k.get("n")) == 12:
            release.wait(30)
        yield from real_steps(model, *a, **k)

    monkeypatch.setattr(workers, "reverse_steps", held_second_pass)
    state = AppState()
    ctl = Controller(state)
    try:
        ctl.apply_session(Session(model=image_model(T=40), data=data, source="data"))
        qtbot.waitUntil(lambda: "reverse" in state.trajectories and int(state.trajectories["reverse"].t[0]) == 0
                        and state.streaming("reverse"), timeout=60_000)
        assert state.samples is None  # nothing taken from a trajectory still computing
        ctl.cancel_trajectory()
        release.set()
        traj = state.trajectories["reverse"]
        assert traj.n_ready == 4 and state.incomplete("reverse") and not state.streaming("reverse")
        assert state.samples is not None and state.samples.shape[0] == 4
        assert any("cancelled with 4 of 16 examples complete" in text for _l, text in state.log)
        np.testing.assert_array_equal(state.samples, traj.frames[0, :4])
    finally:
        release.set()
        ctl.shutdown()


def test_a_trajectory_shown_only_when_complete_is_one_pass(qtbot, qapp, tmp_path):
    """The live refresh while training (stream=False) shows only complete trajectories: no first pass."""
    from explorer.controller import Controller
    from explorer.state import AppState
    from models.data import load_file

    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 256, (60, 1, 6, 6)).astype(np.uint8))
    state = AppState()
    ctl = Controller(state)
    try:
        state.set_session(image_model(T=40), load_file(tmp_path / "x.npy"))
        ctl.compute_trajectories(directions=("reverse",), stream=False)
        w = ctl.traj_worker
        assert w.request.first_pass == w.request.n == 16
        qtbot.waitUntil(lambda: "reverse" in state.trajectories, timeout=60_000)
        assert w.first_pass_n == 16 and state.trajectories["reverse"].n_ready is None
    finally:
        ctl.shutdown()
