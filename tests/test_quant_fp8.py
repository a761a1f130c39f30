"""FP8 mode: the FP8 linear layer's numerics, which layers are quantised, moves, state dicts, folders, CLI."""

from __future__ import annotations

import copy

import pytest
import torch
from gated_model import gated_model_step
from torch import nn

from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.config import fantasy_world_config
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.quant import (
    FP8Linear,
    dequantize_model,
    fp8_layer_names,
    quantize_model,
    quantize_rows,
    quantized_layers,
)
from fantasy_world.quant.fp8_linear import FP8_MAX, quantize_weight


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.uint8) if t.element_size() == 1 else t


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).norm() / b.detach().float().norm())


# ---------------------------------------------------------------------------------------------- numerics
def test_row_scales_map_each_row_max_to_the_fp8_max() -> None:
    torch.manual_seed(0)
    x = torch.randn(6, 40) * torch.tensor([1e-3, 0.1, 1.0, 10.0, 300.0, 1.0]).unsqueeze(1)
    x[5] = 0.0  # an all-zero row must not divide by zero
    q, s = quantize_rows(x)
    assert q.dtype == torch.float8_e4m3fn and s.shape == (6, 1) and s.dtype == torch.float32
    amax = x.abs().amax(dim=1, keepdim=True)
    torch.testing.assert_close(s[:5], amax[:5] / FP8_MAX)
    assert torch.equal(q[:5].float().abs().amax(dim=1), torch.full((5,), FP8_MAX))  # each row's max hits 448
    assert torch.equal(q[5].float(), torch.zeros(40))
    # e4m3 keeps 3 mantissa bits: elementwise error <= half an ulp (2^-4 relative) above the subnormal range
    deq = q.float() * s
    big = x.abs() > amax * 2**-6
    assert ((deq - x).abs()[big] <= x.abs()[big] * 2**-4 + 1e-12).all()


def test_fp8_linear_matches_float_within_fp8_error_and_really_quantises() -> None:
    torch.manual_seed(1)
    linear = nn.Linear(96, 64)
    x = torch.randn(3, 11, 96)
    layer = FP8Linear.from_linear(linear)
    ref = linear(x)
    out = layer(x)
    err = rel(out, ref)
    assert 1e-3 < err < 0.06, err  # quantised (differs), but within e4m3 error of both operands
    bf16 = copy.deepcopy(linear).to(torch.bfloat16)
    assert rel(bf16(x.bfloat16()), ref) < 0.01 < err  # FP8 is coarser than bf16
    # the emulation is exactly (row-quantised x) @ (channel-quantised W)^T + b, accumulated in fp32
    xq, xs = quantize_rows(x.reshape(-1, 96))
    wq, ws = quantize_weight(linear.weight)
    manual = (xq.float() * xs) @ (wq.float() * ws[:, None]).t() + linear.bias
    torch.testing.assert_close(out.reshape(-1, 64), manual, rtol=1e-6, atol=1e-6)


def test_fp8_linear_keeps_fp8_through_dtype_and_device_moves() -> None:
    layer = FP8Linear.from_linear(nn.Linear(32, 16))
    q, s = layer.qweight.clone(), layer.weight_scale.clone()
    layer.to(torch.bfloat16)
    layer.half().float()
    layer.to("cpu", torch.bfloat16)
    assert layer.qweight.dtype == torch.float8_e4m3fn and torch.equal(_bits(layer.qweight), _bits(q))
    assert layer.weight_scale.dtype == torch.float32 and torch.equal(layer.weight_scale, s)
    assert layer.weight.dtype == layer.bias.dtype == torch.bfloat16 and layer.weight.numel() == 0
    assert layer(torch.randn(2, 32).bfloat16()).dtype == torch.bfloat16


def test_state_dict_holds_fp8_weight_and_scale_and_loads_back_bit_exactly() -> None:
    src = FP8Linear.from_linear(nn.Linear(32, 16))
    state = src.state_dict()
    assert set(state) == {"weight", "weight_scale", "bias"}
    assert state["weight"].dtype == torch.float8_e4m3fn and state["weight_scale"].shape == (16,)
    with torch.device("meta"):
        dst = FP8Linear(32, 16)
    dst.load_state_dict(state, assign=True)
    assert torch.equal(_bits(dst.qweight), _bits(src.qweight))
    assert torch.equal(dst.weight_scale, src.weight_scale) and not dst.weight.is_meta
    bad = dict(state, weight=state["weight"].float())
    with pytest.raises(RuntimeError, match="float8_e4m3fn"):
        FP8Linear(32, 16).load_state_dict(bad)


# ---------------------------------------------------------------------------------------------- selection
def test_quantize_model_swaps_dit_and_geometry_linears_only() -> None:
    model, x, t, cond, _, kw = gated_model_step(0)  # reduced 1.3B: transformer bridge, camera adapters
    names = set(fp8_layer_names(model))
    quantize_model(model)
    assert set(quantized_layers(model)) == names
    expect = {
        "dit.blocks.0.self_attn.q",
        "dit.blocks.0.cross_attn.o",
        "dit.blocks.1.ffn.0",
        "dit.blocks.1.ffn.2",
        "bridge.layers.0.q",
        "bridge.proj",
        "aggregator.frame_blocks.0.attn.qkv",
        "aggregator.frame_blocks.0.mlp.fc2",
        "irg.0.x_agg.attn.proj",
        "irg.0.bicross_attention.cross_attn.m1_proj",
        "irg.0.bicross_attention.cross_attn.out_m2_proj",
    }
    assert expect <= names
    for kept in ("camera_adapter", "depth_head", "point_head", "camera_head", "pose_encoder", "embedding"):
        assert not any(kept in n for n in names), kept
    assert isinstance(model.dit.head.head, nn.Linear) and isinstance(model.dit.time_projection[1], nn.Linear)
    assert (
        isinstance(model.dit.blocks[0].norm3, nn.LayerNorm)
        and model.dit.blocks[0].modulation.dtype == torch.float32
    )
    # the IRG blocks borrow the DiT blocks: the swap is visible through them
    n_pcb = model.cfg.n_pcb
    assert model.irg[0].x_dit.self_attn.q is model.dit.blocks[n_pcb].self_attn.q
    assert isinstance(model.irg[0].x_dit.self_attn.q, FP8Linear)
    quantize_model(model)  # idempotent
    assert set(quantized_layers(model)) == names


def test_quantised_model_output_stays_close_to_the_float_model() -> None:
    model, x, t, cond, _, kw = gated_model_step(2)
    model.requires_grad_(False)
    with torch.no_grad():
        ref = model(x, t, cond, return_geometry=True, **kw)
        quantize_model(model)
        out = model(x, t, cond, return_geometry=True, **kw)
    for name in ("velocity",):
        err = rel(getattr(out, name), getattr(ref, name))
        assert 1e-4 < err < 0.1, (name, err)
    for name in ("depth", "world_points", "pose_enc"):
        err = rel(getattr(out.geometry, name), getattr(ref.geometry, name))
        assert 0 < err < 0.1, (name, err)
    dequantize_model(model)
    assert not quantized_layers(model) and isinstance(model.dit.blocks[0].ffn[0], nn.Linear)


def test_quantised_blocks_trace_as_one_graph() -> None:
    """The activation quantisation is plain torch code inside the compiled block: no graph break."""
    torch.manual_seed(3)
    cfg = fantasy_world_config("tiny")
    model = quantize_model(FantasyWorldModel(cfg).eval().requires_grad_(False))
    block = model.dit.blocks[1]
    state = model.dit.embed(
        torch.randn(1, 16, 2, 8, 12), torch.tensor([500.0]), torch.randn(1, 8, cfg.dit.text_dim)
    )
    torch._dynamo.reset()
    with torch.no_grad():
        report = torch._dynamo.explain(block)(state.tokens, state)
        eager = block(state.tokens, state)
        traced = torch.compile(block, backend="eager", fullgraph=True)(state.tokens, state)
    torch._dynamo.reset()
    assert report.graph_break_count == 0 and report.graph_count == 1
    torch.testing.assert_close(traced, eager)


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_fp8_flag_parses_and_bad_device_is_one_line(capsys) -> None:
    from fantasy_world.cli import build_parser, main
    from fantasy_world.utils.runtime import check_fp8

    base = ["generate", "--prompt", "p", "--out", "o"]
    assert build_parser().parse_args([*base, "--fp8"]).fp8 is True
    assert build_parser().parse_args(base).fp8 is False
    assert build_parser().parse_args(["reconstruct", "--video", "v.mp4", "--out", "o", "--fp8"]).fp8 is True
    check_fp8(True, torch.device("cpu"))  # emulated FP8 on the CPU is allowed
    with pytest.raises(InputError, match="fp8 on device 'meta'"):
        check_fp8(True, torch.device("meta"))
    assert main([*base, "--fp8", "--device", "meta"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: fp8 on device 'meta'") and "\n" not in err


def test_block_swap_moves_fp8_weights_and_keeps_outputs_bit_exact() -> None:
    """FP8 tensors are parameters, so the block-swap offload streams them like bf16 ones (24 GB cards)."""
    from fantasy_world.accel.offload import enable_block_swap

    model, x, t, cond, _, kw = gated_model_step(5)
    model.requires_grad_(False)
    quantize_model(model)
    with torch.no_grad():
        ref = model(x, t, cond, **kw).velocity
        swap = enable_block_swap(model, "cpu")
        fp8_host = [s for s in swap._slots if torch.float8_e4m3fn in s.cpu]
        assert fp8_host, "no FP8 weights in the swapped units"
        out = model(x, t, cond, **kw).velocity
    swap.remove()
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
