"""``python app.py --gpus N``: one pipeline replica per GPU, so up to N visitors generate at once.

Each GPU gets its own :class:`~app.gpu_queue.PipelineCache` (one model resident per GPU, loaded on first
use). The studio's :class:`~app.gpu_queue.GpuQueue` lets N requests run; each running request leases a
free replica with :meth:`ReplicaPipelines.get` and hands it back with :meth:`release` when its
generation ends. Guidance parallelism is not used here: with many visitors one request per GPU keeps
every GPU busy without any communication.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from app.gpu_queue import PipelineCache, load_pipeline
from fantasy_world.accel.launch import ENV_GLOO_CPU, gloo_cpu_allowed
from fantasy_world.errors import InputError
from fantasy_world.pipeline import FantasyWorldPipeline

Loader = Callable[[str, str], FantasyWorldPipeline]  # (model name, device) -> pipeline


def _load(name: str, device: str) -> FantasyWorldPipeline:
    return load_pipeline(
        name, device
    )  # the studio's switches (--no-compile, --keep-encoders) hold per replica


def replica_devices(gpus: int, visible: int | None = None) -> list[str]:
    """``cuda:0 .. cuda:N-1``; a one-line error when fewer GPUs are visible (CPU replicas only for tests)."""
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise InputError(f"--gpus {gpus!r}: expected a whole number of GPUs, at least 1")
    count = torch.cuda.device_count() if visible is None else visible
    if count == 0:
        if gpus == 1 or gloo_cpu_allowed():
            return ["cpu"] * gpus
        raise InputError(f"--gpus {gpus}: no CUDA GPU visible (set {ENV_GLOO_CPU}=1 only for CPU tests)")
    if gpus > count:
        raise InputError(f"--gpus {gpus}: only {count} CUDA GPU(s) visible on this machine")
    return [f"cuda:{i}" for i in range(gpus)]


class ReplicaPipelines:
    """A drop-in for :class:`PipelineCache` holding one cache per device; ``get`` leases, ``release`` returns."""

    def __init__(self, devices: list[str], loader: Loader | None = None) -> None:
        load = loader or _load
        self.devices = list(devices)
        self._caches = [PipelineCache(lambda name, d=d: load(name, d)) for d in self.devices]
        self._cond = threading.Condition()
        self._free = list(range(len(self.devices)))
        self._leased: dict[int, int] = {}  # id(pipeline) -> replica index

    def get(self, name: str, timeout: float | None = None) -> FantasyWorldPipeline:
        """A free replica with ``name`` loaded (the GPU queue admits at most one request per replica)."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._free), timeout=timeout):
                raise TimeoutError("no free GPU replica")
            i = self._free.pop(0)
        try:
            pipe = self._caches[i].get(name)
        except BaseException:
            with self._cond:
                self._free.insert(0, i)
                self._cond.notify()
            raise
        with self._cond:
            self._leased[id(pipe)] = i
        return pipe

    def release(self, pipe: FantasyWorldPipeline) -> None:
        """Hand a leased replica back (safe to call twice)."""
        with self._cond:
            i = self._leased.pop(id(pipe), None)
            if i is not None:
                self._free.append(i)
                self._cond.notify()

    @property
    def loaded_name(self) -> str | None:
        return next((c.loaded_name for c in self._caches if c.loaded_name), None)

    @property
    def free(self) -> int:
        with self._cond:
            return len(self._free)
