"""``dpm-explorer``: open the explorer on the bundled Swiss-roll model with its reverse trajectory
playing (an untrained Swiss-roll model when the bundled file is missing).

    dpm-explorer [--preset NAME | --model FILE] [--view reverse|forward|draw|inpaint]
    dpm-explorer --screenshot FILE.png [--preset NAME] [--view NAME] [--model FILE] [--size 1440x900]

``--screenshot`` renders the window offscreen once it has drawn a few frames of the trajectory (it
then shows the end of the reverse process, t = 0, or t = T/5 of the forward one), saves a PNG and exits.
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
    ap.add_argument("--preset", help="open this preset (swissroll, heartbeat, digits, mnist5k, deadleaves, bark)")
    ap.add_argument("--model", help="open this model file (.h5)")
    ap.add_argument("--view", choices=VIEWS, default="reverse", help="the central view to show")
    ap.add_argument("--screenshot", metavar="FILE.png", help="render the window offscreen to FILE.png and exit")
    ap.add_argument("--size", default="1440x900", help="window size for --screenshot (WxH)")
    ap.add_argument("--t", type=int, default=None, help="with --screenshot: the step t to show")
    ap.add_argument("--overlays", default="", help="2-D points: comma-separated overlays to switch on (paths, drift)")
    ap.add_argument("--timeout", type=float, default=120.0, help="with --screenshot: give up waiting after this many s")
    return ap.parse_args(argv)


def configure_pyqtgraph() -> None:
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="w", foreground="k",
                        useNumba=False)


def configure_torch() -> int:
    """Leave a core for the GUI: torch's intra-op threads = CPU cores − 1 (at least 1). On a busy
    2-core machine two intra-op threads are several times slower than one, and the GUI thread needs a
    core of its own to stay responsive. ``DPM_THREADS`` overrides. Returns the thread count."""
    import torch

    env = os.environ.get("DPM_THREADS")
    n = int(env) if env and env.isdigit() and int(env) > 0 else max(1, min(torch.get_num_threads(),
                                                                           (os.cpu_count() or 2) - 1))
    torch.set_num_threads(n)
    return n


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.screenshot and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtWidgets import QApplication, QSplashScreen

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("dpm-explorer")
    app.setOrganizationName("dpm-explorer")
    splash = None
    if not args.screenshot:
        from PySide6.QtGui import QColor, QPixmap

        pm = QPixmap(420, 120)
        pm.fill(QColor(245, 247, 252))
        splash = QSplashScreen(pm)
        splash.showMessage("dpm-explorer\nloading PyTorch and the bundled model …", Qt.AlignCenter, QColor(40, 60, 110))
        splash.show()
        app.processEvents()

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
        splash.finish(win)
    win.start(model_path=args.model, preset=args.preset)
    if args.view != "reverse":
        win.set_view(args.view)
    ov = {o.strip() for o in args.overlays.split(",") if o.strip()}
    win.trajectory.set_view_options(paths="paths" in ov or None, drift="drift" in ov or None)
    def ready():
        win.ready_s = time.perf_counter() - T0
        win.state.post("info", f"ready {win.ready_s:.1f} s after start")

    win.session_ready.connect(ready)
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
        if win.state.data is not None and win.state.evaluation is None:
            return False  # let the entropy, bound-term and sample plots fill in
        if state["seen"] is None:
            state["seen"] = win.trajectory.frames_drawn
        return win.trajectory.frames_drawn >= state["seen"] + 3

    def poll() -> None:
        late = time.perf_counter() > state["deadline"]
        if not ready() and not late:
            return
        timer.stop()
        traj = win.state.trajectory
        if traj is not None and args.view in ("reverse", "forward"):
            win.trajectory.pause()
            t_show = args.t if args.t is not None else (0 if traj.direction == "reverse" else traj.T // 5)
            win.state.set_frame(int(abs(traj.t - t_show).argmin()))
            win.trajectory.draw_now()
        for _ in range(5):
            app.processEvents()
        ok = win.grab().save(args.screenshot)
        if not ok:
            print(f"dpm-explorer: could not write {args.screenshot}", file=sys.stderr)
            state["code"] = 1
        else:
            ready_s = getattr(win, "ready_s", None)
            print(f"dpm-explorer: saved {args.screenshot}" + (" (timed out waiting for the trajectory)" if late else "")
                  + (f"; the session was ready {ready_s:.1f} s after start" if ready_s is not None else ""))
        win.shutdown()
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
