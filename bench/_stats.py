"""Small helpers shared by the bench scripts (run as scripts: their own folder is on sys.path)."""
from __future__ import annotations


def pct(values, q: float) -> float:
    """The ``q``-th percentile of ``values`` (nearest rank; NaN when empty)."""
    v = sorted(values)
    if not v:
        return float("nan")
    i = min(len(v) - 1, max(0, int(round(q / 100 * (len(v) - 1)))))
    return v[i]
