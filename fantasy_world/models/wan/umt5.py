"""umT5-XXL text encoder as Wan2.1 uses it, with the key names of ``models_t5_umt5-xxl-enc-bf16.pth``.

Only the encoder exists here. umT5 differs from T5 by a relative position bias per layer
(``blocks.N.pos_embedding``) instead of one shared table. Padding tokens are masked in attention
(Wan's semantics) and the outputs past each prompt's length are zeroed by :class:`TextEncoder`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fantasy_world.checkpoints.io import load_into_model, read_state_dict
from fantasy_world.errors import CheckpointError, InputError
from fantasy_world.models.wan.text_encoder import TextEncoder, tokenize_prompts

log = logging.getLogger(__name__)

UMT5_WEIGHT_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
UMT5_TOKENIZER_DIR = "google/umt5-xxl"


@dataclass(frozen=True)
class UMT5Config:
    """Encoder sizes; ``text_len`` is the padded token length the DiT expects (512 for Wan)."""

    vocab: int = 256384
    dim: int = 4096
    dim_attn: int = 4096
    dim_ffn: int = 10240
    num_heads: int = 64
    num_layers: int = 24
    num_buckets: int = 32
    max_distance: int = 128
    eps: float = 1e-6
    text_len: int = 512

    def __post_init__(self) -> None:
        if self.dim_attn % self.num_heads:
            raise InputError(
                f"UMT5Config: dim_attn {self.dim_attn} must be divisible by num_heads {self.num_heads}"
            )


UMT5_PRESETS: dict[str, UMT5Config] = {
    "umt5-xxl": UMT5Config(),
    "umt5-test": UMT5Config(
        vocab=96, dim=64, dim_attn=64, dim_ffn=96, num_heads=4, num_layers=2, text_len=16
    ),
    "umt5-test-wide-attn": UMT5Config(
        vocab=96, dim=48, dim_attn=64, dim_ffn=80, num_heads=8, num_layers=3, text_len=24
    ),
}


class RMSNorm(nn.Module):
    """T5 layer norm: scale only, no mean subtraction, computed in float32."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * y.to(self.weight.dtype)


def relative_position_bucket(
    length: int, num_buckets: int, max_distance: int, device: torch.device
) -> torch.Tensor:
    """Bidirectional T5 buckets ``[L, L]`` for key position minus query position."""
    rel = torch.arange(length, device=device)[None, :] - torch.arange(length, device=device)[:, None]
    half = num_buckets // 2
    buckets = (rel > 0).long() * half
    rel = rel.abs()
    max_exact = half // 2
    # log-spaced buckets beyond max_exact; clamp(min=1) only avoids log(0) in lanes that use the exact branch
    large = (
        max_exact
        + (
            torch.log(rel.clamp(min=1).float() / max_exact)
            / math.log(max_distance / max_exact)
            * (half - max_exact)
        ).long()
    )
    large = large.clamp(max=half - 1)
    return buckets + torch.where(rel < max_exact, rel, large)


class RelativePositionBias(nn.Module):
    """Per-layer learned bias table: bucket -> one value per head."""

    def __init__(self, num_buckets: int, num_heads: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def forward(self, buckets: torch.Tensor) -> torch.Tensor:
        return self.embedding(buckets).permute(2, 0, 1).unsqueeze(0)  # [1, H, L, L]


class Attention(nn.Module):
    """T5 self-attention: no bias terms and no 1/sqrt(d) scaling (folded into the weights)."""

    def __init__(self, dim: int, dim_attn: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim_attn, bias=False)
        self.k = nn.Linear(dim, dim_attn, bias=False)
        self.v = nn.Linear(dim, dim_attn, bias=False)
        self.o = nn.Linear(dim_attn, dim, bias=False)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[0], x.shape[1]
        q, k, v = (p(x).view(b, n, self.num_heads, -1).transpose(1, 2) for p in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=1.0)
        return self.o(out.transpose(1, 2).reshape(b, n, -1))


class GatedFeedForward(nn.Module):
    """Gated-GELU FFN: ``fc2(fc1(x) * gelu_tanh(gate(x)))``; ``gate`` is a Sequential to keep ``gate.0``."""

    def __init__(self, dim: int, dim_ffn: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, dim_ffn, bias=False), nn.GELU(approximate="tanh"))
        self.fc1 = nn.Linear(dim, dim_ffn, bias=False)
        self.fc2 = nn.Linear(dim_ffn, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x) * self.gate(x))


def _fp16_clamp(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.float16:
        limit = torch.finfo(torch.float16).max - 1000
        return x.clamp(-limit, limit)
    return x


class UMT5Block(nn.Module):
    """Pre-norm self-attention + gated FFN with this layer's own relative position bias."""

    def __init__(self, cfg: UMT5Config) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cfg.dim, cfg.eps)
        self.attn = Attention(cfg.dim, cfg.dim_attn, cfg.num_heads)
        self.norm2 = RMSNorm(cfg.dim, cfg.eps)
        self.ffn = GatedFeedForward(cfg.dim, cfg.dim_ffn)
        self.pos_embedding = RelativePositionBias(cfg.num_buckets, cfg.num_heads)

    def forward(self, x: torch.Tensor, buckets: torch.Tensor, key_pad: torch.Tensor) -> torch.Tensor:
        bias = self.pos_embedding(buckets).to(x.dtype)
        bias = bias.expand(x.shape[0], -1, -1, -1).masked_fill(key_pad, torch.finfo(x.dtype).min)
        x = _fp16_clamp(x + self.attn(self.norm1(x), bias))
        return _fp16_clamp(x + self.ffn(self.norm2(x)))


class UMT5Encoder(TextEncoder):
    """umT5 encoder; ``state_dict()`` names equal those of Wan's ``models_t5_umt5-xxl-enc-bf16.pth``.

    ``tokenizer`` (a transformers tokenizer) is only needed for :meth:`encode`; :meth:`forward` takes ids.
    """

    def __init__(self, cfg: UMT5Config, tokenizer: Any | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.dim = cfg.dim
        self.max_length = cfg.text_len
        self.tokenizer = tokenizer
        self.token_embedding = nn.Embedding(cfg.vocab, cfg.dim)
        self.blocks = nn.ModuleList(UMT5Block(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.dim, cfg.eps)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Features ``[B, L, dim]`` for ids ``[B, L]``; keys where ``mask == 0`` are not attended to."""
        x = self.token_embedding(ids)
        buckets = relative_position_bucket(
            ids.shape[1], self.cfg.num_buckets, self.cfg.max_distance, ids.device
        )
        if mask is None:
            mask = torch.ones_like(ids)
        key_pad = (mask == 0).view(ids.shape[0], 1, 1, ids.shape[1])
        for block in self.blocks:
            x = block(x, buckets, key_pad)
        return self.norm(x)

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.tokenizer is None:
            raise CheckpointError(
                "umT5 encoder: no tokenizer loaded; expected one from a google/umt5-xxl folder"
            )
        return tokenize_prompts(self.tokenizer, prompts, self.max_length)

    def encode_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self(ids, mask)


def load_umt5_tokenizer(folder: str | Path) -> Any:
    """Load the umT5 tokenizer from a local folder only (never the Hub)."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder}: umT5 tokenizer folder not found; expected the google/umt5-xxl tokenizer files there"
        )
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{folder}: not a loadable tokenizer folder (tokenizer.json/spiece.model): {first}"
        ) from None


def resolve_umt5_paths(path: str | Path, tokenizer_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Weight file and tokenizer folder from a weight file or a Wan model folder holding both."""
    path = Path(path)
    if path.is_dir():
        weights = path / UMT5_WEIGHT_FILE
        if not weights.is_file():
            raise CheckpointError(f"{path}: folder has no {UMT5_WEIGHT_FILE}; expected the Wan model folder")
    else:
        weights = path
        if not weights.is_file():
            raise CheckpointError(f"{weights}: umT5 weight file not found; expected {UMT5_WEIGHT_FILE}")
    tok = Path(tokenizer_dir) if tokenizer_dir is not None else weights.parent / UMT5_TOKENIZER_DIR
    return weights, tok


def load_umt5(
    path: str | Path,
    tokenizer_dir: str | Path | None = None,
    cfg: UMT5Config | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.bfloat16,
) -> UMT5Encoder:
    """Build on the meta device, load the weights strictly, attach the tokenizer; frozen and in eval mode."""
    cfg = cfg or UMT5_PRESETS["umt5-xxl"]
    weights, tok_dir = resolve_umt5_paths(path, tokenizer_dir)
    tokenizer = load_umt5_tokenizer(tok_dir)  # fail fast before reading gigabytes
    if len(tokenizer) > cfg.vocab:
        raise CheckpointError(
            f"{tok_dir}: tokenizer has {len(tokenizer)} tokens; the encoder embeds only {cfg.vocab}"
        )
    with torch.device("meta"):
        model = UMT5Encoder(cfg, tokenizer=tokenizer)
    state = read_state_dict(weights)
    load_into_model(model, state, source=str(weights), strict=True, dtype=dtype)
    return model.to(device=device).eval().requires_grad_(False)
