"""One call to switch a pipeline to the measured fast paths (opt-in; defaults stay official).

Regional compilation is also the default of ``FantasyWorldPipeline.from_pretrained`` on CUDA
(``compile=True``); ``speed_up(pipe, compile=True)`` compiles a pipeline built another way.

What each switch did on an H200 (bench/RESULTS.md, GPU performance): regional ``torch.compile`` made the
1.3B DiT forward 1.31x and the FantasyWorld conditional pass 1.21x faster (first call pays ~15-35 s);
``uncond_geometry=False`` makes a guided step 0.71x as long but changes the video (the official model
runs the geometry branch in the negative pass too); batching the two passes gained nothing (compute-bound).
``step_cache`` (a threshold) skips steps whose velocity barely drifts; its speed and quality cost on the
tiny model are in bench/RESULTS.md.
"""

from __future__ import annotations

from typing import Any

from fantasy_world.accel.compile import compile_blocks
from fantasy_world.models.wan.attention import set_attention_backend
from fantasy_world.sampling.guidance import BatchedGuidance, SequentialGuidance
from fantasy_world.sampling.step_cache import StepCache, StepCacheConfig


def speed_up(
    pipe: Any,
    *,
    compile: bool = True,
    uncond_geometry: bool = True,
    batched_guidance: bool = False,
    attention: str | None = None,
    step_cache: float | None = None,
) -> Any:
    """Apply the chosen speed-ups to a :class:`FantasyWorldPipeline` in place and return it."""
    if attention is not None:
        set_attention_backend(attention)
    if batched_guidance and not uncond_geometry:
        raise ValueError(
            "batched guidance runs both passes through the full model; keep uncond_geometry=True"
        )
    runner = BatchedGuidance() if batched_guidance else SequentialGuidance(uncond_geometry)
    if step_cache is not None:
        runner = StepCache(runner, StepCacheConfig(threshold=float(step_cache)))
    pipe.guidance_runner = runner
    if compile:
        residency = getattr(getattr(pipe, "loaded", None), "experts", None)
        # two-expert models (Wan2.2): both experts run, each gets its own compiled blocks
        for model in residency.experts.values() if residency is not None else [pipe.model]:
            compile_blocks(model)
    return pipe
