"""``--gpus N``: run one command on N GPUs by re-launching it under ``torch.distributed.run``.

Why a re-launch: guidance parallelism needs one process per GPU, joined in a process group. The user
types ``python -m fantasy_world generate ... --gpus 2``; this module checks N against the machine,
starts ``python -m torch.distributed.run --standalone --nproc_per_node=N -m fantasy_world <same args>``
and returns its status. Each rank then builds the pipeline on ``cuda:LOCAL_RANK``, the two guidance
passes run on two ranks (:class:`~fantasy_world.accel.parallel.GuidanceParallel`), and only rank 0
writes the bundle and prints.

Ranks report their exit status through a file (``FANTASY_WORLD_LAUNCH_STATUS``) and exit 0, so a user
mistake found on every rank prints one ``error:`` line (rank 0's) instead of torchrun's failure report.

On a CPU, N > 1 is refused unless ``FANTASY_WORLD_GLOO_CPU=1`` (tests and debugging: gloo, one CPU
process per rank). Two ranks split the guidance passes; 4 or 8 ranks also split each pass's video tokens
(:class:`~fantasy_world.accel.sequence_parallel_fantasy.GuidanceSequenceParallel`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from fantasy_world.errors import InputError

log = logging.getLogger(__name__)

ENV_GLOO_CPU = "FANTASY_WORLD_GLOO_CPU"  # "1": allow --gpus N > 1 on a CPU (gloo; tests, debugging)
ENV_STATUS = "FANTASY_WORLD_LAUNCH_STATUS"  # file where rank 0 writes the command's exit status
MAX_GENERATE_RANKS = 8  # 2 guidance halves x up to 4 sequence-parallel ranks (tested up to 4 on gloo)
# Never turn NVLink multicast on (the machines here keep it off; keep it off where it was not set).
NCCL_DEFAULTS = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}


def under_torchrun() -> bool:
    """True inside a process started by ``torchrun`` / ``torch.distributed.run``."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1")) if under_torchrun() else 1


def rank() -> int:
    return int(os.environ.get("RANK", "0")) if under_torchrun() else 0


def gloo_cpu_allowed() -> bool:
    return os.environ.get(ENV_GLOO_CPU, "").strip().lower() in ("1", "true", "yes")


def wants_cpu(device: str) -> bool:
    """True when ``--device`` puts the run on the CPU (``cpu``, or ``auto`` without CUDA)."""
    d = str(device).strip().lower()
    return d == "cpu" or (d == "auto" and not torch.cuda.is_available())


def check_gpus(
    gpus: int,
    device: str = "auto",
    *,
    visible: int | None = None,
    max_ranks: int = MAX_GENERATE_RANKS,
) -> None:
    """One-line :class:`InputError` when ``--gpus`` cannot run here; nothing for ``--gpus 1``."""
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise InputError(f"--gpus {gpus!r}: expected a whole number of GPUs, at least 1")
    if gpus == 1:
        return
    if gpus & (gpus - 1):
        raise InputError(f"--gpus {gpus}: expected a power of 2 (2, 4, 8): ranks are split in halves")
    if gpus > max_ranks:
        raise InputError(f"--gpus {gpus}: generation uses at most {max_ranks} GPUs")
    d = str(device).strip().lower()
    if wants_cpu(d):
        if not gloo_cpu_allowed():
            raise InputError(
                f"--gpus {gpus}: needs CUDA GPUs, and this run is on the CPU "
                f"(set {ENV_GLOO_CPU}=1 only to test the multi-process path with gloo)"
            )
        return
    if d not in ("auto", "cuda"):
        raise InputError(
            f"--device {device} with --gpus {gpus}: each process uses cuda:LOCAL_RANK; "
            "use --device auto or cuda (limit the GPUs with CUDA_VISIBLE_DEVICES)"
        )
    count = torch.cuda.device_count() if visible is None else visible
    if gpus > count:
        raise InputError(f"--gpus {gpus}: only {count} CUDA GPU(s) visible on this machine")


def relaunch(gpus: int, argv: Sequence[str]) -> int:
    """Run ``python -m fantasy_world <argv>`` on ``gpus`` processes and return rank 0's exit status."""
    with tempfile.TemporaryDirectory(prefix="fw_launch_") as tmp:
        status = Path(tmp) / "status"
        env = dict(os.environ)
        for key, value in NCCL_DEFAULTS.items():
            env.setdefault(key, value)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // gpus)))
        env[ENV_STATUS] = str(status)
        # the ranks import this very package, installed or not (e.g. run from a checkout)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={gpus}",
            "-m",
            "fantasy_world",
            *argv,
        ]
        log.info("running on %d processes: %s", gpus, " ".join(cmd))
        code = subprocess.run(cmd, env=env, check=False).returncode
        if code == 0 and status.is_file():
            return int(status.read_text().strip() or "1")
        return code or 1


def finish_rank(code: int) -> int:
    """Inside a re-launched rank: rank 0 records ``code`` for the parent; every rank exits 0."""
    path = os.environ.get(ENV_STATUS)
    if not path or not under_torchrun():
        return code
    if rank() == 0:
        Path(path).write_text(str(int(code)))
    return 0


def is_main_rank() -> bool:
    """True in a single process and on rank 0 of a several-process run (the one that writes and prints)."""
    return rank() == 0


__all__ = [
    "ENV_GLOO_CPU",
    "MAX_GENERATE_RANKS",
    "check_gpus",
    "finish_rank",
    "is_main_rank",
    "relaunch",
    "under_torchrun",
    "world_size",
]
