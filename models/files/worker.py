"""A separate Python process that parses untrusted files and can be killed.

A parser in a library we do not control (the HDF5 library, Pillow's image decoders) can loop forever
or crash on a damaged file. Such work runs in a long-lived child interpreter (started on first use,
restarted after a kill) that answers requests over its pipes, so each file costs a round trip, not an
interpreter start, and a parse that takes too long loses only that process (models/README.md,
**Limits**). Used by :mod:`.hdf5` (the probe of every HDF5 file) and :mod:`.images` (every decode of
a user's image).

The protocol: the child prints ``{"ready": true}`` once started; for each request line (JSON) it
writes one or more answer lines (JSON objects). An answer with ``"payload_bytes": n`` is followed by
exactly ``n`` raw bytes, which :meth:`Conversation.receive` returns as ``answer["payload"]``.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["KillableWorker", "Conversation", "WorkerDied", "available", "is_bundled", "WORKER_START_S"]

#: Seconds a new child may take to start (not counted in any parse's time limit).
WORKER_START_S = 120.0
_READ_CHUNK = 1 << 20

_ALL: weakref.WeakSet = weakref.WeakSet()


class WorkerDied(Exception):
    """The child exited (crashed) or wrote something that is not the protocol."""


def available() -> bool:
    """Whether a child interpreter can be used here (a Python executable, and select() on pipes)."""
    return bool(sys.executable) and os.name != "nt"


def is_bundled(p: str | os.PathLike[str]) -> bool:
    """True for the files shipped with the product (:data:`models.paths.RESOURCES`): installed with
    the code, so trusted as the code is, and parsed in this process without a child."""
    from ..paths import RESOURCES

    try:
        return Path(os.path.realpath(p)).is_relative_to(os.path.realpath(RESOURCES))
    except (OSError, ValueError):
        return False


class Conversation:
    """One request's exchange with the child, while its lock is held (see :meth:`KillableWorker.talk`)."""

    def __init__(self, worker: KillableWorker) -> None:
        self._w = worker

    def receive(self, timeout: float) -> dict:
        """The child's next answer (with its payload, if any). Raises :class:`TimeoutError` after
        ``timeout`` seconds and :class:`WorkerDied` when the child exited; the child is killed in both
        cases."""
        return self._w._receive(time.monotonic() + timeout)


class KillableWorker:
    """One child interpreter running ``source()`` (called at each start, so that the source can be
    replaced), with ``env_update`` added to its environment. Requests are serialised."""

    def __init__(self, source: Callable[[], str], *, what: str = "the worker process",
                 env_update: Callable[[dict[str, str]], dict[str, str]] | None = None) -> None:
        self.source, self.what, self.env_update = source, what, env_update
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.buffer = bytearray()
        _ALL.add(self)

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ)
        if self.env_update is not None:
            env = self.env_update(env)
        # -P: no script folder or working directory on sys.path (a stray h5py.py or PIL/ there is never imported)
        flags = ["-P"] if sys.version_info >= (3, 11) else ["-I"]
        self.buffer = bytearray()
        return subprocess.Popen([sys.executable, *flags, "-c", self.source()], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """End the child now (it is restarted by the next request)."""
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                self.proc.wait(5)
            for pipe in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(Exception):
                    pipe.close()
        self.proc = None

    def _readable(self, fd: int, deadline: float) -> bool:
        """Whether ``fd`` has bytes to read, waiting until ``deadline`` at most; past it the child is
        killed and TimeoutError raised."""
        left = deadline - time.monotonic()
        if left <= 0:
            self.kill()
            raise TimeoutError
        ready, _, _ = select.select([fd], [], [], left)
        return bool(ready)

    def _fill_line(self, deadline: float) -> None:
        """Read until the buffer holds a newline."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            if not self._readable(fd, deadline):
                continue
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:  # the child died
                self.kill()
                raise WorkerDied
            self.buffer += chunk

    def _receive(self, deadline: float) -> dict:
        self._fill_line(deadline)
        end = self.buffer.index(b"\n")
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 1]
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            self.kill()
            raise WorkerDied
        n = answer.get("payload_bytes")
        if n is not None:
            if not isinstance(n, int) or n < 0:
                self.kill()
                raise WorkerDied
            answer["payload"] = self._read_payload(n, deadline)
        return answer

    def _read_payload(self, n: int, deadline: float) -> bytearray:
        """The next ``n`` bytes, read straight into one buffer (images are up to hundreds of MB)."""
        out = bytearray(n)
        got = min(n, len(self.buffer))
        out[:got] = self.buffer[:got]
        del self.buffer[:got]
        view, fd = memoryview(out), self.proc.stdout.fileno()
        while got < n:
            if not self._readable(fd, deadline):
                continue
            k = os.readv(fd, [view[got:got + _READ_CHUNK * 8]])
            if not k:
                self.kill()
                raise WorkerDied
            got += k
        return out

    @contextlib.contextmanager
    def talk(self, request: dict) -> Iterator[Conversation]:
        """Send ``request`` to the child (started first if needed; its start is not part of any time
        limit) and hold it for this exchange. Raises :class:`OSError` when no child can be started and
        :class:`WorkerDied` when it exits before reading the request. A conversation left with an
        exception (or with answers unread: say so by raising) kills the child, so the next request
        never reads a stale answer."""
        with self.lock:
            if not self.running:
                self.kill()
                self.proc = self._start()
                try:
                    self._receive(time.monotonic() + WORKER_START_S)
                except TimeoutError:
                    raise OSError(f"{self.what} did not start in {WORKER_START_S:.0f} s") from None
                except WorkerDied:
                    raise OSError(f"{self.what} exited at start") from None
            try:
                self.proc.stdin.write((json.dumps(request) + "\n").encode())
                self.proc.stdin.flush()
            except OSError:
                self.kill()
                raise WorkerDied from None
            try:
                yield Conversation(self)
            except BaseException:
                self.kill()
                raise

    def ask(self, request: dict, timeout: float) -> dict | None:
        """The child's one answer to ``request``; None when it died (crashed); :class:`TimeoutError`
        when it took longer than ``timeout`` seconds (the child is then killed)."""
        try:
            with self.talk(request) as c:
                return c.receive(timeout)
        except WorkerDied:
            return None


@atexit.register
def _kill_all() -> None:
    for w in list(_ALL):
        w.kill()
