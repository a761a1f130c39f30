"""The FP8 feed-forward's GELU + row quantisation op (``quant/fp8_gelu.py``) on CPU: its maths against the
unfused modules, its fake (compile) form, when a Wan block in FP8 mode routes through it, and that the
outputs do not change. The Triton kernel runs on GPUs only; ``bench/step_parts.py --only fp8ffn`` checks it
against this form there."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from op_routing import routed_forward
from torch import nn

from fantasy_world.quant import fp8_gelu, fp8_linear, quantize_model
from fantasy_world.quant.fp8_linear import FP8_DTYPE, FP8_MAX, FP8Linear


def test_op_is_tanh_gelu_then_row_quantisation() -> None:
    torch.manual_seed(0)
    x = (torch.randn(6, 64) * 3).bfloat16()
    x[2] = 0  # an all-zero row takes the floor scale, not a division by zero
    q, scale = fp8_gelu.gelu_tanh_quantize_rows(x)
    assert q.dtype == FP8_DTYPE and q.shape == (6, 64) and scale.shape == (6, 1)
    g = F.gelu(x, approximate="tanh").float()
    torch.testing.assert_close(scale.squeeze(1)[[0, 1, 3]], g.abs().amax(1)[[0, 1, 3]] / FP8_MAX)
    assert torch.all(q.float()[2] == 0) and scale[2].item() > 0
    assert q.float().abs().amax(1)[[0, 1, 3]].eq(FP8_MAX).all()  # each row's largest value maps to 448
    # dequantised, within e4m3's half step (2^-4 relative) of the GELU
    torch.testing.assert_close(q.float() * scale, g, rtol=2**-4, atol=1e-3)


def test_op_passes_opcheck_and_compiles_as_one_call() -> None:
    torch.manual_seed(1)
    x = torch.randn(5, 32).bfloat16()
    torch.library.opcheck(torch.ops.fantasy_world.gelu_tanh_quantize_rows.default, (x,))
    compiled = torch.compile(lambda t: fp8_gelu.gelu_tanh_quantize_rows(t)[1] * 2, fullgraph=True)
    torch.testing.assert_close(compiled(x), 2 * fp8_gelu.gelu_tanh_quantize_rows(x)[1])


def _fp8_ffn(dtype: torch.dtype = torch.bfloat16) -> nn.Sequential:
    torch.manual_seed(2)
    ffn = nn.Sequential(nn.Linear(32, 80), nn.GELU(approximate="tanh"), nn.Linear(80, 32)).to(dtype)
    return nn.Sequential(FP8Linear.from_linear(ffn[0]), ffn[1], FP8Linear.from_linear(ffn[2]))


@pytest.mark.parametrize(
    "case", ["cpu", "float32", "plain-linear", "exact-gelu", "odd-width", "grad", "switched-off"]
)
def test_fused_path_only_where_it_changes_nothing_but_speed(monkeypatch, case: str) -> None:
    monkeypatch.setattr(fp8_gelu, "_on_gpu", lambda x: case != "cpu")
    monkeypatch.setattr(fp8_gelu, "_enabled", [case != "switched-off"])
    x = torch.randn(4, 32).bfloat16()
    with torch.no_grad():
        assert fp8_gelu.fusable(_fp8_ffn(), x) == (case not in ("cpu", "switched-off"))
    ffn = _fp8_ffn(torch.float32 if case == "float32" else torch.bfloat16)
    if case == "plain-linear":
        ffn[2] = nn.Linear(80, 32).bfloat16()
    if case == "exact-gelu":
        ffn[1] = nn.GELU()
    if case == "odd-width":  # a hidden width _scaled_mm cannot take (not a multiple of 16)
        ffn[0] = FP8Linear.from_linear(nn.Linear(32, 40).bfloat16())
        ffn[2] = FP8Linear.from_linear(nn.Linear(40, 32).bfloat16())
    with torch.set_grad_enabled(case == "grad"):
        assert not fp8_gelu.fusable(ffn, x.requires_grad_(case == "grad"))


def test_on_gpu_needs_the_fp8_gemm(monkeypatch) -> None:
    x = torch.randn(2, 16).bfloat16()
    assert not fp8_gelu._on_gpu(x)  # a CPU tensor
    monkeypatch.setattr(fp8_linear, "_scaled_mm_enabled", False)
    assert not fp8_gelu._on_gpu(x)


def test_fp8_wan_block_routes_its_feed_forward_through_the_op(monkeypatch) -> None:
    calls, plain, fused, _ = routed_forward(
        monkeypatch, fp8_gelu, "gelu_tanh_quantize_rows", 2, 1, quantize_model
    )
    assert calls == [(4, 96)] * 2  # each block's hidden rows [B*L, ffn_dim] (2×2 tokens)
    torch.testing.assert_close(fused, plain, rtol=0, atol=0)  # on CPU: the same roundings, emulated
