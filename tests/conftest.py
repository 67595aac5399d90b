"""Shared test setup: Qt runs offscreen (no display needed), and torch uses few threads (the test
machine's cores are shared)."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")
