"""Background jobs. Each iterates a :mod:`models` generator in a thread and hands plain results (typed
records, contiguous float32 numpy arrays) to the GUI thread through queued signals. Widgets are never
touched here, and no job hooks into a model.

* :class:`TrainWorker` iterates ``Trainer(...).run(ticks=True)``: the trainer yields after every update,
  and those yields are the pause, stop and snapshot points (a Stop lands within one training step, or
  one report's evaluation). Pausing is not calling ``next``; the trainer does not count that time.
* :class:`TrajectoryWorker` iterates ``forward_steps`` / ``reverse_steps``, caching every kept x^t
  as float32 ``[S, N, *shape]``; the part computed so far is handed over as it grows (the first frame
  at once), so the view can play it while the rest is computed. A reverse run of images or binary
  data whose N examples would take long is computed in two passes: first every step for the few
  examples that fit in about ``FIRST_PASS_S`` (sized from the measured time per step), then the rest.
* :func:`run_task` runs a plain function (loading a file or a preset) in Qt's thread pool.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PySide6.QtCore import QThread, QTimer, Signal
from superqt.utils import create_worker

from models.model import DiffusionModel
from models.sampling import forward_steps, reverse_steps
from models.training import TrainConfig, Trainer, snapshot

from .state import Trajectory

STREAM_EVERY_S = 0.25  # hand over the growing trajectory this often
FIRST_PASS_S = 2.0  # a reverse run expected to take longer computes a first pass of this many seconds
SPLIT_KINDS = ("images", "binary")  # kinds whose reverse run may be split (a grid or raster of examples)
PENDING_FILL = 0.9  # display value of the examples a first pass leaves for later (a light grey tile / row)
SPLIT_GAIN = 0.5  # split only if a first-pass step is predicted to take at most this share of a full one
PROBE_STEPS = (3, 8, 0.15)  # time per step: at least 3 and at most 8 steps, ≥ 0.15 s, after one warm-up step


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run leaves behind, for saving and resuming."""

    message: str
    iteration: int
    history: dict
    optimizer_state: dict | None
    stopped: bool


def copy_model(model: DiffusionModel) -> DiffusionModel:
    """An independent CPU copy of ``model`` (weights and schedule), in eval mode."""
    m = DiffusionModel(model.config)
    m.load_state_dict({k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()})
    return m.eval()


class TrainWorker(QThread):
    """Trains ``model`` on ``data`` in its own thread.

    The report interval is calibrated once at the start: ``report_every`` is chosen so that a record
    arrives every ~1 s of training and evaluation takes at most ~20 % of the time (set
    ``calibrate=False`` to use ``config.report_every`` as given).
    """

    progress = Signal(object)  # TrainProgress
    snapshot_ready = Signal(object, object)  # DiffusionModel (CPU copy of the evaluation weights), history copy
    done = Signal(object)  # TrainResult
    failed = Signal(str)

    def __init__(self, model: DiffusionModel, data, config: TrainConfig, *, device: str = "cpu",
                 history: dict | None = None, optimizer_state: dict | None = None, iteration: int = 0,
                 calibrate: bool = True, target_interval_s: float = 1.0, parent=None):
        super().__init__(parent)
        self.model = model
        self.data = data
        self.config = config
        self.device = device
        self.history = history
        self.optimizer_state = optimizer_state
        self.iteration = iteration
        self.calibrate = calibrate
        self.target_interval_s = target_interval_s
        self.trainer: Trainer | None = None
        self._cond = threading.Condition()
        self._paused = False
        self._stop = threading.Event()
        self._want_snapshot = threading.Event()
        self.paused_seconds = 0.0
        self.wall_start = 0.0
        self.its_at_start = iteration

    # ---- control (any thread) -------------------------------------------------------------------
    def pause(self) -> None:
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def stop(self) -> None:
        self._stop.set()
        self.resume()

    @property
    def is_paused(self) -> bool:
        return self._paused

    def request_snapshot(self) -> None:
        """Ask for a copy of the current evaluation weights (delivered by ``snapshot_ready``)."""
        self._want_snapshot.set()

    # ---- the training thread --------------------------------------------------------------------
    def _serve(self) -> bool:
        """At one of the trainer's yields: deliver a snapshot if asked, wait while paused. False once
        Stop was asked for."""
        if self._want_snapshot.is_set() and self.trainer is not None:
            self._want_snapshot.clear()
            self.snapshot_ready.emit(copy_model(self.trainer.eval_model), self.trainer.history_arrays())
        if self._paused and not self._stop.is_set():
            t0 = time.perf_counter()
            with self._cond:
                while self._paused and not self._stop.is_set():
                    self._cond.wait(0.05)
            self.paused_seconds += time.perf_counter() - t0
        return not self._stop.is_set()

    def _calibrated(self, trainer: Trainer) -> TrainConfig:
        c = trainer.config
        for _ in range(2):  # warm-up: the first updates pay for lazy initialisation
            trainer.step()
        t0 = time.perf_counter()
        n = 0
        while n < 2 or (time.perf_counter() - t0 < 0.25 and n < 20):
            trainer.step()
            n += 1
        t_step = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        trainer.snapshot(with_samples=False)
        t_eval = time.perf_counter() - t0
        interval = max(self.target_interval_s, 4.0 * t_eval)
        every = int(min(max(round(interval / max(t_step, 1e-6)), 1), 5000))
        return dataclasses.replace(c, report_every=every)

    def run(self) -> None:  # noqa: D401 - QThread entry point
        trainer = None
        last_message = "finished"
        stopped = False
        try:
            self.wall_start = time.perf_counter()
            trainer = Trainer(self.model, self.data, self.config, device=self.device, history=self.history,
                              optimizer_state=self.optimizer_state, iteration=self.iteration)
            self.trainer = trainer
            self.its_at_start = trainer.iteration
            if self.calibrate and not self._stop.is_set():
                trainer.config = self._calibrated(trainer)
            run = trainer.run(ticks=True)
            try:
                for p in run:
                    if p is not None:
                        self.progress.emit(p)
                        if p.done:
                            last_message = p.message or last_message
                            break
                    if not self._serve():
                        stopped = True
                        last_message = "stopped"
                        break
            finally:
                run.close()
            if stopped and trainer.ema_model is not None:
                # as Trainer.run does at its end: the result is the averaged model
                trainer.model.load_state_dict(trainer.ema_model.state_dict())
        except Exception as e:  # noqa: BLE001 - reported to the user, the app keeps running
            self.failed.emit(f"training failed: {type(e).__name__}: {e}")
            last_message = "failed"
        finally:
            self.model.eval()
        if trainer is not None:
            self.done.emit(TrainResult(message=last_message, iteration=trainer.iteration,
                                       history=trainer.history_arrays(),
                                       optimizer_state=trainer.optimizer.state_dict(), stopped=stopped))
        else:
            self.done.emit(TrainResult(message=last_message, iteration=self.iteration, history=self.history or {},
                                       optimizer_state=self.optimizer_state, stopped=stopped))

    def active_its_per_s(self) -> float:
        """Iterations per second of wall time since the start, pauses excluded."""
        if self.trainer is None or not self.wall_start:
            return float("nan")
        dt = time.perf_counter() - self.wall_start - self.paused_seconds
        return (self.trainer.iteration - self.its_at_start) / max(dt, 1e-9)


@dataclass(frozen=True)
class TrajectoryRequest:
    """What to compute. ``model`` is used read-only (give a copy while training runs).

    x0: [N, *S] normalised data for the forward run (None: no forward run); n: reverse samples;
    display: normalised → display space (binary/images; None keeps values); max_frames and max_bytes
    bound the cache (every stride-th t is kept, always t = 0 and t = T); drift_grid: G for a G×G grid
    of reverse drifts on [−extent, extent]² (2-D points only; 0 = none). first_pass: for images and
    binary data, the reverse run first computes every step for this many examples (seed ``seed``), then
    the other n − first_pass (seed ``seed + 1``); None sizes it so that the first pass takes about
    ``first_pass_s`` (:func:`first_pass_size`), and a run that fits in that time is one pass."""

    model: DiffusionModel
    kind: str
    directions: tuple[str, ...] = ("reverse", "forward")
    x0: torch.Tensor | None = None
    n: int = 2000
    display: Callable | None = None
    max_frames: int = 401
    max_bytes: int = 48 * 1024**2
    seed: int = 0
    drift_grid: int = 0
    extent: float = 3.2
    source: str = ""
    first_pass: int | None = None  # reverse examples of the first pass (None: sized from the step time; ≥ n: one pass)
    first_pass_s: float = FIRST_PASS_S


def kept_times(T: int, per_frame_bytes: int, max_frames: int, max_bytes: int) -> list[int]:
    """Paper times t kept in a cache: every stride-th, plus 0 and T."""
    limit = max(2, min(max_frames, max_bytes // max(per_frame_bytes, 1)))
    stride = max(1, math.ceil((T + 1) / limit))
    return sorted({t for t in range(0, T + 1, stride)} | {0, T})


def first_pass_size(n: int, T: int, step_s: float, budget_s: float, n_small: int, small_s: float) -> int:
    """Examples in the first pass of a reverse run of ``n`` examples over ``T`` steps, from the measured
    time per step with all n (``step_s``) and with ``n_small`` examples (``small_s``): the cost per step
    is fitted as a + b·m for m examples, and the first pass gets the largest power of two m < n whose T
    steps are predicted to fit in ``budget_s`` (at least 1). n (one pass) when all n fit, or when a
    step of m examples would not take at most SPLIT_GAIN of a full one (a small network's step costs
    about the same whatever the batch: a first pass would only delay the rest)."""
    n = int(n)
    if n <= 1 or step_s * T <= budget_s:
        return max(n, 1)
    b = max(0.0, (step_s - small_s) / (n - n_small)) if n > n_small else 0.0
    a = max(0.0, small_s - b * n_small)
    m = 1
    while m * 2 < n and (a + b * m * 2) * T <= budget_s:
        m *= 2
    return m if a + b * m <= SPLIT_GAIN * step_s else n


class TrajectoryWorker(QThread):
    """Computes the requested trajectories. ``partial`` hands over the frames computed so far (the
    first at once, then every ~0.25 s): a :class:`Trajectory` viewing the rows already written (the
    thread only writes rows not yet handed over) and the fraction done; ``trajectory_ready`` hands
    over each complete one."""

    trajectory_ready = Signal(object)  # Trajectory
    partial = Signal(object, float)  # Trajectory so far, fraction of the work done
    progress = Signal(str, float)  # direction, fraction done
    first_pass_done = Signal()  # every step of the reverse run's first pass (or of its only pass) is in
    failed = Signal(str)

    def __init__(self, request: TrajectoryRequest, parent=None, stream_every_s: float = STREAM_EVERY_S):
        super().__init__(parent)
        self.request = request
        self.stream_every_s = stream_every_s
        self._cancel = threading.Event()
        self.first_pass_complete = False  # set (in the thread) just before first_pass_done
        self.first_pass_n: int | None = None  # examples in the reverse run's first pass, once chosen
        self.step_s = float("nan")  # measured seconds per reverse step at the full batch (when sized)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        r = self.request
        try:
            with torch.no_grad():
                rest = None  # the reverse run's second pass, when it was split
                for direction in r.directions:
                    if direction == "forward" and r.x0 is None:
                        continue
                    if direction == "reverse":
                        out = self._reverse_first()
                        if out is None:
                            return
                        traj, rest = out
                        self._first_done()
                        if rest is None:
                            self.trajectory_ready.emit(traj)
                        continue
                    traj = self._compute(direction)
                    if traj is None:
                        return
                    self.trajectory_ready.emit(traj)
                if rest is not None:
                    traj = self._reverse_rest(*rest)
                    if traj is None:
                        return
                    self.trajectory_ready.emit(traj)
        except Exception as e:  # noqa: BLE001
            if not self.cancelled:
                self.failed.emit(f"trajectory failed: {type(e).__name__}: {e}")
        finally:
            self._first_done()  # an evaluation waiting for the first pass never waits for a failed run

    def _first_done(self) -> None:
        if not self.first_pass_complete:
            self.first_pass_complete = True
            self.first_pass_done.emit()

    def _view(self, direction: str, frames: np.ndarray, ts: list[int], lo: int, hi: int,
              n_ready: int | None = None) -> Trajectory:
        """The rows lo..hi (inclusive) as a trajectory sharing ``frames``' memory."""
        r = self.request
        return Trajectory(direction=direction, frames=frames[lo:hi + 1], t=np.asarray(ts[lo:hi + 1], dtype=np.int64),
                          kind=r.kind, space="normalised" if r.display is None else "display", source=r.source,
                          n_ready=n_ready)

    def _steps(self, direction: str, n: int, seed: int):
        m = self.request.model
        if direction == "forward":
            return forward_steps(m, self.request.x0, generator=torch.Generator(device=m.device).manual_seed(seed + 1))
        return reverse_steps(m, n, generator=torch.Generator(device=m.device).manual_seed(seed))

    def _kept(self, n: int) -> list[int]:
        r = self.request
        per_frame = n * int(np.prod(r.model.config.example_shape)) * 4
        return kept_times(r.model.T, per_frame, r.max_frames, r.max_bytes)

    def _store(self, x: torch.Tensor) -> np.ndarray:
        r = self.request
        x = x.detach().to("cpu", torch.float32).numpy()
        return r.display(x) if r.display is not None else x

    def _probe(self, n: int, seed: int | None = None):
        """Start the reverse run of ``n`` examples and time its steps (PROBE_STEPS). Returns the run,
        the steps taken so far and the seconds per step (None if cancelled)."""
        steps = self._steps("reverse", n, self.request.seed if seed is None else seed)
        taken = [next(steps), next(steps)]  # x^T and one warm-up step (lazy initialisation)
        lo, hi, min_s = PROBE_STEPS
        t0 = time.perf_counter()
        while len(taken) < 2 + hi and taken[-1].t > 0:
            if self.cancelled:
                return None
            taken.append(next(steps))
            k = len(taken) - 2
            if k >= lo and time.perf_counter() - t0 >= min_s:
                break
        return steps, taken, (time.perf_counter() - t0) / (len(taken) - 2)

    def _reverse_first(self):
        """The reverse run's first pass: every step for ``first_pass`` examples (all n when one pass
        fits). Returns (trajectory, rest): rest is None for a single pass, else what
        :meth:`_reverse_rest` needs; None when cancelled."""
        r = self.request
        n, T = int(r.n), r.model.T
        head = None
        n1 = n if r.kind not in SPLIT_KINDS else (n if r.first_pass is None else max(1, min(int(r.first_pass), n)))
        if r.first_pass is None and r.kind in SPLIT_KINDS and n > 1 and T > 8:
            probe = self._probe(n)
            if probe is None:
                return None
            steps, taken, self.step_s = probe
            n1 = n
            if self.step_s * T > r.first_pass_s:  # too slow for one pass: time a small batch too
                n_small = max(1, n // 8)
                small = self._probe(n_small, seed=r.seed + 2)
                if small is None:
                    return None
                n1 = first_pass_size(n, T, self.step_s, r.first_pass_s, n_small, small[2])
            if n1 == n:  # one pass: carry on with the run that was timed
                head = (steps, taken)
        self.first_pass_n = n1
        ts = self._kept(n)
        frames = np.empty((len(ts), n, *r.model.config.example_shape), dtype=np.float32)
        if n1 < n:
            frames[:, n1:] = PENDING_FILL if r.display is not None else np.nan
        steps = self._steps("reverse", n1, r.seed) if head is None else itertools.chain(head[1], head[0])
        got = self._run("reverse", steps, frames, ts, n1, n)
        if got is None:
            return None
        if n1 == n:
            traj = self._finish("reverse", frames, ts)
            return None if traj is None else (traj, None)
        view = self._view("reverse", frames, ts, 0, len(ts) - 1, n_ready=n1)
        self.partial.emit(view, n1 / n)
        self.progress.emit("reverse", n1 / n)
        return view, (frames, ts, n1)

    def _reverse_rest(self, frames: np.ndarray, ts: list[int], n1: int) -> Trajectory | None:
        """The second pass: the other n − n1 examples (seed + 1), shown only once complete (what the
        user is looking at does not change meanwhile); the result holds all n."""
        r = self.request
        n = frames.shape[1]
        rest = np.empty((len(ts), n - n1, *frames.shape[2:]), dtype=np.float32)
        if self._run("reverse", self._steps("reverse", n - n1, r.seed + 1), rest, ts, n - n1, n, stream=False,
                     offset=n1) is None:
            return None
        full = np.concatenate([frames[:, :n1], rest], axis=1)
        return self._finish("reverse", full, ts)

    def _run(self, direction: str, steps, frames: np.ndarray, ts: list[int], m: int, n: int, *,
             stream: bool = True, offset: int = 0) -> bool | None:
        """Write the kept states of ``steps`` (m examples) into ``frames[:, :m]`` and hand over the part
        computed so far (``stream``). ``offset``: examples computed before (progress counts m of n).
        None when cancelled."""
        T = self.request.model.T
        index = {t: i for i, t in enumerate(ts)}
        done = 0
        lo = hi = None  # rows written so far (reverse fills from the top, forward from the bottom)
        last_emit = 0.0
        every = max(1, (T + 1) // 50)
        n_ready = m if m < n else None
        for st in steps:
            if self.cancelled:
                return None
            i = index.get(st.t)
            if i is not None:
                frames[i, :m] = self._store(st.x)
                lo = i if lo is None else min(lo, i)
                hi = i if hi is None else max(hi, i)
                now = time.perf_counter()
                if stream and done < T and (last_emit == 0.0 or now - last_emit >= self.stream_every_s):
                    last_emit = now
                    self.partial.emit(self._view(direction, frames, ts, lo, hi, n_ready), done * m / ((T + 1) * n))
            done += 1
            if done % every == 0:
                self.progress.emit(direction, (offset * (T + 1) + done * m) / ((T + 1) * n))
        return not self.cancelled

    def _compute(self, direction: str) -> Trajectory | None:
        """A whole run of ``direction`` in one pass (the forward run)."""
        r = self.request
        n = int(r.x0.shape[0]) if direction == "forward" else int(r.n)
        ts = self._kept(n)
        frames = np.empty((len(ts), n, *r.model.config.example_shape), dtype=np.float32)
        if self._run(direction, self._steps(direction, n, r.seed), frames, ts, n, n) is None:
            return None
        return self._finish(direction, frames, ts)

    def _finish(self, direction: str, frames: np.ndarray, ts: list[int]) -> Trajectory | None:
        """The complete trajectory, with the reverse drift field for 2-D points."""
        r = self.request
        m = r.model
        shape = tuple(m.config.example_shape)
        drift = grid = None
        if r.drift_grid and r.kind == "points" and shape == (2,):
            G = int(r.drift_grid)
            u = np.linspace(-r.extent, r.extent, G, dtype=np.float32)
            gx, gy = np.meshgrid(u, u)
            grid = np.ascontiguousarray(np.stack([gx.ravel(), gy.ravel()], axis=1))  # [G·G, 2]
            xg = torch.from_numpy(grid).to(m.device)
            s = m.schedule_tensors()
            drift = np.full((len(ts), G * G, 2), np.nan, dtype=np.float32)
            for i, t in enumerate(ts):
                if self.cancelled:
                    return None
                if t >= 1:
                    dist = m.reverse_step(xg, t - 1, s)
                    drift[i] = (dist.mean - xg).to("cpu", torch.float32).numpy()
        self.progress.emit(direction, 1.0)
        return Trajectory(direction=direction, frames=np.ascontiguousarray(frames), t=np.asarray(ts, dtype=np.int64),
                          kind=r.kind, space="normalised" if r.display is None else "display", drift=drift,
                          drift_grid=grid, source=r.source)


def evaluate_model(model: DiffusionModel, data, config: TrainConfig) -> dict:
    """One live-K evaluation of ``model`` on ``data``, as the Trainer reports it while training
    (held-out K — unbiased, :func:`models.evaluation.live_K` —, per-step KL terms, entropy bounds, the
    model's reverse entropy, and fixed-seed samples when ``config.n_samples`` > 0). Runs on a copy;
    meant for a worker thread. Returns a dict of Trainer.snapshot's fields."""
    m = copy_model(model)  # no optimiser, no Trainer: constructing torch's Adam imports torch._dynamo (1–3 s)
    snap = snapshot(m, data.heldout(config.n_eval).to(m.device), data, config, with_samples=config.n_samples > 0)
    ev = snap.evaluation
    return dict(K_heldout_bits=ev.K_bits, K_heldout_stderr_bits=ev.K_stderr_bits,
                K_minus_Lnull_bits=ev.K_minus_Lnull_bits, kl_bits_per_step=ev.kl_bits_per_step,
                entropy_lower=snap.entropy_lower, entropy_upper=snap.entropy_upper,
                reverse_entropy=snap.reverse_entropy, samples=snap.samples, beta=snap.beta,
                alpha_bar=snap.alpha_bar, unbiased=ev.method in ("live", "exact"), n_eval=ev.n)


_LIVE_TASKS: set = set()


def run_task(fn: Callable, *args, on_result: Callable | None = None, on_error: Callable | None = None, **kwargs):
    """Run ``fn(*args, **kwargs)`` in Qt's global thread pool (superqt FunctionWorker); ``on_result``
    and ``on_error`` (given the exception) are called on the GUI thread. Returns the worker."""
    connect = {}
    if on_result is not None:
        connect["returned"] = on_result
    if on_error is not None:
        connect["errored"] = on_error
    worker = create_worker(fn, *args, _start_thread=False, _connect=connect or None,
                           _ignore_errors=on_error is None, **kwargs)
    _LIVE_TASKS.add(worker)  # keep the Python object (and its signals) alive until the task ends
    worker.finished.connect(lambda: _release_task(worker))
    worker.start()
    return worker


def _release_task(worker) -> None:
    """A task ended: forget its worker. The slots connected to it (this one holds the worker; the
    caller's hold their own closures) are held through Qt, a cycle Python's gc cannot see, so they are
    disconnected once the finished signal has reached every slot."""
    _LIVE_TASKS.discard(worker)
    # what the task was given is dropped now: PySide can keep a finished worker object alive from C++
    # (seen intermittently, with no Python referrer), and it must not keep a model or a data set with it
    worker._func, worker._args, worker._kwargs = None, (), {}

    def disconnect():
        with warnings.catch_warnings():  # PySide warns for a signal with nothing connected
            warnings.simplefilter("ignore", RuntimeWarning)
            for sig in ("returned", "errored", "finished"):
                try:
                    getattr(worker, sig).disconnect()
                except (RuntimeError, TypeError):  # nothing connected, or the signals object is gone
                    pass

    QTimer.singleShot(0, disconnect)


def wait_for_tasks(timeout_ms: int = 5000) -> bool:
    """Wait for every :func:`run_task` job to finish (at shutdown)."""
    from PySide6.QtCore import QThreadPool

    return QThreadPool.globalInstance().waitForDone(timeout_ms)
