"""The feed-forward's fused Linear + tanh-GELU (``models/wan/linear_gelu.py``), on CPU: the op's maths and
its fake (compile) form, when the Wan block routes through it, and that nothing else changes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from op_routing import routed_forward
from torch import nn

from fantasy_world.models.wan import linear_gelu
from fantasy_world.models.wan.dit import WanBlock


def _ffn(dtype: torch.dtype = torch.bfloat16) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 80), nn.GELU(approximate="tanh"), nn.Linear(80, 32)).to(dtype)


def test_op_is_linear_then_tanh_gelu() -> None:
    torch.manual_seed(1)
    x, w, b = torch.randn(2, 7, 32), torch.randn(80, 32), torch.randn(80)
    out = linear_gelu.linear_gelu_tanh(x, w, b)
    assert out.shape == (2, 7, 80)
    torch.testing.assert_close(out, F.gelu(F.linear(x, w, b), approximate="tanh"), rtol=0, atol=0)


def test_op_passes_opcheck_and_compiles_as_one_call() -> None:
    torch.manual_seed(2)
    args = (torch.randn(3, 5, 16), torch.randn(24, 16), torch.randn(24))
    torch.library.opcheck(torch.ops.fantasy_world.linear_gelu_tanh.default, args)
    compiled = torch.compile(lambda x, w, b: linear_gelu.linear_gelu_tanh(x, w, b) * 2, fullgraph=True)
    torch.testing.assert_close(compiled(*args), 2 * linear_gelu.linear_gelu_tanh(*args))


@pytest.mark.parametrize(
    "case",
    ["cpu", "float32", "grad", "exact-gelu", "no-bias", "switched-off"],
)
def test_fused_path_only_where_it_changes_nothing_but_speed(monkeypatch, case: str) -> None:
    monkeypatch.setattr(linear_gelu, "_on_gpu", lambda x: case != "cpu")
    ffn = _ffn(torch.float32 if case == "float32" else torch.bfloat16)
    if case == "exact-gelu":
        ffn[1] = nn.GELU()
    if case == "no-bias":
        ffn[0].bias = None
    if case == "switched-off":
        monkeypatch.setattr(linear_gelu, "_enabled", [False])
    x = torch.randn(4, 32, dtype=ffn[0].weight.dtype)
    with torch.set_grad_enabled(case == "grad"):
        assert not linear_gelu.fusable(ffn, x)
        with torch.no_grad():
            ok = _ffn()
            assert case in ("cpu", "switched-off") or linear_gelu.fusable(ok, x.bfloat16())


def test_wan_block_routes_its_feed_forward_through_the_fused_op(monkeypatch) -> None:
    calls, plain, fused, dit = routed_forward(monkeypatch, linear_gelu, "linear_gelu_tanh")
    assert calls == [(1, 4, 64)]  # one block, its feed-forward input [B, L, dim] (2×2 tokens)
    torch.testing.assert_close(fused, plain, rtol=0, atol=0)  # on CPU the op is the same two steps
    assert isinstance(dit.blocks[0], WanBlock)
