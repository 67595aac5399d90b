"""Start-up time of ``dpm-explorer`` against the floor of its heavy imports, on this machine, in one run.

    python bench/startup.py [--reps 5] [--json]

Two measurements, alternated ``--reps`` times so that both see the same machine load:

* **floor**: a fresh interpreter that imports torch, PySide6 (QtCore, QtGui, QtWidgets) and pyqtgraph and
  exits — wall time from launching the process to its exit;
* **app**: ``dpm-explorer`` (the installed script, else ``python -m explorer.app``) with
  ``DPM_STARTUP_PROBE=1``, which makes the app print the wall-clock time of its first trajectory frame
  and exit (``explorer/app.py``) — wall time from launching the process to that first animated frame of
  the bundled Swiss-roll model.

Prints every repetition, the medians and their ratio (target: app ≤ 1.5 × floor). The app runs with a
throw-away settings folder (``XDG_CONFIG_HOME``), so a user's layout or recent files do not change it,
and on Qt's offscreen platform when there is no display.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR_CODE = "import torch, PySide6.QtCore, PySide6.QtGui, PySide6.QtWidgets, pyqtgraph"
TARGET = 1.5


def app_command() -> list[str]:
    script = Path(sys.executable).with_name("dpm-explorer")
    if script.is_file():
        return [str(script)]
    found = shutil.which("dpm-explorer")
    return [found] if found else [sys.executable, "-m", "explorer.app"]


def time_floor(env: dict) -> float:
    t0 = time.time()
    subprocess.run([sys.executable, "-c", FLOOR_CODE], env=env, check=True, timeout=300)
    return time.time() - t0


def time_app(cmd: list[str], env: dict) -> tuple[float, str]:
    """Seconds from launch to the first trajectory frame, and what the app showed."""
    t0 = time.time()
    out = subprocess.run(cmd, env=dict(env, DPM_STARTUP_PROBE="1"), capture_output=True, text=True, timeout=300)
    for line in out.stdout.splitlines():
        if line.startswith("DPM_STARTUP_PROBE "):
            fields = dict(f.split("=", 1) for f in line.split()[1:])
            return float(fields["first_frame_unix"]) - t0, fields.get("shown", "?")
    raise SystemExit(f"startup: {' '.join(cmd)} exited ({out.returncode}) without drawing a frame:\n"
                     f"{out.stdout[-2000:]}{out.stderr[-2000:]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each measurement (medians reported)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args(argv)

    cmd = app_command()
    settings = tempfile.mkdtemp(prefix="dpm-startup-")
    env = dict(os.environ, XDG_CONFIG_HOME=settings)
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        time_floor(env)  # warm the file cache once; not counted
        floor, app, shown = [], [], "?"
        for r in range(args.reps):
            floor.append(time_floor(env))
            a, shown = time_app(cmd, env)
            app.append(a)
            if not args.json:
                print(f"rep {r + 1}: floor {floor[-1]:.2f} s, app to first frame {app[-1]:.2f} s", flush=True)
    finally:
        shutil.rmtree(settings, ignore_errors=True)
    f, a = statistics.median(floor), statistics.median(app)
    result = dict(floor_s=f, app_first_frame_s=a, ratio=a / f, target=TARGET, reps=args.reps, shown=shown,
                  app_command=" ".join(cmd), cpus=os.cpu_count(), floor_all=floor, app_all=app)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"import floor (torch + PySide6 + pyqtgraph), median of {args.reps}: {f:.2f} s")
        print(f"dpm-explorer launch → first trajectory frame ({shown}), median: {a:.2f} s")
        print(f"ratio {a / f:.2f} (target ≤ {TARGET}) {'met' if a / f <= TARGET else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
