"""Where training batches come from: a streamed dataset, or a bank of clips rendered once on the device.

Both deal the *global* batch (``batch_size × world_size`` clips) in one deterministic order and give each
process its slice, so a run on N processes sees exactly the clips of a 1-process run with an N-times
larger batch, and the position to resume from is one number (stream) or an (epoch, cursor) pair (bank).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch

from fantasy_world.data.clip import Clip
from fantasy_world.errors import InputError
from fantasy_world.training.batch import Batch, collate_clips

log = logging.getLogger(__name__)

ClipGetter = Callable[[int], Clip]


def quantize_frames(frames: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] frames to 8-bit levels, as every stored or generated video is."""
    return (frames.clamp(0, 1) * 255.0).round() / 255.0


class ClipSource(ABC):
    """A resumable stream of :class:`Batch` for one process."""

    batch_size: int
    rank: int
    world_size: int

    @abstractmethod
    def next_batch(self) -> Batch: ...

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def _check_rank(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise InputError(f"rank {self.rank}: expected 0 <= rank < world_size ({self.world_size})")


class StreamSource(ClipSource):
    """Consecutive dataset indices from ``start``: global batch g covers ``[start + g·B·W, ...)``."""

    def __init__(
        self,
        get_clip: ClipGetter,
        batch_size: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ) -> None:
        self.get_clip = get_clip
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.device = device
        self.next_index = start
        self._check_rank()

    def next_batch(self) -> Batch:
        first = self.next_index + self.rank * self.batch_size
        indices = list(range(first, first + self.batch_size))
        clips = [self.get_clip(i) for i in indices]
        self.next_index += self.batch_size * self.world_size
        batch = collate_clips(clips, indices, self.device)
        batch.frames = quantize_frames(batch.frames)
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "stream", "next_index": self.next_index}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "stream":
            raise InputError(f"data state {state}: expected a stream source's state")
        self.next_index = int(state["next_index"])


class ClipBank(ClipSource):
    """Clips ``offset .. offset + size − 1`` rendered once and kept on the device (frames as uint8).

    Batches follow a seeded permutation per epoch. ``time_budget_s`` stops rendering early (the bank is
    then smaller; its size is part of the state, so a resumed run renders the same clips).
    """

    def __init__(
        self,
        get_clip: ClipGetter,
        size: int,
        batch_size: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        offset: int = 0,
        order_seed: int = 0,
        time_budget_s: float | None = None,
    ) -> None:
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.device = device
        self.offset = offset
        self.order_seed = order_seed
        self._check_rank()
        need = batch_size * world_size
        if size < need:
            raise InputError(f"clip bank of {size} clips: expected at least one global batch ({need})")
        self._render(get_clip, size, need, time_budget_s)
        self.epoch, self.cursor = 0, 0
        self._order = self._permutation(0)
        self.latents: torch.Tensor | None = None
        self.text: torch.Tensor | None = None

    def _render(self, get_clip: ClipGetter, size: int, need: int, budget: float | None) -> None:
        t0 = time.perf_counter()
        frames, depth, valid, intr, c2w, captions = [], [], [], [], [], []
        for i in range(size):
            if budget is not None and i >= need and time.perf_counter() - t0 > budget:
                break
            clip = get_clip(self.offset + i)
            if clip.depth is None or clip.valid is None:
                raise InputError(f"clip {clip.source or i}: no depth; training needs depth-annotated clips")
            frames.append((clip.frames.clamp(0, 1) * 255.0).round().to(torch.uint8).to(self.device))
            depth.append(clip.depth.float().to(self.device))
            valid.append(clip.valid.to(self.device))
            intr.append(clip.intrinsics.float().to(self.device))
            c2w.append(clip.c2w.float().to(self.device))
            captions.append(clip.caption)
            if (i + 1) % 250 == 0:
                log.info("clip bank: %d clips rendered in %.1fs", i + 1, time.perf_counter() - t0)
        self.frames, self.depth, self.valid = torch.stack(frames), torch.stack(depth), torch.stack(valid)
        self.intrinsics, self.c2w = torch.stack(intr), torch.stack(c2w)
        self.captions = captions
        self.render_seconds = time.perf_counter() - t0
        log.info("clip bank: %d clips in %.1fs", len(captions), self.render_seconds)

    def __len__(self) -> int:
        return len(self.captions)

    def reset(self, batch_size: int) -> None:
        """Start a new pass (a new training phase) from epoch 0 with ``batch_size`` clips per process."""
        self.batch_size = batch_size
        self.epoch, self.cursor = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.order_seed * 1_000_003 + epoch)
        return torch.randperm(len(self), generator=gen)

    def _global_indices(self) -> list[int]:
        need = self.batch_size * self.world_size
        out: list[int] = []
        while len(out) < need:
            if self.cursor >= len(self):
                self.epoch += 1
                self.cursor = 0
                self._order = self._permutation(self.epoch)
            take = min(need - len(out), len(self) - self.cursor)
            out.extend(int(i) for i in self._order[self.cursor : self.cursor + take])
            self.cursor += take
        return out

    def batch_at(self, indices: Sequence[int]) -> Batch:
        """The bank clips ``indices`` (positions in the bank) as a batch."""
        idx = torch.as_tensor(list(indices), device=self.device)
        return Batch(
            frames=self.frames[idx].float() / 255.0,
            depth=self.depth[idx],
            valid=self.valid[idx],
            intrinsics=self.intrinsics[idx],
            c2w=self.c2w[idx],
            captions=[self.captions[i] for i in indices],
            indices=[self.offset + i for i in indices],
            latents=None if self.latents is None else self.latents[idx],
            text=None if self.text is None else self.text[idx],
        )

    def next_batch(self) -> Batch:
        glob = self._global_indices()
        mine = glob[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return self.batch_at(mine)

    @torch.no_grad()
    def cache_latents(self, encode: Callable[[torch.Tensor], torch.Tensor], chunk: int = 16) -> None:
        """Store ``encode(video [b, 3, T, H, W] in [-1, 1])`` for every clip (call again after the VAE changes)."""
        parts = []
        for start in range(0, len(self), chunk):
            video = self.frames[start : start + chunk].float().div(255.0).permute(0, 2, 1, 3, 4) * 2 - 1
            parts.append(encode(video).float())
        self.latents = torch.cat(parts)

    @torch.no_grad()
    def cache_text(self, encode: Callable[[list[str]], torch.Tensor], chunk: int = 256) -> None:
        """Store caption features for every clip."""
        parts = [encode(self.captions[s : s + chunk]).float() for s in range(0, len(self), chunk)]
        self.text = torch.cat(parts).to(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "bank",
            "offset": self.offset,
            "size": len(self),
            "order_seed": self.order_seed,
            "epoch": self.epoch,
            "cursor": self.cursor,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "bank":
            raise InputError(f"data state {state}: expected a clip bank's state")
        if int(state["size"]) != len(self) or int(state["offset"]) != self.offset:
            raise InputError(
                f"clip bank state for {state['size']} clips from {state['offset']}: this bank has "
                f"{len(self)} from {self.offset}; rebuild it with size={state['size']}"
            )
        self.order_seed = int(state["order_seed"])
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self._order = self._permutation(self.epoch)


class RefreshingBank(ClipBank):
    """A :class:`ClipBank` whose oldest clips are replaced by fresh ones from a :class:`RenderPool`.

    The bank starts with ``size`` clips rendered on the device, grows to ``capacity`` as workers deliver,
    then replaces its oldest slots. :meth:`refresh` is called by the trainer between steps (never blocks);
    it re-encodes latents and caption features of the replaced slots when those caches exist. The data
    position is the first dataset index no worker has been given, so a later run continues with new
    worlds instead of the ones already seen.
    """

    def __init__(
        self,
        get_clip: ClipGetter,
        size: int,
        batch_size: int,
        device: torch.device,
        pool: Any,
        capacity: int,
        rank: int = 0,
        world_size: int = 1,
        offset: int = 0,
        order_seed: int = 0,
        time_budget_s: float | None = None,
        per_refresh: int = 64,
    ) -> None:
        super().__init__(
            get_clip, size, batch_size, device, rank, world_size, offset, order_seed, time_budget_s
        )
        self.pool = pool
        self.capacity = max(capacity, len(self))
        self.per_refresh = per_refresh
        self.arrived = 0
        self._oldest = 0
        self._encode_latents: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._encode_text: Callable[[list[str]], torch.Tensor] | None = None
        self._grow_storage()

    def _grow_storage(self) -> None:
        """Pre-allocate every tensor to ``capacity`` rows so that growing never copies the bank."""
        n, cap = len(self), self.capacity
        for name in ("frames", "depth", "valid", "intrinsics", "c2w"):
            cur = getattr(self, name)
            full = torch.zeros((cap, *cur.shape[1:]), dtype=cur.dtype, device=cur.device)
            full[:n] = cur
            setattr(self, name, full)
        self._size = n

    def __len__(self) -> int:
        return getattr(self, "_size", len(self.captions))

    @torch.no_grad()
    def cache_latents(self, encode: Callable[[torch.Tensor], torch.Tensor], chunk: int = 16) -> None:
        parts = []
        for start in range(0, len(self), chunk):
            stop = min(len(self), start + chunk)
            video = self.frames[start:stop].float().div(255.0).permute(0, 2, 1, 3, 4) * 2 - 1
            parts.append(encode(video).float())
        lat = torch.cat(parts)
        self.latents = torch.zeros((self.capacity, *lat.shape[1:]), dtype=lat.dtype, device=lat.device)
        self.latents[: len(self)] = lat
        self._encode_latents = encode

    @torch.no_grad()
    def cache_text(self, encode: Callable[[list[str]], torch.Tensor], chunk: int = 256) -> None:
        parts = [encode(self.captions[s : s + chunk]).float() for s in range(0, len(self), chunk)]
        text = torch.cat(parts).to(self.device)
        self.text = torch.zeros((self.capacity, *text.shape[1:]), dtype=text.dtype, device=self.device)
        self.text[: len(self)] = text
        self._encode_text = encode

    def _permutation(self, epoch: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.order_seed * 1_000_003 + epoch)
        return torch.randperm(len(self), generator=gen)

    def _global_indices(self) -> list[int]:
        need = self.batch_size * self.world_size
        out: list[int] = []
        while len(out) < need:
            if self.cursor >= len(self._order):
                self.epoch += 1
                self.cursor = 0
                self._order = self._permutation(self.epoch)
            take = min(need - len(out), len(self._order) - self.cursor)
            out.extend(int(i) for i in self._order[self.cursor : self.cursor + take])
            self.cursor += take
        return out

    @torch.no_grad()
    def refresh(self) -> int:
        """Copy in the clips the workers have finished (at most ``per_refresh``); returns how many."""
        clips = self.pool.take(self.per_refresh)
        if not clips:
            return 0
        slots = []
        for clip in clips:
            if len(self) < self.capacity:
                slot = len(self)
                self._size += 1
                self.captions.append(clip.caption)
            else:
                slot = self._oldest
                self._oldest = (self._oldest + 1) % self.capacity
                self.captions[slot] = clip.caption
            slots.append(slot)
            self.frames[slot] = torch.from_numpy(clip.frames).to(self.device, non_blocking=True)
            self.depth[slot] = torch.from_numpy(clip.depth).to(self.device).float()
            self.valid[slot] = torch.from_numpy(clip.valid).to(self.device)
            self.intrinsics[slot] = torch.from_numpy(clip.intrinsics).to(self.device)
            self.c2w[slot] = torch.from_numpy(clip.c2w).to(self.device)
        idx = torch.as_tensor(slots, device=self.device)
        if self.latents is not None and self._encode_latents is not None:
            video = self.frames[idx].float().div(255.0).permute(0, 2, 1, 3, 4) * 2 - 1
            self.latents[idx] = self._encode_latents(video).float()
        if self.text is not None and self._encode_text is not None:
            self.text[idx] = self._encode_text([self.captions[s] for s in slots]).float().to(self.device)
        self.arrived += len(clips)
        return len(clips)

    def batch_at(self, indices: Sequence[int]) -> Batch:
        batch = super().batch_at(indices)
        batch.indices = list(indices)  # slots, not dataset indices: refreshed slots hold other worlds
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "refresh",
            "offset": self.offset,
            "next_index": int(self.pool.first_unrendered),
            "arrived": self.arrived,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "refresh":
            raise InputError(f"data state {state}: expected a refreshing clip bank's state")
        self.arrived = int(state.get("arrived", 0))

    def close(self) -> None:
        self.pool.close()
