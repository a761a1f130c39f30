"""Caption features for training: the frozen text encoder behind a small cache.

The cache matters on a CPU (MiniLM is the slowest part of a tiny training step) and lets a clip bank
encode each caption once. The empty caption is the "unconditional" input used for classifier-free
guidance dropout, matching the pipeline, which encodes the (empty by default) negative prompt.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

from fantasy_world.models.wan.text_encoder import TextEncoder

NULL_CAPTION = ""


class CaptionEncoder:
    """``encode(captions) -> [B, max_length, dim]`` on ``device`` with an LRU cache of ``capacity`` captions."""

    def __init__(self, encoder: TextEncoder, device: torch.device, capacity: int = 4096) -> None:
        self.encoder = encoder
        self.device = device
        self.capacity = capacity
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    @torch.no_grad()
    def encode(self, captions: Sequence[str], chunk: int = 256) -> torch.Tensor:
        missing = [c for c in dict.fromkeys(captions) if c not in self._cache]
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]
            feats = self.encoder.encode(part, device=self.device).float()
            for caption, f in zip(part, feats):
                self._cache[caption] = f
        out = []
        for c in captions:
            self._cache.move_to_end(c)
            out.append(self._cache[c])
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return torch.stack(out)

    def null(self, batch: int = 1) -> torch.Tensor:
        """Features of the empty caption, repeated ``batch`` times."""
        return self.encode([NULL_CAPTION]).expand(batch, -1, -1)
