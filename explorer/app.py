"""``dpm-explorer``: open the explorer on the bundled trained Swiss-roll model with its reverse
trajectory playing (``--preset NAME``: that preset's bundled trained model).

    dpm-explorer [--preset NAME | --model FILE] [--view reverse|forward|draw|inpaint]
    dpm-explorer --screenshot FILE.png [--preset NAME] [--view NAME] [--model FILE] [--size 1440x900]

``--screenshot`` renders the window offscreen once the trajectory is computed (or, after ``--wait``
seconds, what has streamed in so far), shows the end of the reverse process (t = 0, or the lowest t
computed) or t = T/5 of the forward one, saves a PNG, prints one line saying what is on screen
(``screenshot: FILE — bundled model bark (trained, K = … bits/pixel exact); reverse trajectory …``) and exits.
With ``DPM_STARTUP_PROBE=1`` (bench/startup.py) the app prints the wall-clock time of its first trajectory
frame and exits at once.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

T0 = time.perf_counter()

VIEWS = ("reverse", "forward", "draw", "inpaint")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="dpm-explorer", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", help="open this preset's bundled trained model (`dpm info --list` names them; "
                                      "a preset without one opens untrained)")
    ap.add_argument("--model", help="open this model file (.h5)")
    ap.add_argument("--watch", metavar="FILE.h5", help="follow a model file a running dpm train keeps autosaving")
    ap.add_argument("--view", choices=VIEWS, default="reverse", help="the central view to show")
    ap.add_argument("--screenshot", metavar="FILE.png", help="render the window offscreen to FILE.png and exit")
    ap.add_argument("--size", default="1440x900", help="window size for --screenshot (WxH)")
    ap.add_argument("--t", type=int, default=None, help="with --screenshot: the step t to show")
    ap.add_argument("--overlays", default="", help="2-D points: comma-separated overlays to switch on (paths, drift)")
    ap.add_argument("--timeout", type=float, default=120.0, help="with --screenshot: give up waiting after this many s")
    ap.add_argument("--wait", type=float, default=8.0,
                    help="with --screenshot: seconds after start to wait for the whole trajectory before "
                         "saving what has been computed so far (it streams in; a first pass over every "
                         "step for a few examples is waited for)")
    return ap.parse_args(argv)


def configure_pyqtgraph() -> None:
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="w", foreground="k",
                        useNumba=False)


def configure_torch() -> int:
    """Leave a core for the GUI: torch's intra-op threads = CPU cores − 1 (at least 1). On a busy
    2-core machine two intra-op threads are several times slower than one, and the GUI thread needs a
    core of its own to stay responsive. ``DPM_THREADS`` overrides. Returns the thread count."""
    from models.runtime import configure_threads

    return configure_threads()


def show_splash(app, wait_s: float = 0.25):
    """A small "loading …" window, shown while PyTorch is imported (the event loop is not running yet).
    It waits at most ``wait_s`` for the window system to show it, then paints it once. (Qt's
    QSplashScreen waits up to 1 s for that on every start, and the whole second where no window
    manager reports it: measured 1.0 s offscreen and on Xvfb; this window is shown in 10–15 ms.)"""
    from PySide6.QtCore import QEventLoop, Qt
    from PySide6.QtWidgets import QLabel

    splash = QLabel("dpm-explorer\nloading PyTorch and the bundled model …")
    splash.setWindowFlags(Qt.SplashScreen | Qt.FramelessWindowHint)
    splash.setAlignment(Qt.AlignCenter)
    splash.setFixedSize(420, 120)
    splash.setStyleSheet("background: rgb(245, 247, 252); color: rgb(40, 60, 110); font-size: 11pt;")
    screen = app.primaryScreen()
    if screen is not None:  # centred, as a splash screen is
        splash.move(screen.availableGeometry().center() - splash.rect().center())
    splash.show()
    deadline = time.perf_counter() + wait_s
    while not splash.windowHandle().isExposed() and time.perf_counter() < deadline:
        app.processEvents(QEventLoop.AllEvents, 20)
        time.sleep(0.005)
    splash.repaint()
    app.processEvents()
    return splash


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.screenshot and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("dpm-explorer")
    app.setOrganizationName("dpm-explorer")
    splash = None if args.screenshot else show_splash(app)

    configure_pyqtgraph()
    from .main_window import MainWindow  # heavy: torch, pyqtgraph

    configure_torch()

    if args.screenshot:  # a throw-away settings file: screenshots never depend on a user's layout
        tmp = tempfile.mkdtemp(prefix="dpm-explorer-shot-")
        settings = QSettings(os.path.join(tmp, "settings.ini"), QSettings.IniFormat)
    else:
        settings = QSettings()
    win = MainWindow(settings)
    if args.screenshot:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            print(f"dpm-explorer: --size must look like 1440x900, got {args.size!r}", file=sys.stderr)
            return 2
        win.resize(w, h)
    win.show()
    if splash is not None:
        splash.close()
    if args.watch:  # the first version of the file is the first session
        win.controller.watch_model(args.watch)
    else:
        win.start(model_path=args.model, preset=args.preset)
    if args.view != "reverse":
        win.set_view(args.view)
    ov = {o.strip() for o in args.overlays.split(",") if o.strip()}
    win.trajectory.set_view_options(paths="paths" in ov or None, drift="drift" in ov or None)
    def ready():  # logged once, for the first session (not on every later switch)
        win.session_ready.disconnect(ready)
        win.ready_s = time.perf_counter() - T0
        win.state.post("info", f"ready {win.ready_s:.1f} s after start")

    win.session_ready.connect(ready)
    if os.environ.get("DPM_STARTUP_PROBE") == "1":  # bench/startup.py: wall clock at the first trajectory frame, exit
        def probe(_i):
            print(f"DPM_STARTUP_PROBE first_frame_unix={time.time():.6f} shown={win.state.session_name}", flush=True)
            os._exit(0)
        win.trajectory.frame_drawn.connect(probe)
    if args.screenshot:
        return _screenshot(app, win, args)
    return app.exec()


def _screenshot(app, win, args) -> int:
    from PySide6.QtCore import QTimer

    state = {"seen": None, "deadline": time.perf_counter() + args.timeout, "code": 0}

    def ready() -> bool:
        if args.view in ("draw", "inpaint"):
            return win.state.model is not None
        traj = win.state.trajectory
        if traj is None:
            return False
        if time.perf_counter() - T0 > args.wait and win.trajectory.frames_drawn > 0:
            # what has streamed in so far, but a first pass (every step for a few examples) is waited for
            return not (traj.n_ready is not None and int(traj.t[0]) > 0 and win.state.streaming())
        if win.state.incomplete() or (win.state.data is not None and win.state.evaluation is None):
            return False  # the whole trajectory, and the entropy and bound-term plots filled in
        if state["seen"] is None:
            state["seen"] = win.trajectory.frames_drawn
        return win.trajectory.frames_drawn >= state["seen"] + 3

    def poll() -> None:
        late = time.perf_counter() > state["deadline"]
        if not ready() and not late:
            return
        timer.stop()
        win.trajectory.pause()
        for _ in range(5):  # let queued frames and plot updates land first
            app.processEvents()
        traj = win.state.trajectory
        if traj is not None and args.view in ("reverse", "forward"):
            t_show = args.t if args.t is not None else (0 if traj.direction == "reverse" else traj.T // 5)
            win.state.set_frame(int(abs(traj.t - t_show).argmin()))
            win.trajectory.draw_now()
            settle = time.perf_counter() + 0.15  # the t cursors follow within 100 ms (panels/_plots.py)
            while time.perf_counter() < settle:
                app.processEvents()
                time.sleep(0.01)
        shown = win.state.describe()
        if traj is not None:
            frac = win.state.trajectory_fraction.get(traj.direction, 1.0)
            n, n_ready = int(traj.frames.shape[1]), traj.n_ready
            if n_ready is not None and int(traj.t[0]) == 0 and frac >= 0:  # first pass in, the rest computing
                done = f" for {n_ready} of {n} examples (the other {n - n_ready} computing)"
            else:
                done = (f" for {n_ready} of {n} examples" if n_ready is not None else "") + (
                    " complete" if frac >= 1.0 else f", {100 * max(frac, 0):.0f} % computed")
            shown += (f"; {traj.direction} trajectory t = {int(traj.t[0])}..{traj.T}{done}"
                      f", showing t = {int(traj.t[win.state.frame])}")
        ok = win.grab().save(args.screenshot)
        if not ok:
            print(f"dpm-explorer: could not write {args.screenshot}", file=sys.stderr)
            state["code"] = 1
        else:
            # one stable line for scripts: what is on screen
            print(f"screenshot: {args.screenshot} — {shown}" + (" (timed out)" if late else ""), flush=True)
        win.shutdown(timeout_ms=30000)  # let a running evaluation finish: nothing may outlive the window
        win.hide()
        app.quit()

    # no "last window closed" quit event may outlive this function (it would end the next event loop
    # of a host application, e.g. a test run)
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    timer = QTimer(interval=100)
    timer.timeout.connect(poll)
    timer.start()
    try:
        app.exec()
    finally:
        app.setQuitOnLastWindowClosed(quit_on_close)
        win.deleteLater()
    return state["code"]


if __name__ == "__main__":
    raise SystemExit(main())
