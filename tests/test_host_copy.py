"""Result copies to the host (``utils/host_copy.py``) and the read-out's point mapping (CPU)."""

from __future__ import annotations

import numpy as np
import torch

from fantasy_world.readout import _to_first_camera
from fantasy_world.utils.host_copy import to_numpy


def test_to_numpy_returns_an_independent_equal_array() -> None:
    t = torch.arange(24, dtype=torch.float32).view(2, 3, 4)
    out = to_numpy(t.permute(2, 0, 1))
    np.testing.assert_array_equal(out, t.permute(2, 0, 1).numpy())
    assert out.dtype == np.float32 and out.shape == (4, 2, 3)
    assert to_numpy(torch.zeros(3, dtype=torch.uint8)).dtype == np.uint8


def test_points_are_mapped_in_float64_whatever_the_chunking() -> None:
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(5, 4, 6, 3, generator=g) * 100
    a = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))[0]
    to_first = torch.eye(4, dtype=torch.float64)
    to_first[:3, :3], to_first[:3, 3] = a, torch.tensor([1.5, -2.0, 0.25], dtype=torch.float64)
    want = (pts.double() @ a.T + to_first[:3, 3]).float().numpy()
    for chunk in (1, 2, 16):
        got = _to_first_camera(pts, to_first, chunk=chunk)
        assert got.dtype == np.float32 and got.shape == pts.shape
        np.testing.assert_array_equal(got, want)
