"""models/runtime.py: the thread rule, devices and generators."""
from __future__ import annotations

import pytest
import torch

from models import runtime


def test_thread_rule_is_cores_minus_one_at_least_one(monkeypatch):
    monkeypatch.delenv("DPM_THREADS", raising=False)
    for cores, want in ((1, 1), (2, 1), (8, 7)):
        monkeypatch.setattr(runtime, "available_cores", lambda c=cores: c)
        assert runtime.default_threads() == want
    monkeypatch.setenv("DPM_THREADS", "3")
    assert runtime.default_threads() == 3
    monkeypatch.setenv("DPM_THREADS", "zero")
    assert runtime.default_threads() == 7


def test_configure_threads_sets_torch(monkeypatch):
    n = torch.get_num_threads()
    try:
        assert runtime.configure_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(runtime, "default_threads", lambda: 2)
        assert runtime.configure_threads() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(n)


def test_devices_and_generators():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="tpu"):
        runtime.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            runtime.resolve_device("cuda")
    a = torch.rand(3, generator=runtime.make_generator("cpu", 5))
    assert torch.equal(a, torch.rand(3, generator=runtime.make_generator("cpu", 5)))
