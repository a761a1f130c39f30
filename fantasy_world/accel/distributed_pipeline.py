"""This rank's pipeline in a several-GPU generation (inside ``torchrun`` / ``--gpus N``).

The Python way to use several GPUs (the CLI's ``--gpus 2`` does the same)::

    # torchrun --nproc_per_node=2 my_script.py
    from fantasy_world.accel.distributed_pipeline import parallel_pipeline

    pipe, env = parallel_pipeline("path/to/model")
    world = pipe("a lighthouse on a cliff", camera="orbit")  # every rank calls it with the same arguments
    if env.rank == 0:
        world.save("out/")

Every rank holds the whole model on ``cuda:LOCAL_RANK``; with two ranks the conditional pass runs on
rank 0 and the negative pass on rank 1 (:class:`GuidanceParallel`), so a guided step costs one pass.
With 4 or 8 ranks each half runs one pass with its video tokens split over its ranks
(:class:`GuidanceSequenceParallel`; the model's heads must divide by the half's size). Every rank ends
with the same latents, and the geometry comes from the conditional half.
"""

from __future__ import annotations

import torch.distributed as dist

from fantasy_world.accel.launch import MAX_GENERATE_RANKS, gloo_cpu_allowed
from fantasy_world.accel.parallel import GuidanceParallel, ParallelEnv, init_distributed
from fantasy_world.accel.sequence_parallel_fantasy import GuidanceSequenceParallel, layout
from fantasy_world.errors import InputError
from fantasy_world.pipeline import FantasyWorldPipeline


def parallel_pipeline(
    name_or_path: str = "tiny", dtype: str = "auto", cpu: bool = False
) -> tuple[FantasyWorldPipeline, ParallelEnv]:
    """Join the process group and load this rank's pipeline; ``cpu=True`` (gloo) needs FANTASY_WORLD_GLOO_CPU=1."""
    if cpu and not gloo_cpu_allowed():
        raise InputError(
            "several processes on the CPU: set FANTASY_WORLD_GLOO_CPU=1 (tests and debugging only)"
        )
    env = init_distributed("gloo" if cpu else None)
    if env.world_size > MAX_GENERATE_RANKS:
        raise InputError(f"{env.world_size} processes: generation uses at most {MAX_GENERATE_RANKS}")
    if env.world_size & (env.world_size - 1):
        raise InputError(f"{env.world_size} processes: expected a power of 2 (2, 4, 8)")
    pipe = FantasyWorldPipeline.from_pretrained(name_or_path, device=env.device, dtype=dtype)
    if env.world_size == 2:
        pipe.guidance_runner = GuidanceParallel()
    elif env.world_size > 2:
        q, heads = env.world_size // 2, pipe.model.cfg.dit.num_heads
        if heads % q:
            raise InputError(
                f"{env.world_size} GPUs: each guidance pass is split over {q} GPUs, which needs the model's "
                f"{heads} attention heads to divide by {q}; use --gpus 2"
            )
        pipe.guidance_runner = GuidanceSequenceParallel(layout(env.world_size, env.rank))
    return pipe, env


def close() -> None:
    """Leave the process group (end of a several-process command)."""
    if dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["close", "parallel_pipeline"]
