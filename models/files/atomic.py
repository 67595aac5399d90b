"""Writing files safely: all-or-nothing replacement that keeps the old file's permissions, clean-up
of what a killed save left behind, and a lock against two writers of one output file.

See models/README.md, **File formats**.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import FileError

__all__ = ["atomic_write", "stale_temporaries", "OutputLock", "LockError", "lock_output"]

#: A temporary file from an older version (no process id in its name) is removed when it is older than this.
_ORPHAN_AGE_S = 600.0


class LockError(FileError):
    """Another live process is writing the same output file."""


def _temp_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(r"\." + re.escape(target.name) + r"\.(?:(\d+)-)?[0-9a-f]{8}\.tmp.*\Z")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Hidden temporary files beside ``path`` left by saves whose process has died (named
    ``.<name>.<pid>-<random>.tmp<ext>``; from older versions ``.<name>.<random>.tmp<ext>``, counted
    stale after ten minutes)."""
    target = Path(os.fspath(path))
    pattern = _temp_pattern(target)
    out = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return []
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if m[1] is not None:
                stale = not _alive(int(m[1]))
            else:
                stale = time.time() - entry.stat(follow_symlinks=False).st_mtime > _ORPHAN_AGE_S
        except OSError:
            continue
        if stale:
            out.append(Path(entry.path))
    return out


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Write a file all-or-nothing: yield a temporary path next to ``path`` to write to.

    The temporary file already exists (empty; open it for writing with truncation) and is named
    ``.<name>.<pid>-<random>.tmp<suffix>`` in the same folder; ``suffix`` defaults to the suffix of
    ``path``, so writers that pick a format from the extension still work. When the block ends
    normally the file gets the permissions of the file it replaces (new files: 0666 less the umask),
    is fsync'ed and ``os.replace``'d onto ``path`` (and the folder fsync'ed where the platform
    allows). When the block raises, the temporary file is removed and any existing file at ``path``
    is left untouched. A process killed mid-write leaves at most a stray hidden temporary file, never
    a partial file at ``path``; the next save to ``path`` removes it.
    """
    target = Path(os.fspath(path))
    directory = target.parent
    ext = target.suffix if suffix is None else suffix
    for old in stale_temporaries(target):
        with contextlib.suppress(OSError):
            old.unlink()
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = None
    while True:
        tmp = directory / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{ext}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        break
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        fd = os.open(tmp, os.O_RDWR | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # no folder fds on Windows
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class OutputLock:
    """An exclusive lock on an output file, held in ``.<name>.lock`` beside it.

    The lock is an advisory ``flock`` on that file, so the operating system releases it when the
    holder dies: a lock file left by a killed process never blocks anyone. The file holds the
    holder's process id and host for the message a refused writer gets, and is removed on release.
    Where ``fcntl`` is missing (Windows) the lock is a no-op.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        target = Path(os.fspath(path))
        self.path = target
        self.lock_path = target.parent / f".{target.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        for _ in range(20):
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise LockError(self.path, f"cannot create the lock file {self.lock_path.name} "
                                           f"({e.strerror or e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = ""
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                os.close(fd)
                who = f" (process {holder})" if holder else ""
                raise LockError(self.path, f"another process{who} is writing this file; refused so the two "
                                           "do not overwrite each other (choose another output, or wait "
                                           "for the other to finish)") from None
            # the file we locked must still be the one at lock_path (a releaser may have removed it)
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except OSError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} on {socket.gethostname()}\n".encode(), 0)
            self._fd = fd
            return self
        raise LockError(self.path, "cannot take the lock beside it (it keeps being replaced)")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_path)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "OutputLock":
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_output(path: str | os.PathLike[str]) -> OutputLock:
    """Take the :class:`OutputLock` of ``path`` (raises :class:`LockError` when a live process holds it);
    use as a context manager or call ``release()``."""
    return OutputLock(path).acquire()
