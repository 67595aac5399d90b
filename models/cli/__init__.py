"""The ``dpm`` command line: train, evaluate, sample, inspect, inpaint and denoise, headless.

    dpm train swissroll --seconds 60 --out swissroll.h5
    dpm train --data points.csv --steps 5000 --out mine.h5
    dpm train --resume swissroll.h5 --steps 2000 --out swissroll.h5
    dpm eval swissroll.h5 --ais 16 --json
    dpm sample swissroll -n 1000 --out samples.npy        (a bundled model by its preset name)
    dpm info --list
    dpm inpaint bark photo.png --mask hole.png --out filled.png
    dpm denoise bark photo.png --sigma 0.5 --out clean.png

One module per command (a thin layer over the library), :mod:`.console` for what they share.
argparse lives here and nowhere else in ``models``; nothing here imports Qt. :func:`main` takes an
argument list and returns the exit status, so tests run it in-process. Every failure (unknown preset,
unreadable or malformed model file, bad data, wrong shapes, no CUDA, an argument above its limit) is one
line ``dpm: error: <file>: <problem>`` on stderr and exit status 2, never a traceback (``DPM_DEBUG=1``
shows one for an unexpected error). Threads: cores − 1, at least 1 (:func:`models.runtime.default_threads`),
unless ``--threads N``.

Units: K in bits per the data's unit (``bits/point``, ``bits/seq``, ``bits/pixel`` with colour channels
summed), exact over all T steps on held-out data (models/README.md, **Evaluation protocol**).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Sequence

from ..files import FileError
from ..runtime import configure_threads, resolve_device
from . import condition, denoise, evaluate, info, inpaint, sample, train
from .console import CLIError, Console, fail, one_line, positive_int

__all__ = ["main", "build_parser", "CLIError"]

COMMANDS = {"train": train, "eval": evaluate, "sample": sample, "info": info, "inpaint": inpaint, "denoise": denoise,
            "condition": condition}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (through :class:`CLIError`) instead of exiting."""

    def error(self, message: str):  # noqa: D401
        sub = self.prog.removeprefix("dpm").strip()
        raise CLIError(f"{sub}: {message}" if sub else message)


def _device_args(p, device: bool = True) -> None:
    if device:
        p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N] (default auto)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU threads for torch (default: the cores − 1, at least 1)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dpm", description="Diffusion probabilistic models (Sohl-Dickstein et al. 2015), headless.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in COMMANDS.values():
        mod.add_parser(sub, _device_args)
    return p


def _dispatch(args, argv: list[str]) -> int:
    configure_threads(args.threads)
    console = Console(quiet=getattr(args, "quiet", False), as_json=getattr(args, "json", False))
    if args.command == "info":
        return info.run(args, console)
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        fail(f"--device {args.device}: {e}")
    if args.command == "train":
        return train.run(args, argv, console, device)
    return COMMANDS[args.command].run(args, console, device)


def _run_naming_the_model(args, argv: list[str]) -> int:
    """``info``, ``eval`` and ``sample`` read one model file: an unexpected malformation of its contents
    is reported naming it."""
    try:
        return _dispatch(args, argv)
    except (CLIError, FileError, OSError, MemoryError, KeyboardInterrupt):
        raise
    except (ValueError, TypeError, IndexError, KeyError) as e:
        if os.environ.get("DPM_DEBUG") or args.command not in ("info", "eval", "sample") or not args.model:
            raise
        raise CLIError(f"{args.model}: {type(e).__name__}: {e}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dpm`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status (0 ok, 2 error,
    130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help
            return int(e.code or 0) if not isinstance(e.code, str) else 2
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return _run_naming_the_model(args, argv)
    except (CLIError, FileError) as e:  # CheckpointError, DataError, LockError: they name their file
        msg = str(e)
    except BrokenPipeError:  # `dpm eval ... | head`: stop quietly
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except FileNotFoundError as e:
        msg = f"{e.filename}: no such file or folder" if e.filename else str(e)
    except OSError as e:
        msg = f"{e.filename}: {e.strerror}" if e.filename else str(e)
    except (ValueError, TypeError, RuntimeError, MemoryError) as e:
        if os.environ.get("DPM_DEBUG"):
            raise
        msg = f"{type(e).__name__}: {e}"
    except KeyboardInterrupt:
        print("dpm: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("DPM_DEBUG"):
            raise
        msg = f"internal error ({type(e).__name__}: {e}); run with DPM_DEBUG=1 for a traceback"
    print(f"dpm: error: {one_line(msg)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
