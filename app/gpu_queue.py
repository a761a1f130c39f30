"""The one place that touches the model: a pipeline cache, a first-come GPU queue and the runner.

Several Generate requests may be in flight (Gradio lets a few through); :class:`GpuQueue` runs them
one at a time in arrival order and tells each waiting request its position, so the page can show it.
The per-pipeline lock in :func:`run_generation` also covers callers outside the app (benchmarks). On a ZeroGPU
Space ``spaces.GPU`` wraps the runner; elsewhere the decorator is a no-op.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from fantasy_world.errors import FantasyWorldError
from fantasy_world.pipeline import FantasyWorldPipeline, StepInfo, WorldResult

log = logging.getLogger(__name__)

GPU_DURATION_S = 300

try:  # pragma: no cover - only present on Hugging Face ZeroGPU Spaces
    import spaces

    gpu = spaces.GPU(duration=GPU_DURATION_S)
except ImportError:

    def gpu(fn: Callable[..., Any]) -> Callable[..., Any]:
        """No ZeroGPU here: run on whatever device the pipeline chose."""
        return fn


ENV_NO_COMPILE = "FANTASY_WORLD_NO_COMPILE"  # "1": the studio runs eagerly (python app.py --no-compile)
ENV_KEEP_ENCODERS = "FANTASY_WORLD_KEEP_ENCODERS"  # "1": encoders stay on the GPU (--keep-encoders)
ENV_FP8 = "FANTASY_WORLD_FP8"  # "1": FP8 linears (--fp8); "attention": FP8 attention too (--fp8-attention)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def load_pipeline(name: str, device: str | None = None) -> FantasyWorldPipeline:
    """The studio's loader: the library's defaults (compiled blocks and encoders off the card on CUDA)
    unless switched through the environment (the server's ``--no-compile`` / ``--keep-encoders`` /
    ``--fp8`` / ``--fp8-attention``)."""
    fp8 = os.environ.get(ENV_FP8, "").strip().lower()
    return FantasyWorldPipeline.from_pretrained(
        name,
        device=device,
        compile=not _env_flag(ENV_NO_COMPILE),
        keep_encoders=True if _env_flag(ENV_KEEP_ENCODERS) else None,
        fp8=fp8 == "attention" or _env_flag(ENV_FP8),
        fp8_attention=fp8 == "attention",
    )


class PipelineCache:
    """Keeps the most recently used pipeline loaded (one at a time: a 14B model fills a GPU)."""

    def __init__(self, loader: Callable[[str], FantasyWorldPipeline] | None = None) -> None:
        self._loader = loader or load_pipeline
        self._lock = threading.Lock()
        self._name: str | None = None
        self._pipe: FantasyWorldPipeline | None = None

    def get(self, name: str) -> FantasyWorldPipeline:
        """The pipeline for ``name``; loading errors (FantasyWorldError) reach the caller unchanged."""
        with self._lock:
            if self._pipe is None or self._name != name:
                self._pipe = None
                log.info("loading model %s", name)
                self._pipe = self._loader(name)
                self._name = name
            return self._pipe

    @property
    def loaded_name(self) -> str | None:
        return self._name


class QueueFull(FantasyWorldError):
    """Too many requests are already waiting for the GPU."""


class GpuQueue:
    """First come, first served, ``slots`` at a time; at most ``max_waiting`` wait behind them."""

    def __init__(self, slots: int = 1, max_waiting: int = 16) -> None:
        self.slots = slots
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._waiting: collections.deque[int] = collections.deque()
        self._running: set[int] = set()
        self._ids = itertools.count(1)

    def enter(self) -> Ticket:
        """Join the queue (one-line :class:`QueueFull` when it is full)."""
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(
                    f"the GPU queue is full ({self.max_waiting} requests waiting); try again in a few minutes"
                )
            ticket = Ticket(self, next(self._ids))
            self._waiting.append(ticket.id)
            return ticket

    def position(self, ticket_id: int) -> int:
        """0 once running, else 1 + how many requests are ahead of it; -1 once it has left."""
        with self._cond:
            if ticket_id in self._running:
                return 0
            try:
                return self._waiting.index(ticket_id) + 1
            except ValueError:
                return -1

    def _acquire(self, ticket_id: int, timeout: float) -> bool:
        with self._cond:

            def ready() -> bool:
                return ticket_id in self._running or (
                    len(self._running) < self.slots and self._waiting and self._waiting[0] == ticket_id
                )

            if not self._cond.wait_for(ready, timeout=timeout):
                return False
            if ticket_id not in self._running:
                self._waiting.popleft()
                self._running.add(ticket_id)
            return True

    def _leave(self, ticket_id: int) -> None:
        with self._cond:
            self._running.discard(ticket_id)
            if ticket_id in self._waiting:
                self._waiting.remove(ticket_id)
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)


class Ticket:
    """One request's place in a :class:`GpuQueue`; ``release()`` is safe to call more than once."""

    def __init__(self, queue: GpuQueue, ticket_id: int) -> None:
        self.queue = queue
        self.id = ticket_id

    @property
    def position(self) -> int:
        return self.queue.position(self.id)

    def acquire(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the GPU; True once this request holds it."""
        return self.queue._acquire(self.id, timeout)

    def release(self) -> None:
        self.queue._leave(self.id)


_RUN_LOCKS: weakref.WeakKeyDictionary[FantasyWorldPipeline, threading.Lock] = weakref.WeakKeyDictionary()
_RUN_LOCKS_GUARD = threading.Lock()


def _run_lock(pipe: FantasyWorldPipeline) -> threading.Lock:
    """One lock per pipeline: a pipeline runs one generation at a time; replicas on other GPUs run in parallel."""
    with _RUN_LOCKS_GUARD:
        lock = _RUN_LOCKS.get(pipe)
        if lock is None:
            lock = _RUN_LOCKS[pipe] = threading.Lock()
        return lock


@gpu
def run_generation(
    pipe: FantasyWorldPipeline,
    request: dict[str, Any],
    on_step: Callable[[StepInfo], None] | None,
    cancel: threading.Event | Callable[[], bool],
) -> WorldResult:
    """One generation, holding the GPU slot; returns numpy-only results (safe across ZeroGPU)."""
    with _run_lock(pipe):
        return pipe(**request, on_step=on_step, cancel=cancel)
