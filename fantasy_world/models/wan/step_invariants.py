"""Reuse, across the steps of one generation, what a forward computes from the prompt and camera alone.

Why: each of the 100 forwards of a guided 50-step video projected the same text and image context to
the cross-attention keys and values of all 40 blocks, and the same camera features through the first
layer of 25 camera adapters: ~10 ms of GEMMs per 14B forward (bench/step_parts.py) that depend only on
the prompt, the start image and the camera path, not on the latents or the timestep.

Inside ``with step_invariants(dit):`` a forward looks its context and camera tensors up here by identity
(the same tensor object, unmodified since: its ``_version``) and reuses what an earlier forward built
for them; the results are the same tensors the blocks would compute, so the output does not change.
Only inference uses it (no gradients, eval mode, not while compiling); outside a scope nothing is kept.
The scope is per thread and per model, and bounded (``MAX_ENTRIES``: the prompt, the negative prompt and
the camera), so nothing outlives the generation that entered it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

MAX_ENTRIES = 3  # prompt context, negative-prompt context, camera features

_active = threading.local()  # .caches: dict[id(model), StepInvariants] of this thread's open scopes


@dataclass
class Entry:
    """What was built for one set of input tensors: a value and per-block results filled on demand."""

    keys: tuple[torch.Tensor | None, ...]
    versions: tuple[int, ...]
    value: Any = None
    per_block: dict[int, Any] = field(default_factory=dict)

    def matches(self, keys: tuple[torch.Tensor | None, ...]) -> bool:
        return (
            len(keys) == len(self.keys)
            and all(a is b for a, b in zip(keys, self.keys))
            and (_versions(keys) == self.versions)
        )


def _versions(keys: tuple[torch.Tensor | None, ...]) -> tuple[int, ...]:
    return tuple(-1 if k is None else k._version for k in keys)


class StepInvariants:
    """A bounded least-recently-used store of :class:`Entry` per kind ("context", "camera")."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: list[tuple[str, Entry]] = []  # least recently used first
        self.builds = 0  # entries built (tests and logs: one per new prompt / camera)

    def entry(self, kind: str, keys: tuple[torch.Tensor | None, ...], build: Callable[[], Any]) -> Entry:
        """The entry of ``kind`` for exactly these tensors, built with ``build()`` if there is none."""
        for i, (k, found) in enumerate(self._entries):
            if k == kind and found.matches(keys):
                self._entries.append(self._entries.pop(i))
                return found
        del self._entries[: max(0, len(self._entries) - self.max_entries + 1)]
        made = Entry(keys=keys, versions=_versions(keys), value=build())
        self._entries.append((kind, made))
        self.builds += 1
        return made

    def entries(self, kind: str) -> list[Entry]:
        """The entries of ``kind``, least recently used first."""
        return [e for k, e in self._entries if k == kind]

    def clear(self) -> None:
        """Drop every entry (their memory returns once no forward holds them)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _caches() -> dict[int, StepInvariants]:
    if not hasattr(_active, "caches"):
        _active.caches = {}
    return _active.caches


@contextlib.contextmanager
def step_invariants(model: torch.nn.Module) -> Iterator[StepInvariants]:
    """Open a scope for ``model`` in this thread (nested scopes share the outer one's store)."""
    caches = _caches()
    outer = caches.get(id(model))
    store = outer if outer is not None else StepInvariants()
    caches[id(model)] = store
    try:
        yield store
    finally:
        if outer is None:
            caches.pop(id(model), None)
            store.clear()


def active(model: torch.nn.Module) -> StepInvariants | None:
    """The open store for ``model`` in this thread, or None where reuse must not happen."""
    store = _caches().get(id(model))
    if store is None or model.training or torch.is_grad_enabled() or torch.compiler.is_compiling():
        return None
    return store
