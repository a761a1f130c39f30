"""Models and inputs the benchmark times: real sizes on a GPU, the same code paths at toy sizes on a CPU.

Weights are seeded random values (``bench.harness.weights``); real checkpoints are not needed for timing. The
umT5 encoder gets a hashing word tokenizer (:class:`HashTokenizer`), because the sentencepiece vocabulary
is not available where the benchmark runs; the encoder itself is the real 24-layer umT5-XXL.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

import torch

from bench.harness.weights import build, seeded_randomize
from fantasy_world.models.fantasy.config import FantasyWorldConfig, fantasy_world_config, reduced
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan.config import WanDiTConfig, wan_dit_config
from fantasy_world.models.wan.dit import WanDiT
from fantasy_world.models.wan.umt5 import UMT5Config, UMT5Encoder
from fantasy_world.models.wan.vae import WanVAE, wan_vae_config


@dataclass(frozen=True)
class VideoSize:
    frames: int
    height: int
    width: int

    def latent(self) -> tuple[int, int, int]:
        return 1 + (self.frames - 1) // 4, self.height // 8, self.width // 8


T2V_SIZE = VideoSize(81, 480, 832)  # 32,760 tokens
I2V_SIZE = VideoSize(81, 336, 592)  # 16,317 tokens
SMALL_SIZE = VideoSize(9, 64, 96)


def _small_wan(image: bool) -> WanDiTConfig:
    kw: dict[str, object] = dict(
        dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=24, text_len=512, freq_dim=32
    )
    if image:
        kw.update(in_dim=36, image_input=True, clip_dim=40, clip_tokens=257)
    return wan_dit_config("tiny", **kw)


def wan13_config(small: bool) -> WanDiTConfig:
    return _small_wan(False) if small else wan_dit_config("wan2.1-t2v-1.3b")


def fw13_config(small: bool) -> FantasyWorldConfig:
    return fantasy_world_config("tiny") if small else fantasy_world_config("wan2.1-t2v-1.3b")


def fw14_config(small: bool) -> FantasyWorldConfig:
    """The official I2V-14B structure; at toy size the text length stays 512 (diffusers hard-codes it)."""
    if not small:
        return fantasy_world_config("wan2.1-i2v-14b")
    cfg = reduced(fantasy_world_config("wan2.1-i2v-14b"))
    return dataclasses.replace(cfg, dit=dataclasses.replace(cfg.dit, text_len=512, clip_tokens=257))


def build_wan(cfg: WanDiTConfig, device: torch.device, dtype: torch.dtype, seed: int) -> WanDiT:
    model = build(lambda: WanDiT(cfg), device, dtype)
    seeded_randomize(model, seed)
    return model


def build_fantasy(
    cfg: FantasyWorldConfig, device: torch.device, dtype: torch.dtype, seed: int
) -> FantasyWorldModel:
    """Seeded weights with the DiT parameters named as in a plain WanDiT (``dit.`` prefix stripped)."""
    model = build(lambda: FantasyWorldModel(cfg), device, dtype)
    seeded_randomize(model, seed, key=lambda n: n[4:] if n.startswith("dit.") else "fw." + n)
    return model


def build_vae(small: bool, device: torch.device, seed: int) -> WanVAE:
    vae = build(lambda: WanVAE(wan_vae_config("tiny" if small else "wan2.1")), device, torch.float32)
    seeded_randomize(vae, seed)
    return vae


class HashTokenizer:
    """Word-level ids by CRC32 (callable like a transformers tokenizer; pads to ``max_length``)."""

    def __init__(self, vocab: int) -> None:
        self.vocab = vocab

    def __len__(self) -> int:
        return self.vocab

    def _ids(self, text: str) -> list[int]:
        return [2 + zlib.crc32(w.encode()) % (self.vocab - 2) for w in text.split()] + [1]

    def __call__(self, texts, max_length: int | None = None, padding=False, return_tensors=None, **_):
        ids = [self._ids(t) for t in texts]
        if max_length is not None:
            ids = [i[:max_length] for i in ids]
        if padding == "max_length":
            mask = [[1] * len(i) + [0] * (max_length - len(i)) for i in ids]
            ids = [i + [0] * (max_length - len(i)) for i in ids]
        else:
            mask = [[1] * len(i) for i in ids]
        if return_tensors == "pt":
            return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
        return {"input_ids": ids, "attention_mask": mask}


def build_umt5(text_dim: int, text_len: int, small: bool, device: torch.device, seed: int) -> UMT5Encoder:
    """The real umT5-XXL encoder (bf16) at full size; a 2-layer one of width ``text_dim`` at toy size."""
    if small:
        cfg = UMT5Config(
            vocab=1000, dim=text_dim, dim_attn=64, dim_ffn=96, num_heads=4, num_layers=2, text_len=text_len
        )
        dtype = torch.float32
    else:
        cfg, dtype = UMT5Config(), torch.bfloat16
    enc = build(lambda: UMT5Encoder(cfg, tokenizer=HashTokenizer(cfg.vocab)), device, dtype)
    seeded_randomize(enc, seed)
    return enc


def wan_inputs(
    cfg: WanDiTConfig,
    size: VideoSize,
    device: torch.device,
    dtype: torch.dtype,
    batch: int = 1,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Noisy latents, a timestep, padded text features (and CLIP tokens + ``y`` for I2V), never zeros."""
    gen = torch.Generator(device=device).manual_seed(seed)
    f, h, w = size.latent()
    out = {
        "x": torch.randn(batch, cfg.out_dim, f, h, w, generator=gen, device=device).to(dtype),
        "t": torch.full((batch,), 500.0, device=device),
    }
    ctx = torch.randn(batch, cfg.text_len, cfg.text_dim, generator=gen, device=device)
    ctx[:, min(cfg.text_len, 96) :] = 0.0  # T5 features are zero past the prompt's tokens
    out["context"] = ctx.to(dtype)
    if cfg.image_input:
        out["clip_fea"] = torch.randn(batch, cfg.clip_tokens, cfg.clip_dim, generator=gen, device=device).to(
            dtype
        )
        out["y"] = torch.randn(batch, cfg.in_dim - cfg.out_dim, f, h, w, generator=gen, device=device).to(
            dtype
        )
    return out


def plucker_input(size: VideoSize, device: torch.device, dtype: torch.dtype, seed: int = 1) -> torch.Tensor:
    """Random ray maps [1, T, H, W, 6] (the pose encoder's cost does not depend on their values)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(1, size.frames, size.height, size.width, 6, generator=gen, device=device).to(dtype)


def param_names(module: torch.nn.Module, drop: str = ".camera_adapter.") -> list[str]:
    return [n for n, _ in module.named_parameters() if drop not in n]
