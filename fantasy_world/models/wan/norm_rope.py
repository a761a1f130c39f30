"""The q/k side of Wan's self-attention in one pass on a GPU: RMS norm over all heads, its weight, 3-D RoPE.

Why: compiled, inductor ran ``rms_norm`` followed by Wan's RoPE (adjacent channel pairs rotated as complex
numbers) at ~1.3 TB/s on an H200, 0.52 ms per 14B block for q and k, where the RMS norm alone took 0.19 ms
(``bench/step_parts.py --only gaps``, rows "q/k RMS norm + RoPE"; storing each head's channels as
(evens, odds) instead only brought it to 0.47 ms). The Triton kernel here holds one token's row, all heads,
in registers: it reads each element once, rotates the pairs in registers and writes each element once:
0.18 ms for q and k (3.7 TB/s). Whole forwards, same call with the kernel switched off: compiled 14B
0.961 -> 0.955 s, 1.3B 0.450 -> 0.445 s (``bench/results/issue12_h200_2026-12-03_s5_*``).

Numerics are those of the unfused bf16 path: the RMS statistics and the weight in float32 with one bf16
rounding (what ``F.rms_norm`` does for bf16), then the rotation in float32 by the complex64 table with one
more bf16 rounding (``rope.apply_rope``).

A custom op, so inductor keeps it as one extern call, and eager runs the same kernel. Its CPU form (and
its form where Triton is missing) is the plain torch expressions, which is what tests check on CPU. Used
where it changes nothing but speed: CUDA, bf16 inputs and norm weights, a complex64 table, a power-of-two
head dim, no gradients. ``FW_NORM_ROPE=0`` switches it off for the process (benchmarks compare both).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from fantasy_world.models.wan.rope import apply_rope
from fantasy_world.utils.triton_import import tl, triton, triton_runs

# Read once: compiled code sees a constant. ``set_enabled`` is for benchmarks (reset dynamo after it).
_enabled: list[bool] = [os.environ.get("FW_NORM_ROPE", "1").strip() != "0"]


def set_enabled(on: bool) -> None:
    """Switch the fused kernel on or off for the process (compiled blocks keep what they traced)."""
    _enabled[0] = bool(on)


def reference(
    x: torch.Tensor, weight: torch.Tensor, freqs: torch.Tensor, eps: float, heads: int
) -> torch.Tensor:
    """The unfused expressions: ``apply_rope(rms_norm(x) * weight)``; x [B, L, dim] -> [B, L, heads, dim/heads].

    ``freqs`` is ``torch.view_as_real`` of the complex RoPE table, [L, head_dim/2, 2].
    """
    b, s, dim = x.shape
    normed = F.rms_norm(x, (dim,), weight, eps).view(b, s, heads, dim // heads)
    return apply_rope(normed, torch.view_as_complex(freqs))


if triton is not None:

    @triton.jit
    def _norm_rope_kernel(
        x_ptr,
        w_ptr,
        cs_ptr,
        out_ptr,
        seq,
        eps,
        HEADS: tl.constexpr,
        HEADS_P2: tl.constexpr,
        HEAD_DIM: tl.constexpr,
    ):
        # one program per token row; the row is [HEADS_P2, HEAD_DIM] with the padding heads masked off
        row = tl.program_id(0).to(tl.int64)
        tok = row % seq
        h = tl.arange(0, HEADS_P2)[:, None]
        d = tl.arange(0, HEAD_DIM)[None, :]
        offs = h * HEAD_DIM + d
        mask = (h < HEADS) & (d < HEAD_DIM)
        base = row * (HEADS * HEAD_DIM)
        x = tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.rsqrt(tl.sum(x * x) / (HEADS * HEAD_DIM) + eps)
        w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        y = (x * rstd * w).to(tl.bfloat16).to(tl.float32)  # the norm's own bf16 rounding
        y0, y1 = tl.split(tl.reshape(y, (HEADS_P2, HEAD_DIM // 2, 2)))
        i = tl.arange(0, HEAD_DIM // 2)[None, :]
        cos = tl.load(cs_ptr + tok * HEAD_DIM + 2 * i)
        sin = tl.load(cs_ptr + tok * HEAD_DIM + 2 * i + 1)
        out = tl.reshape(tl.join(y0 * cos - y1 * sin, y0 * sin + y1 * cos), (HEADS_P2, HEAD_DIM))
        tl.store(out_ptr + base + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


# 4 warps: for the 14B row (64 × 128 padded lanes) 0.179 ms for q and k against 0.196 with 8 and 0.244 with 16
# (H200, ``step_parts.py --only qk``); narrower rows have less to spread.
NUM_WARPS = 4


def _launch(
    x: torch.Tensor, weight: torch.Tensor, freqs: torch.Tensor, eps: float, heads: int
) -> torch.Tensor:
    b, s, dim = x.shape
    head_dim = dim // heads
    x = x.contiguous()
    out = torch.empty(b, s, heads, head_dim, dtype=x.dtype, device=x.device)
    with torch.cuda.device(x.device):
        _norm_rope_kernel[(b * s,)](
            x,
            weight.contiguous(),
            freqs.contiguous(),
            out,
            s,
            eps,
            HEADS=heads,
            HEADS_P2=triton.next_power_of_2(heads),
            HEAD_DIM=head_dim,
            num_warps=NUM_WARPS,
        )
    return out


@torch.library.custom_op("fantasy_world::rms_norm_rope", mutates_args=())
def rms_norm_rope(
    x: torch.Tensor, weight: torch.Tensor, freqs: torch.Tensor, eps: float, heads: int
) -> torch.Tensor:
    """RMS norm of x [B, L, dim] over dim with ``weight``, split into heads, Wan's RoPE by ``freqs``
    (``view_as_real`` of the complex table, [L, head_dim/2, 2]) -> [B, L, heads, dim/heads]."""
    if triton_runs(x):
        return _launch(x, weight, freqs, eps, heads)
    return reference(x, weight, freqs, eps, heads)


@rms_norm_rope.register_fake
def _rms_norm_rope_fake(
    x: torch.Tensor, weight: torch.Tensor, freqs: torch.Tensor, eps: float, heads: int
) -> torch.Tensor:
    b, s, dim = x.shape
    return x.new_empty(b, s, heads, dim // heads)


def _on_gpu(x: torch.Tensor) -> bool:
    """Where the Triton kernel runs (a function of its own so CPU tests can route through the op)."""
    return triton_runs(x)


def fusable(x: torch.Tensor, norm: nn.Module, freqs: torch.Tensor, heads: int) -> bool:
    """True when ``norm`` is a bf16 RMS norm over x's whole feature dim, x [B, L, dim] a bf16 CUDA tensor
    outside autograd and ``freqs`` a complex64 [L, head_dim/2] table with a power-of-two head dim."""
    weight = getattr(norm, "weight", None)
    dim = x.shape[-1]
    head_dim = dim // heads
    return (
        _enabled[0]
        and _on_gpu(x)
        and x.dim() == 3
        and x.dtype == torch.bfloat16
        and isinstance(getattr(norm, "eps", None), float)
        and isinstance(weight, torch.Tensor)
        and weight.dtype == torch.bfloat16
        and weight.shape == (dim,)
        and head_dim * heads == dim
        and head_dim >= 2
        and head_dim & (head_dim - 1) == 0
        and freqs.dtype == torch.complex64
        and freqs.shape == (x.shape[1], head_dim // 2)
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    )


def norm_rope(x: torch.Tensor, norm: nn.Module, freqs: torch.Tensor, heads: int) -> torch.Tensor:
    """``apply_rope(norm(x).view(heads), freqs)`` for x [B, L, dim], in one kernel where :func:`fusable`."""
    if fusable(x, norm, freqs, heads):
        return rms_norm_rope(x, norm.weight, torch.view_as_real(freqs), norm.eps, heads)
    b, s, dim = x.shape
    return apply_rope(norm(x).view(b, s, heads, dim // heads), freqs)
