"""The q/k RMS norm + RoPE op (``models/wan/norm_rope.py``) on CPU: its maths against the unfused modules,
its fake (compile) form, when the Wan self-attention routes through it, and that nothing else changes.
The Triton kernel itself runs on GPUs only; ``bench/step_parts.py --only gaps`` checks it against this form."""

from __future__ import annotations

import pytest
import torch
from op_routing import routed_forward
from torch import nn

from fantasy_world.models.wan import norm_rope
from fantasy_world.models.wan.dit import WanRMSNorm
from fantasy_world.models.wan.rope import apply_rope, wan_rope_freqs

HEADS, HEAD_DIM, GRID = 3, 16, (2, 2, 3)
TOKENS = GRID[0] * GRID[1] * GRID[2]


def _inputs(seed: int = 0) -> tuple[torch.Tensor, WanRMSNorm, torch.Tensor]:
    torch.manual_seed(seed)
    x = (torch.randn(2, TOKENS, HEADS * HEAD_DIM) * 3).bfloat16()
    norm = WanRMSNorm(HEADS * HEAD_DIM).bfloat16()
    norm.weight.data.normal_(1.0, 0.3)
    return x, norm, wan_rope_freqs(HEAD_DIM, GRID)


def test_op_is_the_norm_then_wans_rope() -> None:
    x, norm, freqs = _inputs()
    got = norm_rope.rms_norm_rope(x, norm.weight, torch.view_as_real(freqs), norm.eps, HEADS)
    want = apply_rope(norm(x).view(2, TOKENS, HEADS, HEAD_DIM), freqs)
    assert got.shape == (2, TOKENS, HEADS, HEAD_DIM) and got.dtype == torch.bfloat16
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    # and it really rotates: channel pairs keep their norm (up to bf16), the values move
    pairs = lambda t: t.float().unflatten(-1, (-1, 2)).norm(dim=-1)  # noqa: E731
    torch.testing.assert_close(pairs(got), pairs(norm(x).view_as(got)), rtol=2e-2, atol=2e-2)
    assert (got.float() - norm(x).view_as(got).float()).abs().max() > 0.5


def test_op_passes_opcheck_and_compiles_as_one_call() -> None:
    x, norm, freqs = _inputs(1)
    args = (x, norm.weight.detach(), torch.view_as_real(freqs), norm.eps, HEADS)
    torch.library.opcheck(torch.ops.fantasy_world.rms_norm_rope.default, args)
    compiled = torch.compile(lambda *a: norm_rope.rms_norm_rope(*a) * 2, fullgraph=True)
    torch.testing.assert_close(compiled(*args), 2 * norm_rope.rms_norm_rope(*args))


@pytest.mark.parametrize(
    "case", ["cpu", "float32", "grad", "odd-head-dim", "identity-norm", "complex128", "switched-off"]
)
def test_fused_path_only_where_it_changes_nothing_but_speed(monkeypatch, case: str) -> None:
    monkeypatch.setattr(norm_rope, "_on_gpu", lambda x: case != "cpu")
    monkeypatch.setattr(norm_rope, "_enabled", [case != "switched-off"])
    x, norm, freqs = _inputs(2)
    heads = HEADS
    with torch.no_grad():  # inference, as the pipeline runs it (the norm weight is a parameter)
        assert norm_rope.fusable(x, norm, freqs, heads) == (case not in ("cpu", "switched-off"))
    if case == "float32":
        x, norm = x.float(), norm.float()
    if case == "odd-head-dim":  # 48 channels as 4 heads of 12: not a power of two
        heads, freqs = 4, wan_rope_freqs(12, GRID)
    if case == "identity-norm":
        norm = nn.Identity()
    if case == "complex128":
        freqs = freqs.to(torch.complex128)
    with torch.set_grad_enabled(case == "grad"):
        assert not norm_rope.fusable(x, norm, freqs, heads)


def test_wan_self_attention_routes_q_and_k_through_the_op(monkeypatch) -> None:
    def live_norms(dit: nn.Module) -> None:
        for block in dit.blocks:
            block.self_attn.norm_q.weight.data.normal_(1.0, 0.2)

    calls, plain, fused, _ = routed_forward(monkeypatch, norm_rope, "rms_norm_rope", 2, 2, live_norms)
    assert calls == [(1, 8, 64)] * 4  # q and k of two blocks, [B, L, dim] (2×2×2 tokens)
    torch.testing.assert_close(fused, plain, rtol=0, atol=0)  # on CPU the op is the same expressions
