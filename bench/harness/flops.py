"""Analytic FLOP counts of one forward (matmul 2·M·N·K, attention 4·Lq·Lk·d).

Why analytic: the benchmark reports TFLOP/s and % of the measured matmul ceiling, and the count must not
depend on which kernels ran. Convention: a matmul is 2·M·N·K, attention is 4·Lq·Lk·d (QKᵀ and PV),
softmax, norms and element-wise work are free. Text/image key-value projections are counted (they are
recomputed every forward in our code), the prompt encoders and heads are not.
"""

from __future__ import annotations

from dataclasses import dataclass

from fantasy_world.models.fantasy.camera_adapter import padded_width
from fantasy_world.models.fantasy.config import FantasyWorldConfig
from fantasy_world.models.wan.config import WanDiTConfig


@dataclass(frozen=True)
class Flops:
    """FLOPs of one forward split into linear layers (matmuls/convs) and attention."""

    linear: float
    attention: float

    @property
    def total(self) -> float:
        return self.linear + self.attention

    def __add__(self, other: Flops) -> Flops:
        return Flops(self.linear + other.linear, self.attention + other.attention)

    def scaled(self, k: float) -> Flops:
        return Flops(self.linear * k, self.attention * k)


def token_grid(
    cfg: WanDiTConfig, frames: int, height: int, width: int, vae_stride=(4, 8, 8)
) -> tuple[int, int, int]:
    """Video size -> DiT token grid (f, h, w), e.g. 81x480x832 -> (21, 30, 52) = 32,760 tokens."""
    st, sh, sw = vae_stride
    pt, ph, pw = cfg.patch_size
    return (1 + (frames - 1) // st) // pt, height // sh // ph, width // sw // pw


def _mm(m: float, n: float, k: float) -> float:
    return 2.0 * m * n * k


def wan_block_flops(cfg: WanDiTConfig, tokens: int) -> Flops:
    """One Wan block over ``tokens`` video tokens (text padded to ``text_len``; I2V adds CLIP tokens)."""
    d, L, lt = cfg.dim, tokens, cfg.text_len
    linear = _mm(L, d, 4 * d) + _mm(L, d, 2 * d) + _mm(lt, d, 2 * d) + _mm(L, 2 * cfg.ffn_dim, d)
    attn = 4.0 * L * L * d + 4.0 * L * lt * d
    if cfg.image_input:
        linear += _mm(cfg.clip_tokens, d, 2 * d)
        attn += 4.0 * L * cfg.clip_tokens * d
    return Flops(linear, attn)


def wan_dit_flops(cfg: WanDiTConfig, grid: tuple[int, int, int]) -> Flops:
    """One Wan DiT forward (blocks, patch embedding, text/time/image embeddings, head)."""
    f, h, w = grid
    L, d = f * h * w, cfg.dim
    blocks = wan_block_flops(cfg, L).scaled(cfg.num_layers)
    outer = (
        _mm(L, d, cfg.in_dim * cfg.patch_volume)  # patch embedding
        + _mm(L, cfg.out_dim * cfg.patch_volume, d)  # head
        + _mm(cfg.text_len, d, cfg.text_dim)
        + _mm(cfg.text_len, d, d)  # text embedding
        + _mm(1, d, cfg.freq_dim)
        + _mm(1, d, d)
        + _mm(1, 6 * d, d)  # time embedding/projection
    )
    if cfg.image_input:
        outer += _mm(cfg.clip_tokens, cfg.clip_dim, cfg.clip_dim) + _mm(cfg.clip_tokens, d, cfg.clip_dim)
    return blocks + Flops(outer, 0.0)


def _geo_block(dim: int, mlp_hidden: int, tokens: int, attn_groups: int, group_len: int) -> Flops:
    linear = _mm(tokens, 4 * dim, dim) + _mm(tokens, 2 * mlp_hidden, dim)
    return Flops(linear, 4.0 * attn_groups * group_len * group_len * dim)


def fantasy_extra_flops(cfg: FantasyWorldConfig, grid: tuple[int, int, int]) -> Flops:
    """What one FantasyWorld forward adds to the Wan forward (camera adapters, bridge, branch, bicross)."""
    f, h, w = grid
    d, L = cfg.dit.dim, f * h * w
    out = camera_adapter_flops(cfg, grid)
    if cfg.bridge == "transformer":
        per = Flops(_mm(L, 4 * d, d) + _mm(L, 2 * cfg.bridge_ffn_dim, d), 4.0 * L * L * d)
        out += per.scaled(cfg.bridge_layers)
    out += Flops(_mm(L, cfg.geo_dim, d), 0.0)
    g, p = cfg.geo_dim, cfg.num_special + h * w
    lg, hidden = f * p, int(g * cfg.geo_mlp_ratio)
    out += _geo_block(g, hidden, lg, f, p).scaled(cfg.num_irg)  # frame blocks
    out += _geo_block(g, hidden, lg, 1, lg).scaled(cfg.num_irg)  # global blocks
    e = cfg.bicross_dim
    bi = Flops(_mm(L, 2 * e, d) + _mm(L, d, e) + _mm(lg, 2 * e, g) + _mm(lg, g, e), 2 * 4.0 * L * lg * e)
    out += bi.scaled(cfg.num_irg)
    out += Flops(_mm(1, g, cfg.dit.freq_dim) + _mm(1, g, g) + _mm(1, 6 * g, g), 0.0)
    return out


def fantasy_flops(cfg: FantasyWorldConfig, grid: tuple[int, int, int]) -> Flops:
    """One conditional FantasyWorld forward without the heads."""
    return wan_dit_flops(cfg.dit, grid) + fantasy_extra_flops(cfg, grid)


def camera_adapter_flops(cfg: FantasyWorldConfig, grid: tuple[int, int, int]) -> Flops:
    """The camera adapters alone (they stay in the negative pass when the geometry branch is skipped)."""
    if not cfg.has_camera:
        return Flops(0.0, 0.0)
    f, h, w = grid
    d, L = cfg.dit.dim, f * h * w
    c, k, v = cfg.plucker_fea_dim, cfg.adapter_k_hidden, cfg.adapter_v_hidden
    v = padded_width(v)  # the width the forward runs the value adapter at
    per = _mm(L, c, c) + _mm(L, k, d) + _mm(L, c, k) + _mm(L, v, c) + _mm(L, d, v)
    return Flops(per * len(cfg.adapter_block_ids), 0.0)
