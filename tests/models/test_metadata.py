"""models/metadata.py: one writer and one reader of a model file's provenance record."""
from __future__ import annotations

import numpy as np

from models.metadata import ModelMeta, RecordedK, model_meta


class _Data:
    name, kind, unit, source = "pts", "points", "bits/point", "/tmp/pts.npy: 10 points in 2-D"
    example_shape = (2,)


def test_round_trip_keeps_every_field():
    m = model_meta(_Data(), data_path="/tmp/pts.npy", iterations=12, train_seconds=3.5, device="cpu",
                   train_config={"steps": 5}, budget={"steps": 5}, complete=True,
                   recorded=RecordedK(K_bits=1.5, K_stderr_bits=0.1, K_minus_Lnull_bits=4.0, n_eval=100,
                                      unit="bits/point", L_null_bits=-2.5, beta_1=1e-7, cap_bits=20.0),
                   extra={"custom": 1})
    d = m.to_dict()
    assert d["data_source"] == "file" and d["data_path"] == "/tmp/pts.npy" and d["iterations"] == 12
    assert d["K_bits"] == 1.5 and d["n_eval"] == 100 and d["custom"] == 1 and d["world_size"] == 1
    assert "iteration" not in d and "recorded" not in d and "extra" not in d
    assert ModelMeta.from_dict(d) == m


def test_reads_the_keys_older_files_used():
    old_app = {"preset": None, "data": "pts", "unit": "bits/point", "iteration": 40, "data_path": "/x/pts.npy",
               "K_bits": 0.5, "K_minus_Lnull_bits": 2.0, "schedule_source": "named"}
    m = ModelMeta.from_dict(old_app)
    assert m.iterations == 40 and m.data_source == "file" and m.data_path == "/x/pts.npy"
    assert m.recorded is None and m.extra["K_bits"] == 0.5  # a live figure, not an exact K
    old_cli = {"data": "swissroll", "data_source": "preset", "iterations": 7, "K_bits": 2.0, "K_stderr_bits": 0.1,
               "K_minus_Lnull_bits": 6.0, "n_eval": 300, "unit": "bits/point", "complete": True}
    m = ModelMeta.from_dict(old_cli)
    assert m.preset == "swissroll" and m.recorded.K_bits == 2.0 and m.recorded.n_eval == 300
    assert ModelMeta.from_dict({"preset": "heartbeat"}).data_source == "preset"
    assert ModelMeta.from_dict({"drawn_points": [[0.0, 1.0]]}).data_source == "drawn"


def test_values_of_the_wrong_type_are_dropped_not_raised():
    m = ModelMeta.from_dict({"iterations": "many", "K_bits": "x", "K_minus_Lnull_bits": [1], "n_eval": 2.5,
                             "train_config": "no", "example_shape": "2", "display_range": ["a", 1],
                             "data_source": "elsewhere", "complete": "yes"})
    assert m.iterations is None and m.recorded is None and m.train_config is None and m.example_shape is None
    assert m.display_range is None and m.data_source is None and m.complete is None


def test_an_autosave_does_not_carry_a_recorded_K():
    d = {"K_bits": 1.0, "K_minus_Lnull_bits": 2.0, "n_eval": 5, "complete": False}
    assert ModelMeta.from_dict(d).recorded is None
    assert np.isfinite(ModelMeta.from_dict({**d, "complete": True}).recorded.K_bits)
