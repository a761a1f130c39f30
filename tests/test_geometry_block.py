"""Geometry block: official key layout, AdaLN quirk, plain (camera-trunk) mode and 2-D RoPE."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fantasy_world.models.fantasy.layers import GeometryBlock, apply_rope_2d, patch_positions

KEYS_JSON = (
    Path(__file__).resolve().parent / "fixtures" / "official_keys_wan21.json"
)  # copy of the official key list


def _official(prefix: str) -> dict[str, list[int]]:
    keys = json.loads(KEYS_JSON.read_text())["keys"]
    return {k[len(prefix) :]: list(v) for k, v in keys.items() if k.startswith(prefix)}


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("prefix", ["IRGBlock.0.x_agg.", "vggt.aggregator.frame_blocks.23."])
def test_full_size_keys_match_official(prefix: str) -> None:
    with torch.device("meta"):
        block = GeometryBlock(1024, 16)
    assert _shapes(block) == _official(prefix)
    assert sum(p.numel() for p in block.parameters()) == 12_604_672
    assert not list(block.buffers())


def _complex_rope(t: torch.Tensor, pos: torch.Tensor, freq: float = 100.0) -> torch.Tensor:
    """Independent RoPE: each axis half is a complex vector (pair j with j + d/2) rotated by pos·θ_j."""
    d = t.shape[-1] // 2
    out = []
    for axis, part in enumerate(t.split(d, dim=-1)):
        theta = freq ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
        ang = pos[..., axis].double()[:, None, :, None] * theta  # [B, 1, N, d/2]
        z = torch.complex(part[..., : d // 2].double(), part[..., d // 2 :].double()) * torch.polar(
            torch.ones_like(ang), ang
        )
        out.append(torch.cat([z.real, z.imag], dim=-1))
    return torch.cat(out, dim=-1).to(t.dtype)


def _attention_ref(block: GeometryBlock, h: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    """Attention written out with explicit softmax, LayerNorm over heads and the complex RoPE."""
    attn = block.attn
    b, n, c = h.shape
    nh, hd = attn.num_heads, attn.head_dim
    q, k, v = (h @ attn.qkv.weight.T + attn.qkv.bias).split(c, dim=-1)
    q, k, v = (t.reshape(b, n, nh, hd).transpose(1, 2) for t in (q, k, v))
    if isinstance(attn.q_norm, torch.nn.LayerNorm):
        q = F.layer_norm(q, (hd,), attn.q_norm.weight, attn.q_norm.bias, attn.q_norm.eps)
        k = F.layer_norm(k, (hd,), attn.k_norm.weight, attn.k_norm.bias, attn.k_norm.eps)
    if pos is not None:
        q, k = _complex_rope(q, pos), _complex_rope(k, pos)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, n, c)
    return out @ attn.proj.weight.T + attn.proj.bias


def _mlp_ref(block: GeometryBlock, h: torch.Tensor) -> torch.Tensor:
    m = block.mlp
    return F.gelu(h @ m.fc1.weight.T + m.fc1.bias) @ m.fc2.weight.T + m.fc2.bias


def _randomise(block: GeometryBlock) -> None:
    """Non-trivial norms and layer scales so every term of the formula matters."""
    with torch.no_grad():
        for p in block.parameters():
            if p.ndim == 1:
                p.copy_(torch.randn_like(p) * 0.5 + 1.0)


@pytest.fixture()
def block() -> GeometryBlock:
    torch.manual_seed(0)
    blk = GeometryBlock(32, 4, mlp_ratio=2.0)
    _randomise(blk)
    return blk.eval()


def test_adaln_quirk_matches_direct_formula(block: GeometryBlock) -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 7, 32)
    pos = patch_positions(2, 2, 3, 1, "cpu")
    e0 = torch.randn(2, 6, 32)
    e = [t for t in (block.modulation + e0).chunk(6, dim=1)]
    g1, g2 = block.ls1.gamma, block.ls2.gamma
    h = F.layer_norm(x, (32,), block.norm1.weight, block.norm1.bias, block.norm1.eps)
    x1 = x + g1 * _attention_ref(block, h * (1 + e[1]) + e[0], pos)
    h2 = F.layer_norm(x1, (32,), block.norm2.weight, block.norm2.bias, block.norm2.eps)
    expected = x1 + g2 * (_mlp_ref(block, h2) * (1 + e[4]) + e[3]) * e[5]
    torch.testing.assert_close(block(x, pos, e0), expected, rtol=1e-5, atol=1e-5)


def test_attention_gate_chunk_is_unused_and_gate5_zero_skips_ffn(block: GeometryBlock) -> None:
    torch.manual_seed(2)
    x = torch.randn(1, 7, 32)
    pos = patch_positions(1, 2, 3, 1, "cpu")
    e0 = torch.randn(1, 6, 32)
    e0_other = e0.clone()
    e0_other[:, 2] += 5.0  # e[2] would be the attention gate; the official block ignores it
    torch.testing.assert_close(block(x, pos, e0), block(x, pos, e0_other))
    gate_off = e0.clone()
    gate_off[:, 5] = -block.modulation.detach()[:, 5]  # e[5] == 0 → FFN residual vanishes
    attended, mods = block.attend(x, pos, gate_off)
    torch.testing.assert_close(block.feed_forward(attended, mods), attended, rtol=0, atol=1e-6)


def test_plain_mode_without_e0(block: GeometryBlock) -> None:
    torch.manual_seed(3)
    x = torch.randn(2, 7, 32)
    pos = patch_positions(2, 2, 3, 1, "cpu")
    h = F.layer_norm(x, (32,), block.norm1.weight, block.norm1.bias, block.norm1.eps)
    x1 = x + block.ls1.gamma * _attention_ref(block, h, pos)
    h2 = F.layer_norm(x1, (32,), block.norm2.weight, block.norm2.bias, block.norm2.eps)
    expected = x1 + block.ls2.gamma * _mlp_ref(block, h2)
    torch.testing.assert_close(block(x, pos), expected, rtol=1e-5, atol=1e-5)


def test_camera_trunk_variant_has_no_qk_norm_and_no_rope() -> None:
    torch.manual_seed(4)
    blk = GeometryBlock(32, 4, qk_norm=False, rope=False).eval()
    assert not any("q_norm" in k or "k_norm" in k for k in blk.state_dict())
    x = torch.randn(1, 5, 32)
    h = F.layer_norm(x, (32,), blk.norm1.weight, blk.norm1.bias, blk.norm1.eps)
    x1 = x + blk.ls1.gamma * _attention_ref(blk, h, None)
    h2 = F.layer_norm(x1, (32,), blk.norm2.weight, blk.norm2.bias, blk.norm2.eps)
    expected = x1 + blk.ls2.gamma * _mlp_ref(blk, h2)
    # positions are ignored when the block has no RoPE
    torch.testing.assert_close(blk(x, patch_positions(1, 2, 2, 1, "cpu")), expected, rtol=1e-5, atol=1e-5)


def test_attend_then_feed_forward_equals_forward(block: GeometryBlock) -> None:
    torch.manual_seed(5)
    x = torch.randn(3, 7, 32)
    pos = patch_positions(3, 2, 3, 1, "cpu")
    for e0 in (torch.randn(3, 6, 32), None):
        torch.testing.assert_close(block.feed_forward(*block.attend(x, pos, e0)), block(x, pos, e0))


def test_frame_blocks_repeat_e0_per_sample(block: GeometryBlock) -> None:
    torch.manual_seed(6)
    b, s = 2, 3
    x = torch.randn(b * s, 7, 32)
    pos = patch_positions(b * s, 2, 3, 1, "cpu")
    e0 = torch.randn(b, 6, 32)
    repeated = e0[:, None].expand(b, s, 6, 32).reshape(b * s, 6, 32)
    torch.testing.assert_close(block(x, pos, e0), block(x, pos, repeated))
    with pytest.raises(ValueError):
        block(torch.randn(5, 7, 32), patch_positions(5, 2, 3, 1, "cpu"), e0)


def test_patch_positions_layout() -> None:
    pos = patch_positions(2, 2, 3, 5, "cpu")
    assert pos.shape == (2, 11, 2) and pos.dtype == torch.long
    assert torch.equal(pos[:, :5], torch.zeros(2, 5, 2, dtype=torch.long))
    assert pos[0, 5:].tolist() == [[1, 1], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]


def test_rope_matches_complex_rotation_and_is_relative() -> None:
    torch.manual_seed(7)
    q = torch.randn(2, 3, 6, 16, dtype=torch.float64)
    k = torch.randn(2, 3, 6, 16, dtype=torch.float64)
    pos = torch.randint(0, 9, (2, 6, 2))
    # angles are formed in float32 as in VGGT, hence the float32-level tolerance
    torch.testing.assert_close(apply_rope_2d(q, pos), _complex_rope(q, pos), rtol=0, atol=2e-6)
    # norms are kept and q·k depends only on the position difference
    torch.testing.assert_close(apply_rope_2d(q, pos).norm(dim=-1), q.norm(dim=-1))
    shift = torch.tensor([3, 5])
    s0 = (apply_rope_2d(q, pos) * apply_rope_2d(k, pos.flip(1))).sum(-1)
    s1 = (apply_rope_2d(q, pos + shift) * apply_rope_2d(k, pos.flip(1) + shift)).sum(-1)
    torch.testing.assert_close(s0, s1, rtol=0, atol=1e-5)
    # position (0, 0) is the identity rotation
    torch.testing.assert_close(apply_rope_2d(q, torch.zeros_like(pos)), q)
    # the first half of the head dim follows y only
    moved_x = pos.clone()
    moved_x[..., 1] += 4
    assert torch.allclose(apply_rope_2d(q, pos)[..., :8], apply_rope_2d(q, moved_x)[..., :8])
    assert not torch.allclose(apply_rope_2d(q, pos)[..., 8:], apply_rope_2d(q, moved_x)[..., 8:])


def test_rope_changes_attention_only_when_positions_differ(block: GeometryBlock) -> None:
    torch.manual_seed(8)
    x = torch.randn(1, 7, 32)
    same = torch.zeros(1, 7, 2, dtype=torch.long)
    torch.testing.assert_close(block(x, same), block(x, None))
    assert not torch.allclose(block(x, patch_positions(1, 2, 3, 1, "cpu")), block(x, None), atol=1e-4)
