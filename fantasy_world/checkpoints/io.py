"""Safe weight I/O.

Files are read without ever executing code: safetensors directly, ``.pth``/``.pt``/``.bin`` only through
``torch.load(weights_only=True)``, and sharded folders through their ``*.index.json``. Models are meant to
be built on the meta device and filled with ``assign=True`` so that a 14B model never exists twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fantasy_world.errors import CheckpointError

log = logging.getLogger(__name__)

_PICKLE_SUFFIXES = {".pth", ".pt", ".bin", ".ckpt"}
_LIST_LIMIT = 8


def _read_one(path: Path, device: str) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device=device)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if path.suffix in _PICKLE_SUFFIXES:
        try:
            obj = torch.load(str(path), map_location=device, weights_only=True, mmap=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file for the user
            raise CheckpointError(
                f"{path}: refused or unreadable with torch.load(weights_only=True) "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        for wrapper in ("state_dict", "model", "module"):
            if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
                obj = obj[wrapper]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CheckpointError(f"{path}: expected a flat dict of tensors (a state dict)")
        return obj
    raise CheckpointError(f"{path}: unsupported weight file type; expected .safetensors or .pth")


def read_state_dict(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Read a state dict from a file, a sharded ``*.index.json``, or a folder holding either."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: weight file or folder not found")
    if path.is_dir():
        indexes = sorted(path.glob("*.safetensors.index.json")) + sorted(path.glob("*.bin.index.json"))
        if indexes:
            return read_state_dict(indexes[0], device)
        files = sorted(path.glob("*.safetensors")) or sorted(
            p for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES
        )
        if not files:
            raise CheckpointError(f"{path}: folder holds no .safetensors/.pth weights or *.index.json")
        return _merge((_read_one(f, device) for f in files), path)
    if path.name.endswith(".index.json"):
        try:
            index = json.loads(path.read_text())
            weight_map: Mapping[str, str] = index["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: not a valid shard index (needs a 'weight_map'): {exc}") from None
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (path.parent / s).is_file()]
        if missing:
            raise CheckpointError(
                f"{path}: shard files missing next to the index: {', '.join(missing[:_LIST_LIMIT])}"
            )
        state = _merge((_read_one(path.parent / s, device) for s in shards), path)
        absent = sorted(set(weight_map) - set(state))
        if absent:
            raise CheckpointError(f"{path}: index lists keys absent from the shards: {_names(absent)}")
        return state
    return _read_one(path, device)


def _merge(parts: Iterable[dict[str, torch.Tensor]], origin: Path) -> dict[str, torch.Tensor]:
    merged: dict[str, torch.Tensor] = {}
    for part in parts:
        dup = set(part) & set(merged)
        if dup:
            raise CheckpointError(f"{origin}: key(s) appear in more than one shard: {_names(sorted(dup))}")
        merged.update(part)
    return merged


def save_state_dict(
    state: Mapping[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Write a safetensors file (tensors made contiguous, shared storage split)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path), metadata=metadata)


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LIST_LIMIT])
    return shown + (f" (+{len(keys) - _LIST_LIMIT} more)" if len(keys) > _LIST_LIMIT else "")


@dataclass
class LoadReport:
    """What happened when a state dict was loaded into a model."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        parts = [f"{self.source}: loaded {len(self.loaded)} tensors"]
        if self.missing:
            parts.append(f"missing {len(self.missing)}: {_names(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected {len(self.unexpected)}: {_names(self.unexpected)}")
        if self.mismatched:
            shown = [f"{k} file {tuple(a)} vs model {tuple(b)}" for k, a, b in self.mismatched]
            parts.append(f"mis-shaped {len(shown)}: {_names(shown)}")
        return "; ".join(parts)


def load_into_model(
    model: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    strict: bool = True,
    allow_missing: Callable[[str], bool] | None = None,
    dtype: torch.dtype | None = None,
) -> LoadReport:
    """Load ``state`` into ``model`` with ``assign=True`` and report every key problem by name.

    With ``strict`` any missing (unless ``allow_missing(key)``), unexpected or mis-shaped key raises a
    :class:`CheckpointError` naming them and ``source`` (the file that was expected to hold them).
    FP8 tensors and FP8 layers (``fantasy_world.quant``) are reconciled first: never cast, quantised or
    dequantised to what the model stores.
    """
    from fantasy_world.quant.fp8_state import fit_state_to_model, needs_fit

    if needs_fit(model, state):
        state, dtype = fit_state_to_model(model, state, dtype), None
    own = model.state_dict(keep_vars=True)
    report = LoadReport(source=source)
    usable: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(own[key].shape) != tuple(tensor.shape):
            report.mismatched.append((key, tuple(tensor.shape), tuple(own[key].shape)))
        else:
            want = dtype if dtype is not None and tensor.is_floating_point() else None
            usable[key] = tensor.to(want) if want is not None else tensor
    report.missing = [k for k in own if k not in state and not (allow_missing and allow_missing(k))]
    # an FP8 layer's scale is implied by its weight: name only the weight when both are absent
    report.missing = [
        k for k in report.missing if not (k.endswith(".weight_scale") and k[: -len("_scale")] in report.missing)
    ]
    report.loaded = sorted(usable)
    if strict and not report.ok:
        raise CheckpointError(report.summary())
    model.load_state_dict(usable, strict=False, assign=True)
    if report.ok:
        log.info(report.summary())
    else:
        log.warning(report.summary())
    return report
