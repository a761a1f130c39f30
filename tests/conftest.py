"""Fixtures shared by the CPU test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models and many small elementwise ops: on a busy 2-core box, intra-op thread spin-waits
    dominate, so modules that opt in (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``) run
    single-threaded and restore the thread count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
