"""Precision policy of the geometry heads and the camera pose encoder (issue 18).

Why: with bf16 weights these modules ran every op in bf16, so norms, residual sums, the DPT fusion and
the final ``exp``/``inv_log`` activations all rounded to 8 significant bits, and their outputs were
further from fp32 than the official code's, which runs them under CUDA autocast. This module gives that
idea one explicit, device-independent form: the context :func:`compute_precision`, which the heads and
the pose encoder enter in their ``forward``. Inside it, with low-precision weights:

* ``"mixed"``: matmul-class ops (linear, convolutions, attention) run in the weights' dtype (bf16 tensor
  cores, fp32 accumulation) and hand their result on in float32, so everything between them (norms,
  residual sums of the DPT fusion, pos-embeds, interpolation, activations) runs in float32. Used by the
  DPT heads, where the convolutions are the cost.
* ``"fp32"``: every op in float32, with bf16 weights upcast where they are used. Used where the compute
  is small: the camera head (one token per frame), the pose encoder, and the DPT output convolutions and
  activations.

Norm-type ops (layer/group norm, ``normalize``, softmax, ``exp``) always get float32 inputs there, and
explicit down-casts of float32 values (``x.to(bf16)``) are ignored: the region alone decides where values
are rounded. That lets shared code such as :class:`GeometryBlock`, which casts to its weights' dtype
before a matmul when it runs outside a region (the geometry trunk), run in float32 in the camera head.

With float32 weights the context does nothing, so float32 results are bit-identical with or without it.
The DiT and the geometry trunk never enter it (a TorchFunctionMode costs a few microseconds per op: fine
once per video, not for blocks that run every step and are compiled); the trunk keeps its own fp32
residual stream with :func:`layer_norm_fp32` (see :class:`GeometryBlock`), which is what feeds the heads
fp32 tokens. :func:`precision_policy` overrides the policy for a block of code: ``"plain"`` (every head
op in the weights' dtype, as before issue 18) or ``"fp32"`` (every region in float32: the upper bound),
for benchmarks and tests.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

from fantasy_world.errors import InputError

Precision = Literal["mixed", "fp32"]
POLICIES: tuple[str, ...] = ("on", "plain", "fp32")

LOW_PRECISION: tuple[torch.dtype, ...] = (torch.bfloat16, torch.float16)
_MATMUL = frozenset(
    {
        F.linear,
        torch.conv1d,
        torch.conv2d,
        torch.conv3d,
        torch.conv_transpose1d,
        torch.conv_transpose2d,
        torch.conv_transpose3d,
        F.scaled_dot_product_attention,
        torch.matmul,
        torch.Tensor.matmul,
        torch.Tensor.__matmul__,
        torch.bmm,
        torch.Tensor.bmm,
    }
)
_ANY_KERNEL = [
    SDPBackend.CUDNN_ATTENTION,
    SDPBackend.FLASH_ATTENTION,
    SDPBackend.EFFICIENT_ATTENTION,
    SDPBackend.MATH,
]
_FLOAT32 = frozenset(
    {
        F.layer_norm,
        F.group_norm,
        F.normalize,
        F.softmax,
        torch.softmax,
        torch.Tensor.softmax,
        torch.exp,
        torch.Tensor.exp,
        torch.expm1,
        torch.Tensor.expm1,
    }
)


class _State(threading.local):
    def __init__(self) -> None:
        self.policy: list[str] = ["on"]
        self.region: _Region | None = None


_state = _State()


def _cast(value: object, dtype: torch.dtype) -> object:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() and value.dtype != dtype else value
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _cast(v, dtype) for k, v in value.items()}
    return value


class _Region(TorchFunctionMode):
    """Casts the floating inputs of torch calls: matmul-class ops to the region's compute dtype (the
    weights' dtype in ``"mixed"``, float32 in ``"fp32"``), norm-type ops to float32. Other ops follow
    PyTorch's type promotion, so once a value is float32 it stays float32 until the next matmul."""

    def __init__(self, storage: torch.dtype, precision: Precision) -> None:
        super().__init__()
        self.storage = storage
        self.stack: list[Precision] = [precision]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _MATMUL:
            if self.stack[-1] == "fp32":
                args, kwargs = _cast(args, torch.float32), _cast(kwargs, torch.float32)
                if func is F.scaled_dot_product_attention:  # a forced fused kernel may not take fp32
                    with sdpa_kernel(_ANY_KERNEL):
                        return func(*args, **kwargs)
                return func(*args, **kwargs)
            out = func(*_cast(args, self.storage), **_cast(kwargs, self.storage))
            return out.float() if isinstance(out, torch.Tensor) else out
        if func in _FLOAT32:
            return func(*_cast(args, torch.float32), **_cast(kwargs, torch.float32))
        out = func(*args, **kwargs)
        if func is torch.Tensor.to and _is_downcast(args[0], out):
            return args[0]  # the region alone decides where values are rounded
        return out


def _is_downcast(src: object, out: object) -> bool:
    return (
        isinstance(src, torch.Tensor)
        and isinstance(out, torch.Tensor)
        and src.dtype == torch.float32
        and out.dtype in LOW_PRECISION
        and out.device == src.device
    )


def layer_norm_fp32(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` computed and returned in float32 whatever the dtypes of ``x`` and the affine weights;
    for float32 inputs and weights exactly ``norm(x)``. For code that must not enter a region (compiled
    blocks such as the geometry trunk)."""
    w = None if norm.weight is None else norm.weight.float()
    b = None if norm.bias is None else norm.bias.float()
    return F.layer_norm(x.float(), norm.normalized_shape, w, b, norm.eps)


def storage_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of ``module``'s first floating parameter (float32 for a module without one)."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _applies(module: nn.Module) -> bool:
    return storage_dtype(module) in LOW_PRECISION and _state.policy[-1] != "plain"


def compute_dtype(module: nn.Module) -> torch.dtype:
    """Dtype of the values between matmuls inside :func:`compute_precision` for ``module``: float32 for
    low-precision weights (unless the policy is ``"plain"``), else the weights' dtype."""
    return torch.float32 if _applies(module) else storage_dtype(module)


@contextlib.contextmanager
def compute_precision(module: nn.Module, precision: Precision) -> Iterator[None]:
    """Run the block under the policy for ``module``'s weights (see the module docstring).

    An inner region (e.g. ``"fp32"`` inside ``"mixed"``) takes over until it exits. A no-op for float32
    or float64 weights and under ``precision_policy("plain")``.
    """
    if not _applies(module):
        yield
        return
    if _state.policy[-1] == "fp32":
        precision = "fp32"
    region = _state.region
    if region is not None:
        region.stack.append(precision)
        try:
            yield
        finally:
            region.stack.pop()
        return
    region = _Region(storage_dtype(module), precision)
    _state.region = region
    try:
        with region:
            yield
    finally:
        _state.region = None


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Override the policy in this thread for a block: ``"on"`` (default), ``"plain"`` or ``"fp32"``."""
    if name not in POLICIES:
        raise InputError(f"precision policy {name!r}: expected one of {', '.join(POLICIES)}")
    _state.policy.append(name)
    try:
        yield
    finally:
        _state.policy.pop()
