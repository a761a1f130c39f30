"""FP8 attention's input quantisation on a GPU: one e4m3 scale per (batch, head), in two Triton passes.

Why: FA3's FP8 kernel wants q, k and v as e4m3 with one scale per (batch, head) (its ``*_descale``
arguments), so each needs the amax over all tokens and channels of a head before anything can be cast.
Compiled, inductor wrote that as reductions with one output per head (40 for the 14B model) over 2.1M
values each, and the casts around them ran at 1-2 TB/s: q, k (smoothed) and v took ~0.67 ms per 14B block
on an H200, a tenth of the FP8 attention itself (``bench/step_parts.py --only profile``). Here a first
pass has every program take a slab of token rows and write one partial amax per head, a few hundred
programs instead of 40; a second pass, one program per token row like ``norm_rope.py``, divides and casts.
On an H200 the two passes take as long as inductor's kernels for the 14B self-attention's q, k and v
alone (0.613 vs 0.606 ms), but inside the compiled model the FP8 + FP8-attention forward cut to 4 blocks
is 1.2 % faster with them (0.0734 vs 0.0743 s; ``bench/results/issue12_h200_2026-12-03_s6_call1_*``). Head
dims that are not a power of two (the bidirectional cross-attention's 96) run in padded, masked tiles: the
FantasyWorld profile of that call had inductor quantising those at ~0.4 ms per IRG block.

Numerics are those of the torch form (:func:`reference`, also the op's CPU form): values in float32, minus
``shift`` when given (the key smoothing of ``flash3.fp8_attention``), amax over (tokens, channels) mapped to
448, ``x / scale`` clamped and rounded to e4m3. ``FW_FP8_HEADS=0`` switches the kernels off.
"""

from __future__ import annotations

import os

import torch

from fantasy_world.quant.fp8_linear import AMAX_FLOOR, FP8_DTYPE, FP8_MAX
from fantasy_world.utils.triton_import import tl, triton, triton_runs

ROWS_PER_PROGRAM = 32  # the amax pass: 16,317 tokens -> 510 programs per batch for the 14B model
# Read once: compiled code sees a constant. ``set_enabled`` is for benchmarks (reset dynamo after it).
_enabled: list[bool] = [os.environ.get("FW_FP8_HEADS", "1").strip() != "0"]


def set_enabled(on: bool) -> None:
    """Switch the kernels on or off for the process (compiled blocks keep what they traced)."""
    _enabled[0] = bool(on)


def reference(x: torch.Tensor, shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, L, H, D] (minus ``shift`` [B, 1, H, D]) -> (e4m3 values, fp32 scales [B, H]), amax over (L, D)
    mapped to 448."""
    xf = x.detach().float() if shift is None else x.detach().float() - shift
    scale = xf.abs().amax(dim=(1, 3)).clamp_min(AMAX_FLOOR) / FP8_MAX
    q = (xf / scale[:, None, :, None]).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return q, scale


if triton is not None:

    @triton.jit
    def _head_amax_kernel(
        x_ptr,
        shift_ptr,
        part_ptr,
        seq,
        rows,
        HAS_SHIFT: tl.constexpr,
        HEADS: tl.constexpr,
        HEADS_P2: tl.constexpr,
        HEAD_DIM: tl.constexpr,
        HEAD_DIM_P2: tl.constexpr,
    ):
        # program (b, j): the amax per head of token rows [j*rows, (j+1)*rows) of batch b
        b = tl.program_id(0).to(tl.int64)
        j = tl.program_id(1)
        h = tl.arange(0, HEADS_P2)[:, None]
        d = tl.arange(0, HEAD_DIM_P2)[None, :]
        offs = h * HEAD_DIM + d
        mask = (h < HEADS) & (d < HEAD_DIM)
        dim = HEADS * HEAD_DIM
        if HAS_SHIFT:
            sh = tl.load(shift_ptr + b * dim + offs, mask=mask, other=0.0)
        acc = tl.zeros((HEADS_P2, HEAD_DIM_P2), dtype=tl.float32)
        for r in range(0, rows):
            tok = j * rows + r
            m = mask & (offs * 0 + tok < seq)  # the token test broadcast to the tile
            x = tl.load(x_ptr + (b * seq + tok) * dim + offs, mask=m, other=0.0).to(tl.float32)
            if HAS_SHIFT:
                x = tl.where(m, x - sh, 0.0)
            acc = tl.maximum(acc, tl.abs(x))
        hh = tl.arange(0, HEADS_P2)
        tl.store(part_ptr + (b * tl.num_programs(1) + j) * HEADS_P2 + hh, tl.max(acc, axis=1))

    @triton.jit
    def _quantize_rows_kernel(
        x_ptr,
        shift_ptr,
        scale_ptr,
        out_ptr,
        seq,
        fp8_max,
        HAS_SHIFT: tl.constexpr,
        HEADS: tl.constexpr,
        HEADS_P2: tl.constexpr,
        HEAD_DIM: tl.constexpr,
        HEAD_DIM_P2: tl.constexpr,
    ):
        # one program per token row: (x - shift) / scale[b, head], clamped, to e4m3
        row = tl.program_id(0).to(tl.int64)
        b = row // seq
        h = tl.arange(0, HEADS_P2)[:, None]
        d = tl.arange(0, HEAD_DIM_P2)[None, :]
        offs = h * HEAD_DIM + d
        mask = (h < HEADS) & (d < HEAD_DIM)
        dim = HEADS * HEAD_DIM
        x = tl.load(x_ptr + row * dim + offs, mask=mask, other=0.0).to(tl.float32)
        if HAS_SHIFT:
            x = x - tl.load(shift_ptr + b * dim + offs, mask=mask, other=0.0)
        s = tl.load(scale_ptr + b * HEADS + h, mask=h < HEADS, other=1.0)
        q = tl.minimum(tl.maximum(x / s, -fp8_max), fp8_max)
        tl.store(out_ptr + row * dim + offs, q.to(tl.float8e4nv), mask=mask)


def _launch(x: torch.Tensor, shift: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    b, seq, heads, head_dim = x.shape
    x = x.contiguous()
    sh = x if shift is None else shift.float().contiguous()  # a placeholder pointer when there is no shift
    heads_p2 = triton.next_power_of_2(heads)
    blocks = triton.cdiv(seq, ROWS_PER_PROGRAM)
    meta = {
        "HAS_SHIFT": shift is not None,
        "HEADS": heads,
        "HEADS_P2": heads_p2,
        "HEAD_DIM": head_dim,
        "HEAD_DIM_P2": triton.next_power_of_2(head_dim),
    }
    with torch.cuda.device(x.device):
        part = torch.empty(b, blocks, heads_p2, dtype=torch.float32, device=x.device)
        _head_amax_kernel[(b, blocks)](x, sh, part, seq, ROWS_PER_PROGRAM, num_warps=4, **meta)
        scale = (part[..., :heads].amax(dim=1).clamp_min(AMAX_FLOOR) / FP8_MAX).contiguous()
        out = torch.empty(b, seq, heads, head_dim, dtype=FP8_DTYPE, device=x.device)
        _quantize_rows_kernel[(b * seq,)](x, sh, scale, out, seq, FP8_MAX, num_warps=4, **meta)
    return out, scale


@torch.library.custom_op("fantasy_world::quantize_heads", mutates_args=())
def quantize_heads_op(x: torch.Tensor, shift: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`reference` as one op: the two Triton passes on CUDA, the torch form elsewhere."""
    if triton_runs(x):
        return _launch(x, shift)
    return reference(x, shift)


@quantize_heads_op.register_fake
def _quantize_heads_fake(x: torch.Tensor, shift: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    b, _, heads, _ = x.shape
    return x.new_empty(x.shape, dtype=FP8_DTYPE), x.new_empty(b, heads, dtype=torch.float32)


def _on_gpu(x: torch.Tensor) -> bool:
    """Where the Triton passes run (a function of its own so CPU tests can route through the op)."""
    return triton_runs(x)


def fusable(x: torch.Tensor, shift: torch.Tensor | None = None) -> bool:
    """True for a [B, L, H, D] CUDA input (and a [B, 1, H, D] shift, if any). D need not be a power of two
    (the bidirectional cross-attention's is 96): the tile is padded and masked."""
    head_dim = x.shape[-1] if x.dim() == 4 else 0
    return (
        _enabled[0]
        and _on_gpu(x)
        and x.dim() == 4
        and head_dim >= 2
        and x.dtype in (torch.bfloat16, torch.float16, torch.float32)
        and (shift is None or tuple(shift.shape) == (x.shape[0], 1, x.shape[2], head_dim))
    )


def quantize_heads(x: torch.Tensor, shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(e4m3 values, fp32 scales [B, H]) of ``x - shift``: the Triton passes where :func:`fusable`."""
    return quantize_heads_op(x, shift) if fusable(x, shift) else reference(x, shift)
