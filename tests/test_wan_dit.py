"""Wan2.1 DiT: numerical parity with diffusers' WanTransformer3DModel, split API, camera hook, RoPE."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import WanTransformer3DModel
from torch import nn

from bench.harness.diffusers_ref import to_diffusers  # official → diffusers key names
from fantasy_world.errors import InputError
from fantasy_world.models.wan.attention import attention
from fantasy_world.models.wan.config import WanDiTConfig, wan_dit_config
from fantasy_world.models.wan.dit import WanDiT
from fantasy_world.models.wan.rope import apply_rope, rope_1d_table, wan_rope_freqs, wan_rope_split


def small_cfg(image_input: bool = False, **kw: object) -> WanDiTConfig:
    base = dict(dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=24, text_len=512, freq_dim=32)
    if image_input:
        base.update(in_dim=36, image_input=True, clip_dim=40, clip_tokens=257)
    base.update(kw)
    return wan_dit_config("tiny", **base)


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> None:
    """Random weights everywhere (including norms, modulation and the zero-initialised head)."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=gen)
        if p.ndim >= 2 and "modulation" not in name:
            p.copy_(noise / math.sqrt(p[0].numel()))
        elif name.endswith("weight"):
            p.copy_(1.0 + 0.2 * noise)
        else:
            p.copy_(0.2 * noise)


def make_pair(cfg: WanDiTConfig, seed: int = 0) -> tuple[WanDiT, WanTransformer3DModel]:
    ours = WanDiT(cfg).eval()
    randomize(ours, seed)
    ref = WanTransformer3DModel(
        patch_size=cfg.patch_size,
        num_attention_heads=cfg.num_heads,
        attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_dim,
        out_channels=cfg.out_dim,
        text_dim=cfg.text_dim,
        freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim,
        num_layers=cfg.num_layers,
        cross_attn_norm=cfg.cross_attn_norm,
        eps=cfg.eps,
        image_dim=cfg.clip_dim if cfg.image_input else None,
        added_kv_proj_dim=cfg.dim if cfg.image_input else None,
    ).eval()
    missing, unexpected = ref.load_state_dict(to_diffusers(ours.state_dict()), strict=True)
    assert not missing and not unexpected
    return ours, ref


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_t2v_parity_with_diffusers() -> None:
    torch.manual_seed(1)
    cfg = small_cfg()
    ours, ref = make_pair(cfg)
    x = torch.randn(2, 16, 3, 4, 6)
    t = torch.tensor([999.0, 250.0])
    text = torch.randn(2, 512, cfg.text_dim)
    text[:, 20:] = 0.0  # zero-padded text features, as the T5 encoder hands them over
    with torch.no_grad():
        got = ours(x, t, text[:, :20])  # the model pads to text_len itself
        want = ref(x, t, text, return_dict=False)[0]
    assert got.shape == want.shape == (2, 16, 3, 4, 6)
    assert want.abs().mean() > 0.1
    assert rel_err(got, want) <= 1e-4


def test_i2v_parity_with_diffusers() -> None:
    torch.manual_seed(2)
    cfg = small_cfg(image_input=True)
    ours, ref = make_pair(cfg, seed=3)
    noise = torch.randn(1, 16, 2, 4, 4)
    y = torch.randn(1, 20, 2, 4, 4)
    t = torch.tensor([700.0])
    text = torch.randn(1, 512, cfg.text_dim)
    clip = torch.randn(1, 257, cfg.clip_dim)
    with torch.no_grad():
        got = ours(noise, t, text, clip_fea=clip, y=y)
        want = ref(
            torch.cat([noise, y], dim=1), t, text, encoder_hidden_states_image=clip, return_dict=False
        )[0]
        no_image = ours(noise, t, text, clip_fea=torch.zeros_like(clip), y=y)
    assert rel_err(got, want) <= 1e-4
    assert rel_err(no_image, got) > 1e-3  # the image branch matters


def test_split_api_equals_forward_and_blocks_halves() -> None:
    torch.manual_seed(4)
    cfg = small_cfg(text_len=8)
    model = WanDiT(cfg).eval()
    randomize(model, 5)
    x, t, ctx = torch.randn(1, 16, 2, 4, 4), torch.tensor([321.0]), torch.randn(1, 5, cfg.text_dim)
    with torch.no_grad():
        full = model(x, t, ctx)
        state = model.embed(x, t, ctx)
        assert state.tokens.shape == (1, 2 * 2 * 2, cfg.dim)
        assert state.grid == (2, 2, 2)
        assert state.t_mod.shape == (1, 6, cfg.dim) and state.e.shape == (1, cfg.dim)
        assert state.context.shape == (1, cfg.text_len, cfg.dim)
        assert state.freqs.shape == (8, cfg.head_dim // 2) and state.freqs.dtype == torch.complex64
        tokens = state.tokens
        for block in model.blocks:
            tokens, mod = block.attend(tokens, state)
            tokens = block.feed_forward(tokens, mod)
        split = model.finalize(tokens, state)
    torch.testing.assert_close(split, full, rtol=0, atol=0)


class _ShiftAdapter(nn.Module):
    """A camera adapter like FantasyWorld's: shift from attention output and per-token camera features."""

    def __init__(self, dim: int, cam_dim: int, zero: bool) -> None:
        super().__init__()
        self.k = nn.Linear(dim + cam_dim, dim)
        if zero:
            nn.init.zeros_(self.k.weight)
            nn.init.zeros_(self.k.bias)
        self.calls = 0

    def forward(self, out: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.k(torch.cat([out, camera], dim=-1))


def test_camera_adapter_hook() -> None:
    torch.manual_seed(6)
    cfg = small_cfg(text_len=8, num_layers=2)
    model = WanDiT(cfg).eval()
    randomize(model, 7)
    keys_before = set(model.state_dict())
    x, t, ctx = torch.randn(1, 16, 2, 4, 4), torch.tensor([50.0]), torch.randn(1, 8, cfg.text_dim)
    camera = torch.randn(1, 8, 12)
    with torch.no_grad():
        base = model(x, t, ctx, camera=camera)  # no adapter: camera is ignored
        zero = _ShiftAdapter(cfg.dim, 12, zero=True)
        model.blocks[0].cross_attn.camera_adapter = zero
        assert any(k.startswith("blocks.0.cross_attn.camera_adapter.") for k in model.state_dict())
        same = model(x, t, ctx, camera=camera)
        assert zero.calls == 1
        model.blocks[1].cross_attn.camera_adapter = _ShiftAdapter(cfg.dim, 12, zero=False)
        changed = model(x, t, ctx, camera=camera)
        no_cam = model(x, t, ctx)  # adapters set but camera None: skipped
    assert not any("camera_adapter" in k for k in keys_before)
    torch.testing.assert_close(same, base, rtol=0, atol=0)
    torch.testing.assert_close(no_cam, base, rtol=0, atol=0)
    assert rel_err(changed, base) > 1e-3


def test_bf16_weights_track_float32() -> None:
    torch.manual_seed(8)
    cfg = small_cfg(text_len=8)
    model = WanDiT(cfg).eval()
    randomize(model, 9)
    x, t, ctx = torch.randn(1, 16, 2, 4, 4), torch.tensor([600.0]), torch.randn(1, 8, cfg.text_dim)
    with torch.no_grad():
        ref = model(x, t, ctx)
        out = model.to(torch.bfloat16)(x.bfloat16(), t, ctx.bfloat16())
    assert out.dtype == torch.float32
    assert rel_err(out, ref) < 5e-2


def test_bf16_fused_elementwise_taken_and_no_less_accurate(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 weights take the fused forms (rms_norm, addcmul); float32 weights never do; the fused forms are
    at least as close to the float32 computation as the old separate float32 passes."""
    import fantasy_world.models.wan.dit as dit

    calls = {"rms_norm": 0, "addcmul": 0}
    real_rms, real_addcmul = torch.nn.functional.rms_norm, torch.addcmul

    def rms(*a, **k):  # noqa: ANN002, ANN003
        calls["rms_norm"] += 1
        return real_rms(*a, **k)

    def addcmul(*a, **k):  # noqa: ANN002, ANN003
        calls["addcmul"] += 1
        return real_addcmul(*a, **k)

    monkeypatch.setattr(torch.nn.functional, "rms_norm", rms)
    monkeypatch.setattr(torch, "addcmul", addcmul)
    cfg = small_cfg(text_len=8, image_input=True)
    model = WanDiT(cfg).eval()
    randomize(model, 3)
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(1, 16, 2, 4, 4, generator=g), torch.randn(1, 20, 2, 4, 4, generator=g)
    ctx, clip = torch.randn(1, 8, cfg.text_dim, generator=g), torch.randn(1, 257, cfg.clip_dim, generator=g)
    t = torch.tensor([700.0])

    def run(m: WanDiT, dtype: torch.dtype) -> torch.Tensor:
        state = m.embed(x.to(dtype), t, ctx.to(dtype), clip_fea=clip.to(dtype), y=y.to(dtype))
        tokens = state.tokens
        for block in m.blocks:
            tokens = block(tokens, state)
        return tokens  # the float32 residual stream, before the bf16 head rounds it

    with torch.no_grad():
        model.to(torch.bfloat16).float()  # bf16-exact weights, so both precisions see the same values
        ref = run(model, torch.float32)
        assert calls == {"rms_norm": 0, "addcmul": 0}  # float32 weights: the exact expressions only
        low = model.to(torch.bfloat16)
        fused = run(low, torch.bfloat16)
        n_blocks = cfg.num_layers
        assert calls["rms_norm"] >= 3 * n_blocks and calls["addcmul"] == 4 * n_blocks, calls
        monkeypatch.setattr(dit, "_fused", lambda layer: False)
        plain = run(low, torch.bfloat16)
    assert 0 < rel_err(fused, plain) < 1e-2  # a different rounding order, within bf16 rounding
    assert rel_err(fused, ref) <= 1.1 * rel_err(plain, ref)


def test_input_errors() -> None:
    cfg = small_cfg(text_len=8, num_layers=1)
    model = WanDiT(cfg)
    x, t = torch.randn(1, 16, 2, 4, 4), torch.tensor([1.0])
    with pytest.raises(InputError, match="at most 8"):
        model(x, t, torch.randn(1, 9, cfg.text_dim))
    with pytest.raises(InputError, match="expected multiples of patch"):
        model(torch.randn(1, 16, 2, 3, 4), t, torch.randn(1, 8, cfg.text_dim))
    with pytest.raises(InputError, match="clip_fea"):
        model(x, t, torch.randn(1, 8, cfg.text_dim), clip_fea=torch.randn(1, 257, 1280))
    i2v = WanDiT(small_cfg(image_input=True, text_len=8, num_layers=1))
    with pytest.raises(InputError, match="clip_fea"):
        i2v(x, t, torch.randn(1, 8, cfg.text_dim), y=torch.randn(1, 20, 2, 4, 4))
    with pytest.raises(InputError, match="no y"):
        i2v(x, t, torch.randn(1, 8, cfg.text_dim), clip_fea=torch.randn(1, 257, 40))
    with pytest.raises(InputError, match=r"\[B, 36, F, H, W\]"):
        i2v(
            x,
            t,
            torch.randn(1, 8, cfg.text_dim),
            clip_fea=torch.randn(1, 257, 40),
            y=torch.randn(1, 4, 2, 4, 4),
        )


def test_presets() -> None:
    c = wan_dit_config("wan2.1-i2v-14b")
    assert (c.dim, c.ffn_dim, c.num_heads, c.num_layers, c.in_dim, c.image_input) == (
        5120,
        13824,
        40,
        40,
        36,
        True,
    )
    assert c.head_dim == 128 and c.context_tokens == 257 + 512
    s = wan_dit_config("wan2.1-t2v-1.3b")
    assert (s.dim, s.ffn_dim, s.num_heads, s.num_layers, s.in_dim, s.image_input) == (
        1536,
        8960,
        12,
        30,
        16,
        False,
    )
    tiny = wan_dit_config("tiny")
    assert (tiny.dim, tiny.ffn_dim, tiny.num_heads, tiny.num_layers, tiny.text_dim, tiny.text_len) == (
        256,
        512,
        4,
        8,
        384,
        64,
    )
    assert wan_dit_config("tiny", dim=128).dim == 128 and wan_dit_config("tiny").dim == 256
    with pytest.raises(InputError, match="unknown Wan DiT config"):
        wan_dit_config("wan9")
    with pytest.raises(InputError, match="multiple of num_heads"):
        wan_dit_config("tiny", dim=250)


def test_rope_split_and_table() -> None:
    assert wan_rope_split(128) == (44, 42, 42)
    assert wan_rope_split(64) == (24, 20, 20)
    grid = (3, 2, 5)
    freqs = wan_rope_freqs(64, grid, "cpu")
    assert freqs.shape == (30, 32) and freqs.dtype == torch.complex64
    torch.testing.assert_close(freqs.abs(), torch.ones(30, 32))
    # Token (f=2, h=1, w=3) -> row 2*10 + 1*5 + 3; temporal part is rope over f, then h, then w.
    row = freqs[2 * 10 + 1 * 5 + 3]
    expect = torch.cat([rope_1d_table(24, 3)[2], rope_1d_table(20, 2)[1], rope_1d_table(20, 5)[3]])
    torch.testing.assert_close(row, expect.to(torch.complex64))
    # angle of channel pair j of a d-dim part at position p is p * 10000^(-2j/d)
    assert torch.angle(rope_1d_table(20, 5)[1, 3]).item() == pytest.approx(10000 ** (-6 / 20))
    assert torch.equal(freqs[0], torch.ones(32, dtype=torch.complex64))


def test_apply_rope_rotates_pairs_and_identity_rows() -> None:
    torch.manual_seed(10)
    x = torch.randn(2, 30, 3, 64)
    freqs = wan_rope_freqs(64, (3, 2, 5))
    out = apply_rope(x, freqs)
    assert out.shape == x.shape and out.dtype == x.dtype
    # Rotation keeps the norm of each (2i, 2i+1) pair; row 0 (position 0,0,0) is the identity.
    torch.testing.assert_close(out.unflatten(-1, (32, 2)).norm(dim=-1), x.unflatten(-1, (32, 2)).norm(dim=-1))
    torch.testing.assert_close(out[:, 0], x[:, 0])
    # Pair (0,1) of token 7 rotated by its angle, written out by hand.
    ang = torch.angle(freqs[7, 0]).item()
    a, b = x[1, 7, 2, 0].item(), x[1, 7, 2, 1].item()
    assert out[1, 7, 2, 0].item() == pytest.approx(a * math.cos(ang) - b * math.sin(ang), abs=1e-5)
    assert out[1, 7, 2, 1].item() == pytest.approx(a * math.sin(ang) + b * math.cos(ang), abs=1e-5)
    # Prepending identity rows (special tokens) leaves those tokens untouched.
    ext = torch.cat([torch.ones(4, 32, dtype=torch.complex64), freqs])
    y = torch.randn(1, 34, 3, 64)
    out2 = apply_rope(y, ext)
    torch.testing.assert_close(out2[:, :4], y[:, :4])
    torch.testing.assert_close(out2[:, 4:], apply_rope(y[:, 4:], freqs))
    assert apply_rope(x.bfloat16(), freqs).dtype == torch.bfloat16


def test_attention_layout_matches_manual_softmax() -> None:
    torch.manual_seed(11)
    q, k, v = torch.randn(2, 5, 3, 8), torch.randn(2, 7, 3, 8), torch.randn(2, 7, 3, 8)
    out = attention(q, k, v)
    weights = torch.softmax(torch.einsum("blhd,bmhd->bhlm", q, k) / math.sqrt(8), dim=-1)
    torch.testing.assert_close(out, torch.einsum("bhlm,bmhd->blhd", weights, v), rtol=1e-5, atol=1e-5)


def test_meta_construction_has_no_real_storage() -> None:
    with torch.device("meta"):
        model = WanDiT(wan_dit_config("wan2.1-t2v-1.3b"))
    assert all(p.is_meta for p in model.parameters())
    assert not list(model.buffers())
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(1.42e9, rel=0.02)
