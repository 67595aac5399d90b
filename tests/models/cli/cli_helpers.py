"""Helpers for the tests of the ``dpm`` commands (imported by name: pytest puts this folder on sys.path)."""
from __future__ import annotations

#: a tiny run: T = 10, 300 held-out examples, no progress, one thread
FAST = ["--T", "10", "--n-eval", "300", "--quiet", "--threads", "1"]


def assert_one_error_line(rc: int, err: str, *needles: str) -> None:
    """Exit status 2 and exactly one line ``dpm: error: …`` containing every needle."""
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dpm: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
