"""The one place that touches the model: a pipeline cache and a single-slot GPU runner.

Gradio's ``concurrency_id="gpu"`` (limit 1) already serialises Generate clicks; the lock here also
covers callers outside Gradio (benchmarks, tests). On a ZeroGPU Space ``spaces.GPU`` wraps the runner;
elsewhere the decorator is a no-op.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

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


class PipelineCache:
    """Keeps the most recently used pipeline loaded (one at a time: a 14B model fills a GPU)."""

    def __init__(self, loader: Callable[[str], FantasyWorldPipeline] | None = None) -> None:
        self._loader = loader or FantasyWorldPipeline.from_pretrained
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


_RUN_LOCK = threading.Lock()


@gpu
def run_generation(
    pipe: FantasyWorldPipeline,
    request: dict[str, Any],
    on_step: Callable[[StepInfo], None] | None,
    cancel: threading.Event,
) -> WorldResult:
    """One generation, holding the GPU slot; returns numpy-only results (safe across ZeroGPU)."""
    with _RUN_LOCK:
        return pipe(**request, on_step=on_step, cancel=cancel)
