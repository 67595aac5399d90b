"""Soak test of dpm-explorer: memory growth and event-loop stalls over minutes of use (printed, never asserted).

For ``--minutes`` (default 10) the real main window runs offscreen with, all at once:

* training in the background (the ``swissroll`` preset, or ``--preset``), until stopped, with the app's
  live trajectory refresh (a snapshot every 4 s) and live plots;
* the trajectory animation playing in a loop (the Trajectory tab is shown; every ``--tab-cycle`` seconds
  the inpainting tab is shown for 5 s, so that its result view is painted too; 0 = never);
* inpainting runs one after another in an InpaintPanel (explorer/panels/inpaint) on ``--model``
  (``resources/models/bark.h5``). The panel follows the model of the AppState it is given, and the
  window's state holds the model being trained, so this panel gets an AppState of its own holding the
  bark model (``models.files.load_model`` then ``AppState.set_session`` without data, as
  tests/explorer/test_inpaint.py does) and is added to the window's central tabs as "Inpaint (soak)";
  the window's own Inpaint tab follows the trained model. Each run: a ``--crop``×``--crop`` centre crop
  of ``resources/data/textures/brick.png`` (``InpaintPanel.set_image``) with the page's default centre
  mask, the clamp method, ``--samples`` samples, a new seed (each run copies the state's model, as the
  panel does whenever training is idle).

Measured:

* resident memory (VmRSS from /proc/self/status) every ``--sample-every`` seconds: at 1 minute, at
  the end, the growth after the first minute (target < 50 MB), the least-squares slope after the
  first minute (MB/min) and the maximum;
* event-loop stall: a 10 ms QTimer probe (PreciseTimer); lateness of each tick, p50 / p99 / max (ms),
  the count over 50 ms and the five worst as [seconds into the soak, ms]. These are wall-clock and
  grow with the machine's load; the GUI thread's CPU time (``gui_cpu_s``, and per trajectory frame
  drawn) measures what the app asks of that thread whatever the load;
* training iterations during the soak; inpainting runs completed (and started, failed, median seconds;
  errors are the panel's state's "error" messages);
* for finding a leak: Python objects by type (``gc``) and the window's QObject children, at 1 minute
  and at the end (the biggest growths are printed); ``--tracemalloc`` adds the top allocation sites
  that grew after the first minute (slows the app);
* hangs: an inpainting run longer than ``--run-timeout`` s, training that makes no progress for 60 s,
  and (``faulthandler``) a traceback of every thread on stderr if the event loop stops for 60 s;
  exceptions raised in the app's slots are counted and listed (``app_exceptions``);
* where the stalls come from (``--stall-stacks``): a sampling thread looks at the GUI thread's Python
  stack every 2 ms while the event loop is more than 30 ms late and prints the most frequent stacks
  (innermost first) with the stall time they account for. A stack that ends in the event loop itself
  is time spent in Qt (painting, layout) or waiting for the interpreter lock held by another thread.

The app's data folder (XDG_DATA_HOME: the training autosave) is a scratch folder, and the settings a
throw-away INI file: the soak never touches the user's files.

    python bench/soak.py [--minutes 10] [--preset swissroll] [--json]

A progress line goes to stderr every minute; the result goes to stdout (``--json``: one JSON object
with at least rss_growth_mb, stall_p50_ms, stall_p99_ms, inpaint_runs, train_iterations). Runs
offscreen (QT_QPA_PLATFORM=offscreen unless a display is set) with one torch thread (``--threads``).
"""
from __future__ import annotations

import argparse
import collections
import faulthandler
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# the app's own files (the training autosave goes to QStandardPaths.AppDataLocation) go to a scratch
# folder, never into the user's data folder
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="dpm-soak-data-")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _stats import pct  # noqa: E402 - bench/ is the script folder

RSS_TARGET_MB = 50.0
STALL_P99_TARGET_MS = 50.0


def proc_status_mb(field: str = "VmRSS") -> float:
    """A memory field of /proc/self/status in MB (resource.getrusage's peak where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def slope_per_min(points) -> float:
    """Least-squares slope of [(seconds, MB)] in MB per minute."""
    if len(points) < 2:
        return float("nan")
    ts = [p[0] for p in points]
    ys = [p[1] for p in points]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    if den == 0:
        return float("nan")
    return 60.0 * sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den


def type_counts() -> collections.Counter:
    gc.collect()
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    ap.add_argument("--preset", default="swissroll", help="the preset trained in the background")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--model", default=str(ROOT / "resources/models/bark.h5"), help="the inpainting model")
    ap.add_argument("--image", default=str(ROOT / "resources/data/textures/brick.png"))
    ap.add_argument("--crop", type=int, default=32, help="side of the centre crop that is inpainted")
    ap.add_argument("--samples", type=int, default=1, help="samples per inpainting run")
    ap.add_argument("--gap", type=float, default=0.2, help="seconds between two inpainting runs")
    ap.add_argument("--sample-every", type=float, default=5.0, help="seconds between two RSS samples")
    ap.add_argument("--points", type=int, default=None, help="trajectory points (default: the app's)")
    ap.add_argument("--tab-cycle", type=float, default=30.0,
                    help="every this many seconds show the Inpaint tab for 5 s (0: Trajectory tab only)")
    ap.add_argument("--run-timeout", type=float, default=300.0, help="an inpainting run longer than this is a hang")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--tracemalloc", action="store_true", help="top allocation sites grown after minute 1")
    ap.add_argument("--stall-stacks", action="store_true", help="sample the GUI thread's stack during stalls")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, args.threads))
    import numpy as np
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QObject, QSettings, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from explorer.app import configure_pyqtgraph

    configure_pyqtgraph()
    from explorer import session as sessions
    from explorer.main_window import MainWindow
    from explorer.panels.inpaint import InpaintPanel
    from explorer.state import AppState
    from models import images as I
    from models.files import load_model

    def log(msg: str) -> None:
        print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def wait(cond, what: str, timeout=180.0):
        t0 = time.perf_counter()
        while not cond():
            app.processEvents()
            time.sleep(0.005)
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"the app did not get there in {timeout:.0f} s: {what}")

    # exceptions raised in the app's slots (Qt hands them to sys.excepthook): counted and timed
    app_errors: list[str] = []
    clock_ref = {"clock": None}
    hook0 = sys.excepthook

    def excepthook(tp_, val, tb):
        c_ = clock_ref["clock"]
        when = f"{c_.nsecsElapsed() / 1e9:.1f} s into the soak" if c_ is not None and c_.isValid() else "during setup"
        import traceback

        where = traceback.extract_tb(tb)[-1] if tb is not None else None
        app_errors.append(f"{tp_.__name__}: {val} ({when}; at {Path(where.filename).name}:{where.lineno} "
                          f"{where.name})" if where else f"{tp_.__name__}: {val} ({when})")
        log("app exception: " + app_errors[-1])
        hook0(tp_, val, tb)

    sys.excepthook = excepthook
    load0 = os.getloadavg()
    rss_start = proc_status_mb()
    settings = QSettings(os.path.join(tempfile.mkdtemp(prefix="dpm-soak-"), "s.ini"), QSettings.IniFormat)
    win = MainWindow(settings, autoplay=True, traj_points=args.points)
    win.resize(1440, 900)
    win.show()
    st, tp, ctl = win.state, win.trajectory, win.controller  # the window delegates its actions
    if win.inpaint is None:
        print("the main window has no Inpaint view (explorer/panels/inpaint missing or failing)", file=sys.stderr)
        return 2

    # ---- session, trajectory animation -----------------------------------------------------------
    win.apply_session(sessions.preset_session(args.preset))
    win.set_view("reverse")
    wait(lambda: st.trajectories.get("reverse") is not None, "the first reverse trajectory")
    tp.loop.setChecked(True)
    if not tp.playing:
        tp.play()

    # ---- the inpainting panel: bark model, a centre crop of brick.png, the default centre mask ------
    loaded = load_model(args.model)
    ist = AppState()  # the inpainting panel's own state (see the module docstring)
    ist.set_session(loaded.model, None, path=Path(args.model), norm=loaded.norm)
    panel = InpaintPanel(ist)
    win.tabs.addTab(panel, "Inpaint (soak)")
    ipage = panel.image_page

    def last_problem() -> str:
        return next((f"{lvl}: {text}" for lvl, text in reversed(ist.log) if lvl in ("warning", "error")), "")

    px = I.coerce_image(Path(args.image))  # float32 [C, H, W] in [0, 1]
    H, W = px.shape[-2:]
    c = min(args.crop, H, W)
    r0, c0 = (H - c) // 2, (W - c) // 2
    crop = np.ascontiguousarray(px[:, r0:r0 + c, c0:c0 + c])
    if not panel.set_image(crop, name=f"{Path(args.image).name} centre {c}×{c}"):
        print(f"the inpainting panel refused the image: {last_problem()}", file=sys.stderr)
        return 2
    ipage.task_combo.setCurrentIndex(ipage.task_combo.findData("inpaint"))
    ipage.method_combo.setCurrentIndex(ipage.method_combo.findData("clamp"))
    panel.samples_spin.setValue(args.samples)
    known = ipage.mask_model.known
    if panel.page != "image" or ipage.prepared is None or known.all() or ipage.method != "clamp":
        print(f"the inpainting panel is not ready (page {panel.page!r}, prepared {ipage.prepared is not None}, "
              f"method {ipage.method!r}, hole {int((~known).sum())} px)", file=sys.stderr)
        return 2
    inpaint_desc = (f"{Path(args.model).name} (T = {loaded.model.T}) on {Path(args.image).name} centre {c}×{c}, "
                    f"hole {int((~known).sum())} px, clamp, {args.samples} sample(s)")

    # ---- training in the background --------------------------------------------------------------
    win.controls.budget.setValue(0)  # until stopped
    ctl.start_training()
    wait(lambda: ctl.train_worker is not None and ctl.train_worker.trainer is not None and len(st.history) >= 1,
         "the first training record")
    worker = ctl.train_worker
    trainer = worker.trainer
    log(f"training {args.preset}; inpainting {inpaint_desc}; soak {args.minutes:g} min")

    # ---- measurement state -----------------------------------------------------------------------
    clock = QElapsedTimer()
    clock_ref["clock"] = clock
    lateness: list[float] = []
    late_at: list[float] = []  # seconds into the soak of each lateness sample
    last_tick = {"t": None, "wall": None}
    rss: list[tuple[float, float]] = []
    runs = {"started": 0, "completed": 0, "cancelled": 0, "failed_to_start": 0, "errors": 0, "durations": [],
            "t0": None, "seed": 0, "last_ok": False, "frames": 0}
    hangs: list[str] = []
    train_mark = {"it": trainer.iteration, "t": 0.0}
    it0 = trainer.iteration
    marks: dict = {}
    timers: list[QTimer] = []
    done = {"flag": False}

    def now_s() -> float:
        return clock.nsecsElapsed() / 1e9

    def tick():
        t = clock.nsecsElapsed() / 1e6
        if last_tick["t"] is not None:
            lateness.append(max(0.0, t - last_tick["t"] - 10.0))
            late_at.append(t / 1000.0)
        last_tick["t"] = t
        last_tick["wall"] = time.perf_counter()

    def skip_probe():  # our own diagnostics must not count as the app's stalls
        last_tick["t"] = last_tick["wall"] = None

    stall_stacks: collections.Counter = collections.Counter()
    stall_samples: list = []  # (seconds into the soak, stack) of every sample
    sampler_stop = threading.Event()

    def sample_stalls(main_ident: int, every_s: float = 0.002, late_ms: float = 30.0) -> None:
        """(a thread) The GUI thread's stack, each time the event loop is more than ``late_ms`` late."""
        while not sampler_stop.wait(every_s):
            wall = last_tick["wall"]
            if wall is None or done["flag"] or (time.perf_counter() - wall) * 1000 - 10 < late_ms:
                continue
            frame = sys._current_frames().get(main_ident)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)[::-1]  # innermost first
            key = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack[:7])
            stall_stacks[key] += 1
            stall_samples.append((now_s(), key))

    def qt_counts() -> dict:
        return {"window_qobjects": len(win.findChildren(QObject)), "inpaint_qobjects": len(panel.findChildren(QObject)),
                "app_widgets": len(app.allWidgets())}

    def snapshot_objects(label: str) -> None:
        t = time.perf_counter()
        qt = qt_counts()  # first: findChildren creates Python wrappers, which then count in both snapshots
        marks[label] = {"qt": qt, "types": type_counts(), "rss": proc_status_mb(),
                        "old_workers": len(ctl._old_workers), "log": len(st.log), "history": len(st.history)}
        if args.tracemalloc:
            import tracemalloc

            if label == "1min":
                tracemalloc.start(10)
            marks[label]["tm"] = tracemalloc.take_snapshot() if label == "end" else None
        marks[label]["seconds"] = time.perf_counter() - t
        skip_probe()

    # inpainting: one run after another
    def start_run():
        if done["flag"] or panel.is_running:
            return
        runs["seed"] += 1
        panel.seed_spin.setValue(runs["seed"])
        runs["last_ok"] = False
        if panel.run():
            runs["started"] += 1
            runs["t0"] = time.perf_counter()
        else:
            runs["failed_to_start"] += 1
            if runs["failed_to_start"] <= 3:
                log(f"an inpainting run did not start: {last_problem()!r}")
            QTimer.singleShot(2000, start_run)

    def on_result():
        runs["last_ok"] = True

    def on_running(on: bool):
        if on:
            return
        # the panel emits running_changed(False) before it judges the run (and emits result_ready), in
        # the same slot: the outcome is counted once control is back in the event loop
        QTimer.singleShot(0, run_ended)

    def run_ended():
        if runs["t0"] is not None:
            runs["durations"].append(time.perf_counter() - runs["t0"])
            runs["t0"] = None
        if runs["last_ok"]:
            runs["completed"] += 1
            runs["frames"] = len(panel.frames)
        else:
            runs["cancelled"] += 1
        if not done["flag"]:
            QTimer.singleShot(int(args.gap * 1000), start_run)

    def on_panel_message(level: str, text: str):
        if level != "error":
            return
        runs["errors"] += 1
        if runs["errors"] <= 3:
            log(f"inpainting panel error: {text}")

    panel.result_ready.connect(on_result)
    panel.running_changed.connect(on_running)
    ist.message.connect(on_panel_message)

    def sample():
        t = now_s()
        rss.append((t, proc_status_mb()))
        if runs["t0"] is not None and time.perf_counter() - runs["t0"] > args.run_timeout:
            msg = (f"inpainting run {runs['started']} still running after {time.perf_counter() - runs['t0']:.0f} s "
                   f"(frames so far {len(panel.frames)})")
            if msg.split(" still")[0] not in " ".join(hangs):
                hangs.append(msg)
                log("HANG? " + msg)
        it = trainer.iteration
        if it != train_mark["it"]:
            train_mark.update(it=it, t=t)
        elif st.training == "running" and t - train_mark["t"] > 60 and not any("training" in h for h in hangs):
            hangs.append(f"training made no progress from {train_mark['t']:.0f} s to {t:.0f} s "
                         f"(iteration {it}, state {st.training})")
            log("HANG? " + hangs[-1])
        if "1min" not in marks and t >= 60.0:
            snapshot_objects("1min")

    def minute_line():
        t = now_s()
        log(f"{t / 60:4.1f} min: RSS {proc_status_mb():.1f} MB, training it {trainer.iteration - it0:,}, inpainting "
            f"runs {runs['completed']} done / {runs['started']} started, stall p99 so far {pct(lateness, 99):.1f} ms, "
            f"trajectory frames drawn {tp.frames_drawn:,}, load {os.getloadavg()[0]:.2f}")

    def watchdog():  # a traceback of every thread if the event loop stops for a minute
        faulthandler.dump_traceback_later(60, repeat=False, file=sys.stderr, exit=False)

    def tab_cycle():
        if args.tab_cycle <= 0:
            return
        t = now_s() % args.tab_cycle
        want = panel if t >= args.tab_cycle - 5.0 else win.trajectory
        if win.tabs.currentWidget() is not want:
            win.tabs.setCurrentWidget(want)

    def finish():
        done["flag"] = True
        for tm in timers:
            tm.stop()
        faulthandler.cancel_dump_traceback_later()
        rss.append((now_s(), proc_status_mb()))
        loop.quit()  # not app.quit(): in Qt 6 that closes the window (MainWindow.closeEvent stops training)

    def every(ms: int, fn, precise=False) -> QTimer:
        tm = QTimer()
        tm.setInterval(ms)
        if precise:
            tm.setTimerType(Qt.PreciseTimer)
        tm.timeout.connect(fn)
        timers.append(tm)
        return tm

    every(10, tick, precise=True)
    every(int(args.sample_every * 1000), sample)
    every(60_000, minute_line)
    every(1000, watchdog)
    every(250, tab_cycle)
    loop = QEventLoop()
    end_timer = QTimer(singleShot=True)
    end_timer.setInterval(int(args.minutes * 60_000))
    end_timer.timeout.connect(finish)

    # ---- the soak --------------------------------------------------------------------------------
    clock.start()
    rss.append((0.0, proc_status_mb()))
    for tm in timers:
        tm.start()
    end_timer.start()
    watchdog()
    QTimer.singleShot(0, start_run)
    sampler = None
    if args.stall_stacks:
        sampler = threading.Thread(target=sample_stalls, args=(threading.get_ident(),), daemon=True)
        sampler.start()
    cpu0 = (time.thread_time(), time.process_time())
    loop.exec()
    gui_cpu_s, proc_cpu_s = time.thread_time() - cpu0[0], time.process_time() - cpu0[1]
    sampler_stop.set()

    # ---- after ---------------------------------------------------------------------------------
    train_its = trainer.iteration - it0
    soak_s = rss[-1][0]
    snapshot_objects("end")
    traj_frames = tp.frames_drawn
    panel.cancel(wait=True)
    try:  # let the cancelled run's queued signals land before training stops (see the report)
        wait(lambda: not panel.is_running, "the inpainting run to wind down", 30)
    except TimeoutError:
        hangs.append("the inpainting run did not wind down within 30 s of cancel(wait=True)")
    ctl.stop_training()
    try:
        wait(lambda: st.training == "idle", "training to stop", 30)
        stop_ok = True
    except TimeoutError:
        stop_ok = False
        hangs.append(f"training did not stop within 30 s of Stop (state {st.training})")
    win.shutdown()

    base = next((m for t, m in rss if t >= 60.0), None)
    if base is None:  # a soak shorter than a minute: from the first sample
        base = rss[0][1]
    after = [(t, m) for t, m in rss if t >= 60.0]
    rss_end = rss[-1][1]
    grow_types, grow_qt = [], {}
    if "1min" in marks and "end" in marks:
        d = marks["end"]["types"] - marks["1min"]["types"]
        grow_types = [[name, n] for name, n in d.most_common(12)]
        grow_qt = {k: marks["end"]["qt"][k] - marks["1min"]["qt"][k] for k in marks["end"]["qt"]}
    tm_top = []
    if args.tracemalloc and marks.get("end", {}).get("tm") is not None:
        import tracemalloc

        first = marks["end"]["tm"]
        # compared with the (empty) start at minute 1: what was allocated since and is still alive
        stats = first.statistics("traceback")[:8]
        tm_top = [[f"{s.size / 1e6:.2f} MB in {s.count} blocks", s.traceback.format()[-4:]] for s in stats]
        tracemalloc.stop()

    dur = runs["durations"]
    out = {
        "minutes": round(soak_s / 60, 2),
        "rss_start_mb": round(rss_start, 1),
        "rss_1min_mb": round(base, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - base, 1),
        "rss_slope_mb_per_min": round(slope_per_min(after), 2) if len(after) >= 2 else None,
        "rss_max_mb": round(max(m for _, m in rss), 1),
        "stall_p50_ms": round(pct(lateness, 50), 2),
        "stall_p99_ms": round(pct(lateness, 99), 2),
        "stall_max_ms": round(max(lateness) if lateness else float("nan"), 2),
        "stall_ticks": len(lateness),
        "stall_over_50ms": sum(v > 50 for v in lateness),
        "stall_worst": [[round(late_at[i], 1), round(lateness[i], 1)]
                        for i in sorted(range(len(lateness)), key=lambda i: -lateness[i])[:5]],
        # CPU time of the GUI thread (what the app asks of it, whatever the machine's load) and of the process
        "gui_cpu_s": round(gui_cpu_s, 1),
        "gui_cpu_ms_per_traj_frame": round(1000 * gui_cpu_s / max(tp.frames_drawn, 1), 2),
        "process_cpu_s": round(proc_cpu_s, 1),
        "train_iterations": int(train_its),
        "train_its_per_s": round(train_its / soak_s, 1) if soak_s > 0 else None,
        "inpaint_runs": runs["completed"],
        "inpaint_runs_started": runs["started"],
        "inpaint_runs_cancelled": runs["cancelled"],
        "inpaint_failed_to_start": runs["failed_to_start"],
        "inpaint_errors": runs["errors"],
        "inpaint_run_s_median": round(statistics.median(dur), 2) if dur else None,
        "inpaint_run_s_max": round(max(dur), 2) if dur else None,
        "inpaint_frames_per_run": runs["frames"],
        "inpaint": inpaint_desc,
        "trajectory_frames_drawn": traj_frames,
        "history_records": len(st.history),
        "autosaves": sum(1 for _lvl, text in st.log if text.startswith("autosaved")),
        "app_warnings": sum(1 for lvl, _text in st.log if lvl in ("warning", "error")),
        "inpaint_warnings": sum(1 for lvl, _text in ist.log if lvl == "warning"),
        "hangs": hangs,
        "app_exceptions": len(app_errors),
        "app_exception_messages": app_errors[:10],
        "training_stopped_cleanly": stop_ok,
        "stop_latency_ms": round(1000 * ctl.last_stop_latency_s, 1),
        "object_growth_after_1min": grow_types,
        "qt_object_growth_after_1min": grow_qt,
        "rss_samples": [[round(t, 1), round(m, 1)] for t, m in rss],
        "preset": args.preset,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "loadavg_start": [round(v, 2) for v in load0],
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
    }
    if tm_top:
        out["tracemalloc_top"] = tm_top
    if args.stall_stacks:  # each sample stands for ~2 ms of stall
        out["stall_stacks"] = [[2 * n, key] for key, n in stall_stacks.most_common(15)]
        worst = []  # the stacks seen during each of the five worst stalls
        for at, ms in out["stall_worst"]:
            seen = collections.Counter(k for t, k in stall_samples if at - ms / 1000 - 0.01 <= t <= at + 0.01)
            worst.append([at, ms, [[2 * n, k] for k, n in seen.most_common(3)]])
        out["stall_worst_stacks"] = worst
    if args.json:
        print(json.dumps(out))
        return 0
    targets = {"rss_growth_mb": f"< {RSS_TARGET_MB:g}", "stall_p99_ms": f"< {STALL_P99_TARGET_MS:g}"}
    skip = {"rss_samples", "app_exception_messages", "object_growth_after_1min", "qt_object_growth_after_1min",
            "tracemalloc_top", "hangs", "stall_stacks", "stall_worst_stacks"}
    for k, v in out.items():
        if k in skip:
            continue
        print(f"{k:>28s}  {v}" + (f"   (target {targets[k]})" if k in targets else ""))
    print(f"{'hangs':>28s}  {'; '.join(hangs) if hangs else 'none'}")
    for msg in app_errors[:10]:
        print(f"{'app exception':>28s}  {msg}")
    per_min = [f"{next(m for t, m in rss if t >= 60 * k):.0f}" for k in range(int(soak_s // 60) + 1)]
    if soak_s % 60 > args.sample_every:
        per_min.append(f"{rss_end:.0f}")
    print(f"{'RSS each minute (MB)':>28s}  {' '.join(per_min)}")
    if grow_types:
        print(f"{'objects grown after 1 min':>28s}  " + ", ".join(f"{n} {name}" for name, n in grow_types))
        print(f"{'Qt objects grown after 1 min':>28s}  {grow_qt}")
    for size, tb in tm_top:
        print(f"{'tracemalloc':>28s}  {size}: " + " | ".join(line.strip() for line in tb))
    for ms, key in out.get("stall_stacks", []):
        print(f"{'stalled in (~ms)':>28s}  {ms:6d}  {key}")
    for at, ms, stacks in out.get("stall_worst_stacks", []):
        print(f"{'worst stall':>28s}  {ms:.0f} ms at {at:.1f} s:")
        for n, key in stacks:
            print(f"{'':>28s}    {n:6d}  {key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
