"""Frozen encoders that leave the card once used: weights live in host memory, on the card only while used.

Why: the text encoder (umT5-XXL, 11 GB in bf16) and the CLIP image tower (1.3 GB) run once per new
prompt or start image, yet they stayed on the card through the whole denoising loop; on one H200 the
full-size image-to-world pipeline peaked at 51.4 GiB with them resident (issue 12), above a 48 GB card.

:class:`HostResident` keeps one host copy of every parameter and buffer (pinned when the card is a CUDA
device, so the copy to the card is a fast DMA) and points the module at device copies only inside
``with resident.on_device():``. Leaving the block drops the device copies (the frozen weights never
change, so nothing is copied back); the caching allocator reuses their memory in stream order, after
the kernels that read them. Nested blocks load once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
from torch import nn

log = logging.getLogger(__name__)


class HostResident:
    """Keeps ``module``'s weights on the host; ``on_device()`` brings them to ``device`` for a block."""

    def __init__(self, module: nn.Module, device: torch.device | str) -> None:
        self.module = module
        self.device = torch.device(device)
        self.loads = 0  # how many times the weights went to the device (tests, logs)
        self._depth = 0
        self._tensors: list[torch.Tensor] = [*module.parameters(), *module.buffers()]
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

    def _to_device(self, host: torch.Tensor) -> torch.Tensor:
        return host.to(self.device, non_blocking=True)

    def restore(self) -> None:
        """Put the weights back on the device for good (``keep_encoders`` switched back on)."""
        with torch.no_grad():
            for t, host in zip(self._tensors, self._host):
                t.data = self._to_device(host)
        self._depth = 0


def on_device(resident: HostResident | None) -> contextlib.AbstractContextManager:
    """``resident.on_device()``, or a no-op for an encoder that stays on the card."""
    return contextlib.nullcontext() if resident is None else resident.on_device()
