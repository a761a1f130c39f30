"""Scaled dot-product attention in the [B, L, H, D] layout Wan uses: the single place to swap backends.

Why a selector: attention is about 70% of a Wan DiT forward at 480p (4·L²·d FLOPs over ~32k tokens), and
which fused kernel runs matters. Backends:

* ``"auto"`` (the default): FlashAttention-3 where it can run (``flash3.py``: an FA3 build installed, an
  sm90 GPU, bf16, no gradients), else PyTorch's own SDPA choice (cuDNN on Hopper with torch 2.11). FA3
  also for the short calls (text and image cross-attention, geometry frame attention): alone cuDNN was a
  little faster there, but inside the compiled model it made the 14B forward 1 % slower (bench issue 12:
  inductor copies q, k, v into the layout cuDNN wants; FA3 reads Wan's [B, L, H, D] directly).
* ``"sdpa"``: PyTorch's own SDPA choice only (what ``"auto"`` was before FA3; benchmarks compare the two).
* ``"fa3"``: FlashAttention-3 only (an error if it cannot take the inputs: meant for benchmarks).
* ``"flash"``, ``"cudnn"``, ``"efficient"``, ``"math"``: that SDPA kernel only (an error if it cannot
  take the inputs: meant for benchmarks).
* ``"cudnn-first"``: cuDNN where it takes the inputs, else flash, efficient, math, in that order.

FP8 attention is not a backend but a per-module switch (``fp8_attention`` on the attention modules, set by
FP8 mode): ``attention(..., fp8=True)`` runs FA3's FP8 kernel where FA3 runs, emulates its roundings on a
CPU, and stays bf16 on other GPUs; calls with fewer than ``FA3_MIN_KEYS`` keys stay bf16 everywhere.

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
from fantasy_world.models.wan import flash3

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
ATTENTION_BACKENDS: tuple[str, ...] = ("auto", "sdpa", "fa3", *_KERNELS)
# FP8 attention only from this many keys on: for the text / image cross-attention (512 / 257 keys) and the
# geometry frame attention (782 keys) FA3's FP8 kernel was no faster than bf16 on an H200 (bench section
# attn), so there it would only add error.
FA3_MIN_KEYS = 1024

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
    if name not in _KERNELS:
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


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    name = _current[0]
    if name not in _KERNELS or q.device.type != "cuda":
        return F.scaled_dot_product_attention(q, k, v)
    with _kernel_context(name):
        return F.scaled_dot_product_attention(q, k, v)


def _wants_fa3(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    name = _current[0]
    if name == "auto":
        return flash3.can_run(q, k, v)
    if name != "fa3":
        return False
    if flash3.can_run(q, k, v):
        return True
    if q.device.type == "cuda":
        raise InputError(
            f"attention backend 'fa3': FlashAttention-3 cannot take {q.dtype} head-dim {q.shape[-1]} inputs on "
            f"{q.device} (loaded: {flash3.source() or 'none'}); expected an installed FA3 build "
            "(pip install fa3-fwd), an sm90 GPU, bf16, head dim <= 256 and no gradients"
        )
    return False


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fp8: bool = False) -> torch.Tensor:
    """Unmasked attention in PyTorch's [B, H, L, D] layout through the selected backend."""
    if fp8 or _wants_fa3(q, k, v):
        return attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), fp8).transpose(1, 2)
    return _sdpa(q, k, v)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fp8: bool = False) -> torch.Tensor:
    """Full (unmasked) attention. q [B, Lq, H, D], k/v [B, Lk, H, D] -> [B, Lq, H, D].

    ``fp8`` (for at least ``FA3_MIN_KEYS`` keys): FA3's FP8 kernel where FA3 runs, its emulation on a
    CPU, plain attention on other GPUs.
    """
    fp8 = fp8 and k.shape[1] >= FA3_MIN_KEYS
    if _wants_fa3(q, k, v):
        return flash3.fp8_attention(q, k, v) if fp8 else flash3.attention(q, k, v)
    if fp8 and q.device.type == "cpu":
        return flash3.emulated_fp8_attention(q, k, v)
    out = _sdpa(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


_sequence_hook: list[Callable[..., torch.Tensor] | None] = [None]


def self_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fp8: bool = False) -> torch.Tensor:
    """Attention of the video tokens among themselves, [B, L, H, D] like :func:`attention`.

    Under :func:`sequence_hook` (sequence parallelism) the tokens are one rank's shard and the hook
    attends over the whole sequence (``fantasy_world.accel.parallel.ulysses_attention``).
    """
    hook = _sequence_hook[0]
    return attention(q, k, v, fp8) if hook is None else hook(q, k, v, fp8=fp8)


@contextlib.contextmanager
def sequence_hook(fn: Callable[..., torch.Tensor]) -> Iterator[None]:
    """Route :func:`self_attention` through ``fn(q, k, v)`` inside the block."""
    previous = _sequence_hook[0]
    _sequence_hook[0] = fn
    try:
        yield
    finally:
        _sequence_hook[0] = previous


def attention_kernel(device: torch.device) -> str:
    """What the long attention calls run on ``device`` under the current backend (recorded in meta.json)."""
    name = _current[0]
    if device.type == "cuda" and name in ("auto", "fa3") and flash3.source():
        return f"FlashAttention-3 ({flash3.source()})"
    return f"PyTorch SDPA ({name})"


flash3.load()
_env = os.environ.get("FW_ATTENTION_BACKEND")
if _env:
    set_attention_backend(_env.strip().lower())
