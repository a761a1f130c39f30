"""Render synthetic clips in CPU worker processes while the GPU trains.

One clip takes ~1.5 s on one CPU core and ~60 ms on a GPU, but the GPU renderer issues thousands of small
launches per clip from Python, which would steal the training loop's GIL and launch slots. So the clips
that refresh a training bank come from a pool of single-threaded CPU processes (the ``spawn`` start
method: the parent has CUDA initialised) and the training process only copies finished clips in.

Clips arrive in completion order, each tagged with its seed index, so the set of clips a run sees is
fixed by the seed range even though their arrival order is not.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fantasy_world.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class RenderedClip:
    """A clip as compact host arrays: frames uint8 [T, 3, H, W], depth float16 [T, H, W], the rest as is."""

    index: int
    frames: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    intrinsics: np.ndarray
    c2w: np.ndarray
    caption: str


def _worker_loop(split: str, size: tuple[int, int, int], jobs: Any, results: Any) -> None:
    torch.set_num_threads(1)
    from fantasy_world.data.synthetic_dataset import SyntheticWorldDataset

    frames, height, width = size
    ds = SyntheticWorldDataset(split, frames, height, width, device="cpu")
    while True:
        index = jobs.get()
        if index is None:
            return
        clip = ds[index]
        results.put(
            RenderedClip(
                index=index,
                frames=(clip.frames.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy(),
                depth=clip.depth.to(torch.float16).numpy(),
                valid=clip.valid.numpy(),
                intrinsics=clip.intrinsics.numpy(),
                c2w=clip.c2w.numpy(),
                caption=clip.caption,
            )
        )


class RenderPool:
    """``workers`` processes rendering dataset indices ``start, start + stride, ...`` ahead of demand.

    At most ``ahead`` clips are queued or waiting to be taken, so a slow consumer bounds the memory used.
    """

    def __init__(
        self,
        workers: int,
        size: tuple[int, int, int],
        start: int,
        stride: int = 1,
        split: str = "train",
        ahead: int = 256,
    ) -> None:
        if workers < 1:
            raise InputError(f"render pool of {workers} workers: expected at least 1")
        if stride < 1:
            raise InputError(f"render pool stride {stride}: expected at least 1")
        ctx = mp.get_context("spawn")
        self._jobs = ctx.Queue()
        self._results = ctx.Queue(maxsize=max(ahead, workers))
        self.next_index = start
        self.stride = stride
        self._queued = 0
        self._ahead = max(ahead, workers)
        self._procs = [
            ctx.Process(target=_worker_loop, args=(split, size, self._jobs, self._results), daemon=True)
            for _ in range(workers)
        ]
        for proc in self._procs:
            proc.start()
        self._top_up()

    def _top_up(self) -> None:
        while self._queued < self._ahead:
            self._jobs.put(self.next_index)
            self.next_index += self.stride
            self._queued += 1

    def take(self, limit: int) -> list[RenderedClip]:
        """The finished clips (at most ``limit``), without waiting."""
        out: list[RenderedClip] = []
        while len(out) < limit:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                break
        self._queued -= len(out)
        self._top_up()
        return out

    @property
    def first_unrendered(self) -> int:
        """The smallest index not yet handed to a worker (where a later run can continue)."""
        return self.next_index

    def close(self) -> None:
        for _ in self._procs:
            self._jobs.put(None)
        for proc in self._procs:
            proc.join(timeout=2.0)
            if proc.is_alive():
                proc.terminate()
        self._procs = []

    def __del__(self) -> None:  # best effort: worker processes are daemons either way
        try:
            if self._procs:
                self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
