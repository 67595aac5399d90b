"""The error types every reader raises, and the checks every reader makes before it parses a byte.

Every problem with a file the user gives (missing, not a regular file, too large, damaged, hostile)
raises a :class:`FileError` whose message starts with the file's path and says what is wrong, and
no other exception type; see models/README.md, **File formats** and **Limits**.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = ["FileError", "DataError", "CheckpointError", "MAX_MESSAGE_CHARS", "human_bytes", "listing", "check_regular_file"]

#: Lists inside error messages are cut so that a whole message stays about this short.
MAX_MESSAGE_CHARS = 300


class FileError(ValueError):
    """A file that cannot be read or written; the message names the file.

    Raised as ``FileError(path, problem)``: ``str(e)`` is ``"<path>: <problem>"`` and the two parts are
    kept as ``e.path`` and ``e.problem``. ``FileError(message)`` (one argument) keeps the message as is.
    """

    def __init__(self, path: str | os.PathLike[str] | None, problem: str | None = None) -> None:
        if problem is None:
            self.path, self.problem = None, str(path)
            super().__init__(str(path))
        else:
            self.path = os.fspath(path) if path is not None else None
            self.problem = problem
            super().__init__(f"{self.path}: {problem}")


class DataError(FileError):
    """A data set (a data file, image, folder or preset) cannot be built."""


class CheckpointError(FileError):
    """A model or trajectory file cannot be read or written."""


def human_bytes(n: float) -> str:
    """``n`` bytes as "512 bytes", "3.2 MiB", "7450.6 GiB"."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def listing(names: Iterable[object], limit: int = MAX_MESSAGE_CHARS // 2) -> str:
    """``names`` joined by ", " and cut to about ``limit`` characters: ``"a, b, c … and 99997 more"``;
    ``"none"`` when empty. Reads at most as many names as it shows (plus one)."""
    shown: list[str] = []
    length = 0
    more = 0
    it = iter(names)
    for name in it:
        text = str(name)
        if len(text) > 60:
            text = text[:57] + "…"
        if shown and length + len(text) + 2 > limit:
            more = 1 + sum(1 for _ in it)
            break
        shown.append(text)
        length += len(text) + 2
    if not shown:
        return "none"
    return ", ".join(shown) + (f" … and {more} more" if more else "")


def check_regular_file(path: str | os.PathLike[str], error: type[FileError], *, max_bytes: int | None = None) -> Path:
    """``path`` as a Path if it names an existing, non-empty regular file (symbolic links followed)
    of at most ``max_bytes``; else ``error(path, problem)``. FIFOs, devices, sockets and folders are
    refused here, before anything opens them (opening a FIFO for reading blocks until a writer comes)."""
    p = Path(os.fspath(path)).expanduser()
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(p, "no such file") from None
    except OSError as e:
        raise error(p, f"cannot be read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(p, "is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) else "not a plain file")
        raise error(p, f"is {kind}, not a regular file; only regular files are read")
    if st.st_size == 0:
        raise error(p, "the file is empty")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(p, f"the file is {human_bytes(st.st_size)}; files over {human_bytes(max_bytes)} are refused")
    return p
