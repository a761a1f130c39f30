"""Shared helpers of the training / evaluation tests (no tests here): a dependency-free text encoder and
small models, so the machinery is exercised in seconds on a CPU."""

from __future__ import annotations

import hashlib

import torch

from fantasy_world.models.fantasy.config import fantasy_world_config, reduced
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan.text_encoder import TextEncoder
from fantasy_world.models.wan.vae import WanVAE, WanVAEConfig

TEXT_DIM = 16
TEXT_LEN = 8


class HashTextEncoder(TextEncoder):
    """Words → hashed ids → a seeded embedding table: deterministic features without MiniLM."""

    def __init__(self, dim: int = TEXT_DIM, max_length: int = TEXT_LEN) -> None:
        super().__init__()
        self.dim, self.max_length = dim, max_length
        gen = torch.Generator().manual_seed(0)
        self.table = torch.nn.Parameter(torch.randn(997, dim, generator=gen), requires_grad=False)

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.zeros(len(prompts), self.max_length, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, prompt in enumerate(prompts):
            for j, word in enumerate(["<s>", *prompt.split()][: self.max_length]):
                ids[i, j] = int(hashlib.md5(word.encode()).hexdigest(), 16) % 997
                mask[i, j] = 1
        return ids, mask

    def encode_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.table[ids]


def small_models(seed: int = 0) -> tuple[FantasyWorldModel, WanVAE]:
    """The tiny config's structure at reduced width (text width 16), and a 4-wide VAE."""
    torch.manual_seed(seed)
    model = FantasyWorldModel(reduced(fantasy_world_config("tiny"), context_dim=TEXT_DIM))
    vae = WanVAE(WanVAEConfig(dim=4, latents_mean=(0.0,) * 16, latents_std=(1.0,) * 16))
    return model, vae
