"""Shared test setup: Qt runs offscreen (the explorer's tests need no display), torch on one thread where a
test asks for it, and hypothesis derandomized when ``CI`` is set (a run on CI is the same run every time)."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci",
    derandomize=True,  # examples drawn from a fixed seed per test: no run-to-run variation
    database=None,  # nothing replayed from an earlier run's failures
    deadline=None,  # a busy CI machine is no reason to fail
    max_examples=50,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test (tiny models are fastest so on a busy 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
