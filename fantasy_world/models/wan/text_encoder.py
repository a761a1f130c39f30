"""One interface for prompt encoders, plus the factory that picks umT5-XXL or the bundled MiniLM.

Wan's DiT cross-attends to umT5 features that were cut at each prompt's token length and zero-padded
back to 512 tokens; every encoder here returns that layout directly so callers never see padding tokens.
"""

from __future__ import annotations

import html
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fantasy_world.errors import CheckpointError, InputError

log = logging.getLogger(__name__)

TEXT_ENCODER_KINDS = ("umt5-xxl", "minilm")

try:  # Wan runs prompts through ftfy; it is optional here and only repairs mis-decoded text.
    import ftfy as _ftfy
except ImportError:  # pragma: no cover - depends on the environment
    _ftfy = None


def clean_prompt(text: str) -> str:
    """Wan's ``clean='whitespace'``: fix text (ftfy if installed), unescape HTML twice, collapse whitespace."""
    if _ftfy is not None:
        text = _ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def validate_prompts(prompts: Sequence[str]) -> list[str]:
    """Return the prompts as a list, or raise :class:`InputError` for an empty list or a non-string item."""
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise InputError(f"prompts: expected a non-empty list of strings, got {type(prompts).__name__}")
    if len(prompts) == 0:
        raise InputError("prompts: expected a non-empty list of strings, got an empty list")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise InputError(f"prompts[{i}]: expected a string, got {type(p).__name__}")
    return list(prompts)


def tokenize_prompts(
    tokenizer: Any, prompts: list[str], max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean and tokenize to ``[B, max_length]`` ids and attention mask, warning about truncated prompts."""
    cleaned = [clean_prompt(p) for p in prompts]
    full = tokenizer(cleaned, add_special_tokens=True, padding=False, truncation=False, verbose=False)
    for i, ids in enumerate(full["input_ids"]):
        if len(ids) > max_length:
            log.warning("prompt %d has %d tokens; truncated to the encoder's %d", i, len(ids), max_length)
    out = tokenizer(
        cleaned,
        add_special_tokens=True,
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    return out["input_ids"], out["attention_mask"]


def zero_past_length(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Set every position whose attention-mask entry is 0 to exactly zero (NaN-safe)."""
    keep = mask.to(device=features.device).bool().unsqueeze(-1)
    return features.masked_fill(~keep, 0.0)


class TextEncoder(nn.Module, ABC):
    """A frozen prompt encoder: ``encode(prompts) -> [B, max_length, dim]``, zero past each prompt's length.

    Prompts are whitespace-cleaned as in Wan; prompts longer than ``max_length`` tokens (special tokens
    included) are truncated to ``max_length`` and a warning is logged. Features keep the model's dtype.
    """

    dim: int
    max_length: int

    @abstractmethod
    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, both ``[B, max_length]``."""

    @abstractmethod
    def encode_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-token features ``[B, L, dim]`` for ids and mask already on the model's device."""

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
        """Encode prompts to ``[B, max_length, dim]`` features, exactly zero at and past each token length.

        ``device`` is where the output goes (default: the model's device). Raises :class:`InputError` for
        an empty list or non-string prompts; over-long prompts are truncated with a logged warning.
        """
        prompts = validate_prompts(prompts)
        ids, mask = self.tokenize(prompts)
        here = self.device
        feats = self.encode_tokens(ids.to(here), mask.to(here))
        feats = zero_past_length(feats, mask)
        return feats if device is None else feats.to(device)


def load_text_encoder(
    kind: str,
    path: str | Path | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> TextEncoder:
    """Build a frozen text encoder by kind.

    ``"umt5-xxl"``: ``path`` is ``models_t5_umt5-xxl-enc-bf16.pth`` (tokenizer in ``google/umt5-xxl`` next
    to it) or the Wan model folder holding both; dtype defaults to bfloat16. ``"minilm"``: ``path`` is None
    for the bundled all-MiniLM-L6-v2 or a local BERT/sentence-transformers folder; dtype defaults to float32.
    """
    if kind == "umt5-xxl":
        from fantasy_world.models.wan.umt5 import load_umt5

        if path is None:
            raise CheckpointError(
                "umt5-xxl: no path given; expected models_t5_umt5-xxl-enc-bf16.pth or the Wan model folder"
            )
        return load_umt5(path, device=device, dtype=dtype or torch.bfloat16)
    if kind == "minilm":
        from fantasy_world.models.wan.minilm import load_minilm

        return load_minilm(path, device=device, dtype=dtype or torch.float32)
    raise InputError(f"text encoder kind {kind!r}: expected one of {', '.join(TEXT_ENCODER_KINDS)}")
