"""Wan's feed-forward input layer and its tanh-GELU as one cuBLASLt GEMM (bias and GELU in the epilogue).

Why: the feed-forward is ``Linear(dim → ffn_dim) → GELU(tanh) → Linear``. Inductor cannot fuse an
element-wise op into a cuBLAS GEMM, so a compiled block wrote the hidden activation (16k × 13,824 bf16,
451 MB, for the 14B model at 336×592×81), read it back for the GELU and wrote it again: ~0.9 GB of memory
traffic per block, 40 times a forward. cuBLASLt's ``GELU_BIAS`` epilogue (``torch._addmm_activation``)
adds the bias and applies the tanh-GELU to the float32 accumulator before its single bf16 rounding, so
the result is also one rounding closer to float32 than the two-step form (GEMM rounded to bf16, then GELU).

A custom op, so that inductor keeps it as one extern call (it would otherwise see through it). Used only
where it pays and cannot change training: CUDA, bf16 weights and inputs, no gradients. Elsewhere (CPU,
float32, FP8 linears, training) the module's own layers run as before. ``FW_GELU_EPILOGUE=0`` switches it
off for the process (benchmarks compare both).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from fantasy_world.quant import fp8_gelu

# Read once: compiled code sees a constant. ``set_enabled`` is for benchmarks (reset dynamo after it).
_enabled: list[bool] = [os.environ.get("FW_GELU_EPILOGUE", "1").strip() != "0"]


def set_enabled(on: bool) -> None:
    """Switch the fused path on or off for the process (compiled blocks keep what they traced)."""
    _enabled[0] = bool(on)


def enabled() -> bool:
    return _enabled[0]


@torch.library.custom_op("fantasy_world::linear_gelu_tanh", mutates_args=())
def linear_gelu_tanh(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``gelu(x @ weight.T + bias, approximate="tanh")`` for x [..., in], weight [out, in], bias [out]."""
    if x.is_cuda:
        out = torch._addmm_activation(bias, x.reshape(-1, x.shape[-1]), weight.t(), use_gelu=True)
        return out.view(*x.shape[:-1], weight.shape[0])
    return F.gelu(F.linear(x, weight, bias), approximate="tanh")


@linear_gelu_tanh.register_fake
def _linear_gelu_tanh_fake(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return x.new_empty(*x.shape[:-1], weight.shape[0])


def _on_gpu(x: torch.Tensor) -> bool:
    """Where cuBLASLt runs the fused epilogue (a function of its own so CPU tests can route through it)."""
    return x.is_cuda


def fusable(ffn: nn.Sequential, x: torch.Tensor) -> bool:
    """True when ``ffn`` is (plain bf16 Linear with bias, tanh-GELU, ...) and ``x`` a bf16 CUDA input
    outside autograd: the cases where the fused GEMM runs and changes nothing but speed and one rounding."""
    first, act = ffn[0], ffn[1]
    return (
        _enabled[0]
        and _on_gpu(x)
        and x.dtype == torch.bfloat16
        and type(first) is nn.Linear
        and first.bias is not None
        and first.weight.dtype == torch.bfloat16
        and isinstance(act, nn.GELU)
        and act.approximate == "tanh"
        and not torch.is_grad_enabled()
    )


def feed_forward(ffn: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``ffn(x)`` for Wan's (Linear, GELU(tanh), Linear), with the first two fused where :func:`fusable`;
    in FP8 mode the GELU and the hidden rows' quantisation are one kernel instead (``quant/fp8_gelu.py``)."""
    if fp8_gelu.fusable(ffn, x):
        return fp8_gelu.feed_forward(ffn, x)
    if not fusable(ffn, x):
        return ffn(x)
    first, _, last = ffn
    return last(linear_gelu_tanh(x, first.weight, first.bias))
