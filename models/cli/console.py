"""What every ``dpm`` command shares: progress on stderr, one-line errors, JSON output, argument types,
output-path checks, model arguments (a file or a bundled model's preset name), and Ctrl-C / SIGTERM.

Errors are :class:`CLIError` (or the library's CheckpointError / DataError, which name their file);
``main`` prints each as one line ``dpm: error: FILE: problem`` and exits with status 2.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, NoReturn, TypeVar

import numpy as np

__all__ = ["CLIError", "fail", "Console", "positive_int", "nonneg_int", "positive_float", "nonneg_float",
           "bounded_int", "check_out_path", "refuse_overwriting_inputs", "model_path", "jsonable", "fmt",
           "graceful_stop", "one_line"]

T = TypeVar("T")


class CLIError(Exception):
    """A failure reported as one line ``dpm: error: <message>``."""


def fail(message: str) -> NoReturn:
    raise CLIError(message)


def one_line(text: str, limit: int = 2000) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------------
# argument types


def _number(text: str, kind, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    v = _number(text, int, "a positive integer")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def nonneg_int(text: str) -> int:
    v = _number(text, int, "an integer >= 0")
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def bounded_int(low: int, high: int, name: str = "") -> Callable[[str], int]:
    """An integer in [low, high]; above ``high`` the message names the limit."""

    def parse(text: str) -> int:
        v = _number(text, int, "an integer")
        if v < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        if v > high:
            raise argparse.ArgumentTypeError(f"{v:,} is above the limit of {high:,}" + (f" {name}" if name else ""))
        return v

    return parse


def positive_float(text: str) -> float:
    v = _number(text, float, "a positive number")
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def nonneg_float(text: str) -> float:
    v = _number(text, float, "a number >= 0")
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


# ---------------------------------------------------------------------------------------------------
# paths


def check_out_path(path, suffixes: tuple[str, ...], what: str) -> Path:
    """An output path whose extension (any case) is one of ``suffixes``, in an existing writable folder,
    not a folder itself."""
    p = Path(path).expanduser()
    if p.suffix.lower() not in suffixes:
        fail(f"{p}: {what} must end in {' or '.join(suffixes)}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        fail(f"{p}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        fail(f"{p}: the folder {parent} is not writable")
    if p.is_dir():
        fail(f"{p}: is a folder, not a file")
    return p


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.expanduser().resolve() == b.expanduser().resolve()


def refuse_overwriting_inputs(outputs: Iterable, inputs: Iterable) -> None:
    """Refuse when an output would replace an input (the same file, through any path or link)."""
    ins = [Path(i).expanduser() for i in inputs if i is not None]
    outs = [Path(o).expanduser() for o in outputs if o is not None]
    for o in outs:
        for i in ins:
            if _same_file(o, i):
                fail(f"{o}: this output would replace the input {i}; choose another output file")
    for j, a in enumerate(outs):
        for b in outs[j + 1:]:
            if _same_file(a, b):
                fail(f"{a}: given as two different outputs")


def model_path(arg: str) -> Path:
    """A model argument: an existing file, else a bundled model by its preset name
    (``dpm eval swissroll``); else the path as given (loading it then reports it missing)."""
    from ..paths import bundled_model

    p = Path(arg).expanduser()
    if p.exists():
        return p
    b = bundled_model(arg)
    return b if b is not None else p


# ---------------------------------------------------------------------------------------------------
# output


def jsonable(v):
    """A JSON-safe copy: numpy scalars → Python, NaN/Inf → None, tuples → lists, paths → str, recursively."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def _bar(fraction: float | None, width: int = 24) -> str:
    if fraction is None:
        return ""
    f = min(1.0, max(0.0, fraction))
    n = int(round(f * width))
    return "[" + "#" * n + "." * (width - n) + f"] {100 * f:3.0f}%  "


class Console:
    """Where a command talks: results on stdout (or one JSON object with ``as_json``), progress and
    notes on stderr — a redrawn line on a terminal, nothing when not a terminal (progress) or when
    ``quiet``."""

    def __init__(self, quiet: bool = False, as_json: bool = False, out=None, err=None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet
        self.as_json = as_json
        self.tty = bool(getattr(self.err, "isatty", lambda: False)())
        self._open = False
        self._last = 0.0

    # ---- stdout ----------------------------------------------------------------------------------
    def print(self, text: str = "") -> None:
        """A line of the human-readable result (suppressed in JSON mode)."""
        if not self.as_json:
            print(text, file=self.out)

    def json(self, obj) -> None:
        print(json.dumps(jsonable(obj), sort_keys=True, allow_nan=False), file=self.out)

    def table(self, d: dict) -> None:
        for k, v in d.items():
            if isinstance(v, float):
                v = f"{v:.6g}"
            self.print(f"{k:<14} {v}")

    # ---- stderr ----------------------------------------------------------------------------------
    def note(self, text: str) -> None:
        """A progress line that stays (not in quiet mode)."""
        if self.quiet:
            return
        self.end()
        print(text, file=self.err, flush=True)

    def warn(self, text: str) -> None:
        self.end()
        print(f"dpm: warning: {one_line(text)}", file=self.err, flush=True)

    def bar(self, text: str, fraction: float | None = None, force: bool = False) -> None:
        """A transient progress line, redrawn in place on a terminal (at most ~10 times a second)."""
        if self.quiet or not self.tty:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        try:
            width = os.get_terminal_size(self.err.fileno()).columns
        except (OSError, ValueError, AttributeError):
            width = 0
        width = width if width >= 20 else 100
        line = _bar(fraction) + text
        self.err.write("\r" + line[: width - 1].ljust(width - 1))
        self.err.flush()
        self._open = True

    def end(self) -> None:
        if self._open:
            self.err.write("\n")
            self.err.flush()
            self._open = False

    def progress(self, label: str) -> Callable[[str, int, int], None]:
        """A ``progress(stage, done, total)`` callback for the library's long functions."""

        def cb(stage: str, done: int, total: int) -> None:
            self.bar(f"{label}{stage}: {done}/{total}", done / total if total else None, force=done >= total)

        return cb

    def track(self, items: Iterable[T], total: int, label: str) -> Iterator[T]:
        """Yield ``items`` unchanged, showing ``label`` and how many of ``total`` have passed."""
        t0 = time.monotonic()
        i = 0
        for i, item in enumerate(items, 1):
            self.bar(f"{label}: {i}/{total}  {time.monotonic() - t0:5.1f} s", i / total if total else None)
            yield item
        self.bar(f"{label}: {i}/{total}  {time.monotonic() - t0:5.1f} s", 1.0, force=True)
        self.end()


# ---------------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM


@contextlib.contextmanager
def graceful_stop(on_first: Callable[[str], None]):
    """First Ctrl-C or SIGTERM: ``on_first(signal name)`` (finish cleanly); a second: KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = [0]

    def handler(signum, frame):
        count[0] += 1
        if count[0] == 1:
            on_first("SIGTERM" if signum == signal.SIGTERM else "Ctrl-C")
        else:
            raise KeyboardInterrupt

    old = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
    except (ValueError, OSError):
        pass
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
