"""The middle of an FP8 feed-forward in one pass on a GPU: tanh-GELU of the hidden rows and their e4m3 quantisation.

Why: in FP8 mode Wan's feed-forward is FP8 GEMM (bf16 out) -> tanh-GELU -> per-row quantisation -> FP8 GEMM.
Compiled, inductor fused the GELU and the quantisation into one kernel, but as a looped reduction over the
13,824 hidden columns of the 14B model: it read each row twice and took 0.82 ms per block on an H200,
~0.8 TB/s (``bench/step_parts.py --only profile``), the largest element-wise kernel of the FP8 block. The
Triton kernel here holds a whole row in registers, so it reads the bf16 hidden activation once and writes
the e4m3 rows and their scales once: 0.31 ms against 0.72 ms for inductor's kernel at that shape, and the
14B forward cut to 4 blocks went from 1.22x to 1.25x bf16 in FP8 (1.30x to 1.35x with FP8 attention), same
call (``bench/results/issue12_h200_2026-12-03_s5_fp8ffn.json``).

Numerics are those of the unfused modules: the GELU in float32 from the bf16 GEMM output, rounded to bf16
(what ``nn.GELU`` returns for bf16), then :func:`~fantasy_world.quant.fp8_linear.quantize_rows`. The CPU
form of the op (and its form where Triton is missing) is exactly those torch expressions.

Used (``linear_gelu.feed_forward``) where it changes nothing but speed: a CUDA bf16 input, both linears
FP8 with ``_scaled_mm`` allowed, tanh-GELU, no gradients. ``FW_FP8_GELU=0`` switches it off for the process.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from fantasy_world.quant import fp8_linear
from fantasy_world.quant.fp8_linear import (
    AMAX_FLOOR,
    FP8_DTYPE,
    FP8_MAX,
    FP8Linear,
    fp8_gemm_rows,
    quantize_rows,
)
from fantasy_world.utils.triton_import import tl, triton, triton_runs

# Read once: compiled code sees a constant. ``set_enabled`` is for benchmarks (reset dynamo after it).
_enabled: list[bool] = [os.environ.get("FW_FP8_GELU", "1").strip() != "0"]


def set_enabled(on: bool) -> None:
    """Switch the fused kernel on or off for the process (compiled blocks keep what they traced)."""
    _enabled[0] = bool(on)


def reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unfused expressions: ``quantize_rows(gelu_tanh(x))`` for bf16 x [M, N]."""
    return quantize_rows(F.gelu(x, approximate="tanh"))


if triton is not None:

    @triton.jit
    def _gelu_quantize_kernel(x_ptr, q_ptr, scale_ptr, n, floor, fp8_max, BLOCK: tl.constexpr):
        # one program per row, the whole row in registers: one read, one write
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + row * n + offs, mask=mask, other=0.0).to(tl.float32)
        inner = 0.7978845608028654 * (x + 0.044715 * (x * x * x))  # sqrt(2/pi) (x + 0.044715 x^3)
        # 0.5 x (1 + tanh(inner)) written as x * sigmoid(2 inner): the same value, no libdevice call
        g = (x / (1.0 + tl.exp(-2.0 * inner))).to(tl.bfloat16).to(tl.float32)  # nn.GELU's bf16 output
        scale = tl.maximum(tl.max(tl.abs(g)), floor) / fp8_max
        q = tl.minimum(tl.maximum(g / scale, -fp8_max), fp8_max)
        tl.store(q_ptr + row * n + offs, q.to(tl.float8e4nv), mask=mask)
        tl.store(scale_ptr + row, scale)


def _warps(n: int) -> int:
    """16 warps for the 14B hidden row (13,824 wide, 16,384 padded lanes), fewer for narrower rows."""
    return max(4, min(16, triton.next_power_of_2(n) // 1024))


def _launch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    m, n = x.shape
    x = x.contiguous()
    q = torch.empty(m, n, dtype=FP8_DTYPE, device=x.device)
    scale = torch.empty(m, 1, dtype=torch.float32, device=x.device)
    with torch.cuda.device(x.device):
        _gelu_quantize_kernel[(m,)](
            x, q, scale, n, AMAX_FLOOR, FP8_MAX, BLOCK=triton.next_power_of_2(n), num_warps=_warps(n)
        )
    return q, scale


@torch.library.custom_op("fantasy_world::gelu_tanh_quantize_rows", mutates_args=())
def gelu_tanh_quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """bf16 x [M, N] -> (e4m3 [M, N], fp32 scale [M, 1]) of ``gelu_tanh(x)``, one scale per row."""
    if triton_runs(x):
        return _launch(x)
    return reference(x)


@gelu_tanh_quantize_rows.register_fake
def _gelu_tanh_quantize_rows_fake(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    m, n = x.shape
    return x.new_empty(m, n, dtype=FP8_DTYPE), x.new_empty(m, 1, dtype=torch.float32)


def _on_gpu(x: torch.Tensor) -> bool:
    """Where the Triton kernel and ``_scaled_mm`` run (a function of its own so CPU tests can route)."""
    return triton_runs(x) and fp8_linear._scaled_mm_enabled


def fusable(ffn: nn.Sequential, x: torch.Tensor) -> bool:
    """True when ``ffn`` is (FP8Linear, tanh-GELU, FP8Linear) with FP8 GEMM shapes and ``x`` a bf16 input
    that runs on the GPU outside autograd."""
    if len(ffn) != 3:
        return False
    first, act, last = ffn
    return (
        _enabled[0]
        and _on_gpu(x)
        and x.dtype == torch.bfloat16
        and type(first) is FP8Linear
        and type(last) is FP8Linear
        and first.compute_dtype == torch.bfloat16
        and isinstance(act, nn.GELU)
        and act.approximate == "tanh"
        and all(d % 16 == 0 for d in (first.in_features, first.out_features, last.out_features))
        and not (torch.is_grad_enabled() and x.requires_grad)
    )


def feed_forward(ffn: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``ffn(x)`` for a :func:`fusable` FP8 feed-forward, its GELU and quantisation in one kernel."""
    first, _, last = ffn
    hidden = first(x)
    q, scale = gelu_tanh_quantize_rows(hidden.reshape(-1, hidden.shape[-1]))
    out = fp8_gemm_rows(q, scale, last.qweight, last.weight_scale, last.bias, hidden.dtype)
    return out.reshape(*hidden.shape[:-1], last.out_features)
