"""Card-to-host copies of large results through pinned memory.

Why: a copy from the card into ordinary (pageable) host memory goes through the driver's small staging
buffer; on the H200 host it ran at ~1.3 GB/s, so the geometry read-out of one 81×336×592 video (385 MB of
depth, points and confidences) took 0.37 s. A copy into page-locked memory runs at the bus's speed
(64 MB in 1.3 ms there) and PyTorch's pinned allocator caches the buffer between calls; the result is then
copied once more into ordinary memory on the host, so no caller ever holds page-locked memory.
"""

from __future__ import annotations

import numpy as np
import torch


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """``t.cpu().numpy()``; for a CUDA tensor through pinned memory, into a new array in ordinary memory."""
    if t.device.type != "cuda":
        return t.detach().cpu().numpy()
    stage = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    stage.copy_(t.detach())
    out = np.empty(tuple(t.shape), dtype=stage.numpy().dtype)
    np.copyto(out, stage.numpy())
    return out
