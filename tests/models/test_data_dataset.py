"""Tests for models/data/dataset.py: the normalisation."""
import json

import numpy as np
import pytest
import torch

from models.data import Normalization


# ------------------------------------------------------------------------------------------------
# normalization


def test_normalization_round_trips():
    n = Normalization(0.3, 0.2, 256)
    v32 = np.linspace(0, 1, 11, dtype=np.float32)
    z = n.forward(v32)
    assert z.dtype == np.float32
    np.testing.assert_allclose(n.inverse(z), v32, atol=1e-6)
    t = torch.linspace(0, 1, 11)
    assert n.forward(t).dtype == torch.float32
    assert torch.allclose(n.inverse(n.forward(t)), t, atol=1e-6)
    p = Normalization((1.0, -2.0), 3.0, None)
    np.testing.assert_allclose(p.forward(np.array([[4.0, 1.0]])), [[1.0, 1.0]])
    assert torch.allclose(p.inverse(torch.tensor([[1.0, 1.0]])), torch.tensor([[4.0, 1.0]]))
    for norm in (n, p, Normalization.identity()):
        assert Normalization.from_dict(json.loads(json.dumps(norm.to_dict()))) == norm
    assert Normalization.identity().is_identity
    with pytest.raises(ValueError):
        Normalization(0.0, 0.0, None)
    with pytest.raises(ValueError, match="unknown"):
        Normalization.from_dict({"mean": 0, "std": 1, "levels": None, "extra": 1})
