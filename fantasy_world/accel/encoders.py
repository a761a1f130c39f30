"""Frozen encoders that leave the card once used: weights live in host memory, on the card only while used.

Why: the text encoder (umT5-XXL, 11 GB in bf16) and the CLIP image tower (1.3 GB) run once per new
prompt or start image, yet they stayed on the card through the whole denoising loop; on one H200 the
full-size image-to-world pipeline peaked at 51.4 GiB with them resident (issue 12), above a 48 GB card.

:class:`HostResident` keeps one host copy of every parameter and buffer (pinned when the card is a CUDA
device, so the copy to the card is a fast DMA) and points the module at device copies only inside
``with resident.on_device():``. Leaving the block drops the device copies (the frozen weights never
change, so nothing is copied back); the caching allocator reuses their memory in stream order, after
the kernels that read them. Nested blocks load once.

With ``stream_blocks=True`` (the text encoder) a module's ``blocks`` are not loaded all at once: each
block is copied to the card just before it runs and dropped after it (``BlockSwap``, one block
prefetched), so a visit adds one or two umT5 layers (0.5 GB each) to the card, not 11 GB, while the
14B DiT stays resident. The embedding table and the other small parts visit whole.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
from torch import nn

from fantasy_world.accel.offload import BlockSwap, SwapUnit

log = logging.getLogger(__name__)


class HostResident:
    """Keeps ``module``'s weights on the host; ``on_device()`` brings them to ``device`` for a block."""

    def __init__(self, module: nn.Module, device: torch.device | str, stream_blocks: bool = False) -> None:
        self.module = module
        self.device = torch.device(device)
        self.loads = 0  # how many times the weights went to the device (tests, logs)
        self._depth = 0
        self.swap: BlockSwap | None = None
        blocks = getattr(module, "blocks", None) if stream_blocks else None
        if isinstance(blocks, nn.ModuleList) and len(blocks):
            self.swap = BlockSwap([SwapUnit(b, [b]) for b in blocks], self.device, prefetch=1)
        streamed = set() if self.swap is None else {id(p) for s in self.swap._slots for p in s.params}
        self._tensors: list[torch.Tensor] = [
            t for t in (*module.parameters(), *module.buffers()) if id(t) not in streamed
        ]
        pin = self.device.type == "cuda"
        self._host: list[torch.Tensor] = []
        with torch.no_grad():
            for t in self._tensors:
                host = t.data.to("cpu")
                if pin:
                    try:
                        host = host.pin_memory()
                    except RuntimeError as exc:  # pinned memory can run out; pageable copies still work
                        log.warning("pinned host memory unavailable (%s); using pageable memory", exc)
                        pin = False
                self._host.append(host)
                t.data = host
        self.host_bytes = sum(h.numel() * h.element_size() for h in self._host)
        if self.swap is not None:
            self.host_bytes += self.swap.host_bytes

    @property
    def on_card(self) -> bool:
        return self._depth > 0

    @contextlib.contextmanager
    def on_device(self) -> Iterator[nn.Module]:
        """The module with its weights on the device for the block; back on the host afterwards."""
        if self._depth == 0:
            self.loads += 1
            with torch.no_grad():
                for t, host in zip(self._tensors, self._host):
                    t.data = self._to_device(host)
        self._depth += 1
        try:
            yield self.module
        finally:
            self._depth -= 1
            if self._depth == 0:
                with torch.no_grad():
                    for t, host in zip(self._tensors, self._host):
                        t.data = host
                if self.swap is not None:  # drop the block prefetched for a next run
                    self.swap._gpu.clear()
                    self.swap._ready.clear()

    def _to_device(self, host: torch.Tensor) -> torch.Tensor:
        return host.to(self.device, non_blocking=True)

    def restore(self) -> None:
        """Put the weights back on the device for good (``keep_encoders`` switched back on)."""
        if self.swap is not None:
            self.swap.remove(self.device)
            self.swap = None
        with torch.no_grad():
            for t, host in zip(self._tensors, self._host):
                t.data = self._to_device(host)
        self._depth = 0


def on_device(resident: HostResident | None) -> contextlib.AbstractContextManager:
    """``resident.on_device()``, or a no-op for an encoder that stays on the card."""
    return contextlib.nullcontext() if resident is None else resident.on_device()
