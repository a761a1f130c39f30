"""Scaled dot-product attention in the [B, L, H, D] layout Wan uses: the single place to swap backends.

Why a selector: attention is about 70% of a Wan DiT forward at 480p (4·L²·d FLOPs over ~32k tokens), and which
fused kernel PyTorch's SDPA picks matters. By default PyTorch takes its FlashAttention-2 kernel on
Hopper; the cuDNN kernel can be faster there. Backends:

* ``"auto"``: PyTorch's own choice (the default; nothing is forced).
* ``"flash"``, ``"cudnn"``, ``"efficient"``, ``"math"``: that SDPA kernel only (an error if it cannot
  take the inputs: meant for benchmarks).
* ``"cudnn-first"``: cuDNN where it takes the inputs, else flash, efficient, math, in that order.

Choose per process with :func:`set_attention_backend` (or the ``FW_ATTENTION_BACKEND`` environment
variable), or for a region with ``with attention_backend(name):``, which also covers SDPA calls made
outside this module (e.g. by third-party models). Forced backends apply on CUDA only; CPU tensors
always use PyTorch's choice.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from fantasy_world.errors import InputError

_KERNELS: dict[str, list[SDPBackend]] = {
    "flash": [SDPBackend.FLASH_ATTENTION],
    "cudnn": [SDPBackend.CUDNN_ATTENTION],
    "efficient": [SDPBackend.EFFICIENT_ATTENTION],
    "math": [SDPBackend.MATH],
    "cudnn-first": [
        SDPBackend.CUDNN_ATTENTION,
        SDPBackend.FLASH_ATTENTION,
        SDPBackend.EFFICIENT_ATTENTION,
        SDPBackend.MATH,
    ],
}
ATTENTION_BACKENDS: tuple[str, ...] = ("auto", *_KERNELS)

_current: list[str] = ["auto"]


def _check(name: str) -> str:
    if name not in ATTENTION_BACKENDS:
        raise InputError(f"attention backend {name!r}: expected one of {', '.join(ATTENTION_BACKENDS)}")
    return name


def set_attention_backend(name: str) -> None:
    """Process-wide backend used by :func:`attention` and :func:`sdpa` on CUDA tensors."""
    _current[0] = _check(name)


def get_attention_backend() -> str:
    return _current[0]


def _kernel_context(name: str) -> contextlib.AbstractContextManager:
    if name == "auto":
        return contextlib.nullcontext()
    kernels = _KERNELS[name]
    if len(kernels) == 1:
        return sdpa_kernel(kernels)
    try:
        return sdpa_kernel(kernels, set_priority=True)
    except TypeError:  # PyTorch without priorities: the listed kernels in PyTorch's own order
        return sdpa_kernel(kernels)


@contextlib.contextmanager
def attention_backend(name: str) -> Iterator[None]:
    """Force ``name`` for every SDPA call in the block (ours and anyone else's), then restore."""
    previous = _current[0]
    _current[0] = _check(name)
    try:
        with _kernel_context(name):
            yield
    finally:
        _current[0] = previous


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Unmasked SDPA in PyTorch's [B, H, L, D] layout through the selected backend."""
    name = _current[0]
    if name == "auto" or q.device.type != "cuda":
        return F.scaled_dot_product_attention(q, k, v)
    with _kernel_context(name):
        return F.scaled_dot_product_attention(q, k, v)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Full (unmasked) attention. q [B, Lq, H, D], k/v [B, Lk, H, D] -> [B, Lq, H, D]."""
    out = sdpa(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


_sequence_hook: list[Callable[..., torch.Tensor] | None] = [None]


def self_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Attention of the video tokens among themselves, [B, L, H, D] like :func:`attention`.

    Under :func:`sequence_hook` (sequence parallelism) the tokens are one rank's shard and the hook
    attends over the whole sequence (``fantasy_world.accel.parallel.ulysses_attention``).
    """
    hook = _sequence_hook[0]
    return attention(q, k, v) if hook is None else hook(q, k, v)


@contextlib.contextmanager
def sequence_hook(fn: Callable[..., torch.Tensor]) -> Iterator[None]:
    """Route :func:`self_attention` through ``fn(q, k, v)`` inside the block."""
    previous = _sequence_hook[0]
    _sequence_hook[0] = fn
    try:
        yield
    finally:
        _sequence_hook[0] = previous


_env = os.environ.get("FW_ATTENTION_BACKEND")
if _env:
    set_attention_backend(_env.strip().lower())
