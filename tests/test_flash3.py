"""FlashAttention-3 routing and FP8 attention (CPU): loading, which calls go to FA3, the FP8 emulation,
and the FP8-attention switch of the attention modules."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
from gated_model import gated_model_step

from fantasy_world.models.wan import attention as attn_mod
from fantasy_world.models.wan import flash3
from fantasy_world.models.wan.attention import attention, attention_backend, attention_kernel, sdpa
from fantasy_world.quant import dequantize_model, quantize_model
from fantasy_world.quant.selection import set_fp8_attention


def _exact(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    s = torch.einsum("blhd,bmhd->bhlm", q.double(), k.double()) / math.sqrt(q.shape[-1])
    return torch.einsum("bhlm,bmhd->blhd", torch.softmax(s, dim=-1), v.double()).float()


def _peaked(b: int, lq: int, lk: int, h: int, d: int, seed: int = 0):
    """q and k sharing a direction, as trained models have: peaked rows, large logits."""
    gen = torch.Generator().manual_seed(seed)
    shared = torch.randn(1, 1, h, d, generator=gen)
    q = torch.randn(b, lq, h, d, generator=gen) + 1.5 * shared
    k = torch.randn(b, lk, h, d, generator=gen) + 1.5 * shared
    return q, k, torch.randn(b, lk, h, d, generator=gen)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def test_quantize_heads_scales_each_batch_and_head_to_the_fp8_max() -> None:
    x = torch.randn(2, 50, 3, 16)
    x[1, :, 2] *= 40.0
    x[0, :, 1] = 0.0  # an all-zero head gets a tiny scale, not a division by zero
    q, scale = flash3.quantize_heads(x)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (2, 3) and scale.dtype == torch.float32
    amax = x.abs().amax(dim=(1, 3))
    torch.testing.assert_close(scale[amax > 0], amax[amax > 0] / 448.0)
    assert float(q.float().abs().amax(dim=(1, 3))[1, 2]) == 448.0
    back = q.float() * scale[:, None, :, None]
    assert torch.isfinite(back).all() and float(back[0, :, 1].abs().max()) == 0.0
    big = x.abs() > scale[:, None, :, None] * 2.0**-6  # normal e4m3 range: relative rounding <= 2^-4
    assert float(((back - x).abs() / x.abs().clamp_min(1e-30))[big].max()) <= 2.0**-4 + 1e-6


def test_fp8_emulation_is_close_to_exact_attention_but_really_rounds() -> None:
    q, k, v = _peaked(1, 300, 260, 4, 32)
    exact = _exact(q, k, v)
    emu = flash3.emulated_fp8_attention(q, k, v, block=64)
    err = rel(emu, exact)
    assert 1e-3 < err < 0.2, err
    # the query blocks and the `rows` prefix change nothing
    torch.testing.assert_close(flash3.emulated_fp8_attention(q, k, v, block=1024), emu)
    torch.testing.assert_close(flash3.emulated_fp8_attention(q, k, v, rows=70), emu[:, :70])
    # bf16 inputs come back bf16
    assert flash3.emulated_fp8_attention(q.bfloat16(), k.bfloat16(), v.bfloat16()).dtype == torch.bfloat16


def test_key_smoothing_keeps_the_softmax_and_shrinks_the_fp8_error() -> None:
    q, k, v = _peaked(1, 200, 300, 2, 64, seed=3)
    smoothed = flash3.smooth_keys(k)
    torch.testing.assert_close(smoothed.mean(dim=1), torch.zeros(1, 2, 64), atol=1e-5, rtol=0)
    # every score of a query row moves by q·mean(k): the same attention, exactly (up to float64 rounding)
    torch.testing.assert_close(_exact(q, smoothed, v), _exact(q, k, v), atol=1e-5, rtol=1e-5)
    exact = _exact(q, k, v)

    def unsmoothed_fp8() -> torch.Tensor:  # the emulation's roundings on the raw keys (what it did before)
        (q8, qs), (k8, ks), (v8, vs) = (flash3.quantize_heads(t) for t in (q, k, v))
        deq = [t.float() * s[:, None, :, None] for t, s in ((q8, qs), (k8, ks), (v8, vs))]
        s = torch.einsum("blhd,bmhd->bhlm", deq[0], deq[1]) / math.sqrt(q.shape[-1])
        p = torch.exp(s - s.amax(dim=-1, keepdim=True))
        p8 = (p * flash3.P_SCALE).to(torch.float8_e4m3fn).float() / flash3.P_SCALE
        return torch.einsum("bhlm,bmhd->blhd", p8, deq[2]) / p.sum(dim=-1).transpose(1, 2)[..., None]

    before, after = rel(unsmoothed_fp8(), exact), rel(flash3.emulated_fp8_attention(q, k, v), exact)
    assert after < 0.6 * before, (before, after)


def test_load_finds_an_fa3_module_only_on_sm90(monkeypatch) -> None:
    calls = []

    def fake_forward(q, k, v, **kw):  # noqa: ANN001, ANN202
        calls.append(kw)
        return (_exact(q, k, v).to(q.dtype),)

    fake = types.ModuleType("flash_attn_interface")
    fake._flash_attn_forward = fake_forward
    monkeypatch.setitem(sys.modules, "flash_attn_interface", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    caps = {0: (9, 0), 1: (8, 9)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: caps[i])
    try:
        assert flash3.load() == "flash_attn_interface" and flash3.source() == "flash_attn_interface"
        assert flash3._devices[0] == (0,)  # the sm89 card stays on SDPA
        monkeypatch.setenv("FW_FA3", "0")
        assert flash3.load() == "" and flash3._fwd[0] is None
        monkeypatch.delenv("FW_FA3")
        caps[0] = (8, 0)
        assert flash3.load() == ""
    finally:
        monkeypatch.undo()
        flash3.load()
    assert flash3.source() == ""  # this machine: no CUDA, so no FA3
    assert not flash3.can_run(*(torch.randn(1, 4, 2, 8, dtype=torch.bfloat16) for _ in range(3)))


@pytest.fixture
def fake_fa3(monkeypatch):
    """FA3 that 'runs' on CPU tensors: records each call and computes exact attention."""
    seen: list[tuple[str, int]] = []

    def bf16(q, k, v):  # noqa: ANN001, ANN202
        seen.append(("bf16", k.shape[1]))
        return _exact(q, k, v).to(q.dtype)

    def fp8(q, k, v):  # noqa: ANN001, ANN202
        seen.append(("fp8", k.shape[1]))
        return flash3.emulated_fp8_attention(q, k, v)

    monkeypatch.setattr(flash3, "can_run", lambda q, k, v: True)
    monkeypatch.setattr(flash3, "attention", bf16)
    monkeypatch.setattr(flash3, "fp8_attention", fp8)
    return seen


def test_auto_routes_to_fa3_and_fp8_only_long_calls(fake_fa3) -> None:
    n = attn_mod.FA3_MIN_KEYS
    q, k, v = _peaked(1, 8, n, 2, 16)
    attention(q, k, v)
    attention(q, k[:, :9], v[:, :9])
    assert fake_fa3 == [("bf16", n), ("bf16", 9)]
    with attention_backend("sdpa"):
        attention(q, k, v)
    assert len(fake_fa3) == 2
    # FP8 only for long calls; the [B, H, L, D] entry point gives the same result as the [B, L, H, D] one
    fake_fa3.clear()
    out = sdpa(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), fp8=True).transpose(1, 2)
    assert fake_fa3 == [("fp8", n)]
    torch.testing.assert_close(out, flash3.emulated_fp8_attention(q, k, v))
    attention(q, k[:, :10], v[:, :10], fp8=True)
    assert fake_fa3 == [("fp8", n), ("bf16", 10)]
    with attention_backend("sdpa"):  # FA3 switched off: FP8 attention falls back to SDPA on a GPU and
        out = attention(q, k, v, fp8=True)  # to the emulation on a CPU
    torch.testing.assert_close(out, flash3.emulated_fp8_attention(q, k, v))


def test_cpu_fp8_attention_emulates_long_calls_only() -> None:
    n = attn_mod.FA3_MIN_KEYS
    q, k, v = _peaked(1, 6, n, 2, 16)
    torch.testing.assert_close(attention(q, k, v, fp8=True), flash3.emulated_fp8_attention(q, k, v))
    short = attention(q, k[:, :9], v[:, :9], fp8=True)
    torch.testing.assert_close(short, _exact(q, k[:, :9], v[:, :9]), atol=1e-5, rtol=1e-4)
    assert attention_kernel(torch.device("cpu")) == "PyTorch SDPA (auto)"


def test_fp8_attention_switch_reaches_every_long_attention_of_the_model(monkeypatch) -> None:
    model, x, t, cond, _, kw = gated_model_step(4)
    model.requires_grad_(False)
    quantize_model(model)  # default: FP8 linears, attention unquantised
    flags = [m.fp8_attention for m in model.modules() if hasattr(m, "fp8_attention")]
    assert flags and not any(flags)
    calls: list[int] = []
    real = flash3.emulated_fp8_attention

    def counting(q, k, v, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.append(k.shape[1])
        return real(q, k, v, **kw)

    monkeypatch.setattr(flash3, "emulated_fp8_attention", counting)
    monkeypatch.setattr(attn_mod, "FA3_MIN_KEYS", 1)  # the toy model's sequences are short
    with torch.no_grad():
        ref = model(x, t, cond, **kw).velocity
        assert calls == []
        n = set_fp8_attention(model, True)
        out = model(x, t, cond, **kw).velocity
    kinds = {type(m).__name__ for m in model.modules() if getattr(m, "fp8_attention", False)}
    assert {"WanSelfAttention", "BiMultiHeadAttention", "Attention"} <= kinds
    assert n == sum(1 for m in model.modules() if getattr(m, "fp8_attention", False))
    n_dit, n_irg = len(model.dit.blocks), len(model.irg)
    assert len(calls) >= n_dit + 2 * n_irg  # self-attention of every block, both bicross directions
    assert 1e-4 < rel(out, ref) < 0.2
    dequantize_model(model)
    assert not any(getattr(m, "fp8_attention", False) for m in model.modules())


def test_scope_dit_switches_only_the_video_self_attention() -> None:
    model, *_ = gated_model_step(5)
    quantize_model(model, scope="dit", attention=True)
    on = {type(m).__name__ for m in model.modules() if getattr(m, "fp8_attention", False)}
    assert on == {"WanSelfAttention"}


def test_cli_fp8_attention_flag_implies_fp8_and_is_recorded(tmp_path) -> None:
    from fantasy_world.cli import build_parser
    from fantasy_world.pipeline import FantasyWorldPipeline

    args = build_parser().parse_args(["generate", "--prompt", "p", "--out", "o", "--fp8-attention"])
    assert args.fp8_attention is True and args.fp8 is False
    pipe = FantasyWorldPipeline.from_pretrained("tiny", device="cpu", fp8_attention=True)
    assert any(getattr(m, "fp8_attention", False) for m in pipe.model.modules())
    world = pipe("a red ball", camera="orbit", frames=5, height=64, width=96, steps=2, seed=0)
    assert world.meta["fp8"] is True and world.meta["fp8_attention"] is True
    assert world.meta["attention"] == "PyTorch SDPA (auto)" and world.meta["vae_tiled"] is False
