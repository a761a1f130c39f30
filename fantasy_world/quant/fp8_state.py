"""FP8 state dicts: the shared third-party layouts, fitting a state to a (quantised) model, our FP8 files.

Third-party Wan FP8 files (read by :func:`normalize_fp8_layout`, after which the Wan loaders strip their
key prefix as usual):

* ComfyUI repackaged ``wan2.1_*_fp8_e4m3fn.safetensors``: original Wan key names; the block linears'
  ``*.weight`` stored as float8_e4m3fn with no scale at all (scale 1.0). The "scaled" variants add an
  empty marker tensor ``scaled_fp8`` (its dtype names the FP8 format) and one fp32 scalar
  ``<layer>.scale_weight`` per FP8 weight, sometimes ``<layer>.scale_input`` too.
* Kijai's ``Wan2_1-*_fp8_e4m3fn.safetensors``: the same Wan names, possibly under a
  ``model.diffusion_model.`` prefix; norms, biases, embeddings, modulation and head kept in bf16/fp32;
  scaled variants carry ``<layer>.scale_weight`` or ``<layer>.weight_scale``.
* Newer ComfyUI quantised files: ``<layer>.weight_scale`` plus a ``<layer>.comfy_quant`` marker tensor.

In every case ``real weight = fp8 weight × scale`` with a scalar (per-tensor) or per-output-channel
scale. Static input scales (``scale_input`` / ``input_scale``) and the markers are dropped: FP8 mode
computes activation scales per token at run time. Our own FP8 files (:func:`save_fp8_weights`) are the
canonical form every layout is normalised to: ``<layer>.weight`` float8_e4m3fn [N, K] and
``<layer>.weight_scale`` fp32 [N], with the safetensors metadata ``{"quantization": FP8_FORMAT}``.

:func:`fit_state_to_model` then adapts any such state to the model being filled (``load_into_model``
calls it): FP8 layers get FP8 weights (bf16 weights are quantised, scalar scales expanded per channel),
plain layers get FP8 tensors dequantised, everything else is cast to the requested dtype.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fantasy_world.errors import CheckpointError
from fantasy_world.quant.fp8_linear import FP8_DTYPE, FP8_DTYPES, dequantize_weight, quantize_weight
from fantasy_world.quant.selection import fp8_layer_names, quantized_layers

log = logging.getLogger(__name__)

FP8_FORMAT = "fp8-e4m3fn-per-channel"  # value of the "quantization" metadata / folder-config entry
METADATA_KEY = "quantization"
SCALE_SUFFIX = ".weight_scale"
_MARKER = "scaled_fp8"
_RENAMED_SCALE = ".scale_weight"  # ComfyUI / Kijai name of the weight scale
_DROPPED_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant")


@dataclass
class Fp8LayoutReport:
    """What :func:`normalize_fp8_layout` found in a file."""

    source: str
    fp8_weights: int = 0
    scales: int = 0  # scale tensors kept (renamed to *.weight_scale)
    markers: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # static input scales, comfy_quant markers

    @property
    def layout(self) -> str:
        if not self.fp8_weights:
            return "no fp8 weights"
        return "fp8 with scales" if self.scales else "fp8 without scales (scale 1.0)"

    def summary(self) -> str:
        parts = [f"{self.source}: {self.layout}, {self.fp8_weights} fp8 tensors, {self.scales} scales"]
        if self.markers:
            parts.append(f"markers {', '.join(self.markers)}")
        if self.dropped:
            parts.append(f"dropped {len(self.dropped)} input-scale/marker tensors")
        return "; ".join(parts)


def _is_fp8(t: torch.Tensor) -> bool:
    return t.dtype in FP8_DTYPES


def normalize_fp8_layout(
    state: Mapping[str, torch.Tensor], source: str
) -> tuple[dict[str, torch.Tensor], Fp8LayoutReport]:
    """Drop FP8 markers and input scales, rename ``*.scale_weight`` to ``*.weight_scale`` and check that
    every scale belongs to an FP8 weight and has a usable dtype and shape (one-line CheckpointError)."""
    report = Fp8LayoutReport(source=source)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key == _MARKER or key.endswith("." + _MARKER):
            report.markers.append(key)
            continue
        if key.endswith(_DROPPED_SUFFIXES):
            report.dropped.append(key)
            continue
        if key.endswith(_RENAMED_SCALE):
            key = key[: -len(_RENAMED_SCALE)] + SCALE_SUFFIX
        if key in out:
            raise CheckpointError(f"{source}: {key} appears twice (as scale_weight and weight_scale)")
        out[key] = tensor
    for key, scale in out.items():
        if not key.endswith(SCALE_SUFFIX):
            continue
        weight_key = key[: -len("_scale")]
        weight = out.get(weight_key)
        if weight is None:
            raise CheckpointError(f"{source}: scale {key} has no weight {weight_key}")
        if not _is_fp8(weight):
            raise CheckpointError(
                f"{source}: scale {key} belongs to {weight_key} stored as {weight.dtype}; expected a float8 weight"
            )
        if not scale.is_floating_point() or _is_fp8(scale):
            raise CheckpointError(
                f"{source}: scale {key} has dtype {scale.dtype}; expected float32/bf16/fp16"
            )
        if scale.numel() not in (1, weight.shape[0]):
            raise CheckpointError(
                f"{source}: scale {key} has shape {tuple(scale.shape)}; expected a scalar or "
                f"[{weight.shape[0]}] (one per output channel of {weight_key})"
            )
        if not scale.is_meta and not bool(torch.isfinite(scale).all() and (scale != 0).all()):
            raise CheckpointError(f"{source}: scale {key} holds zero or non-finite values")
        report.scales += 1
    report.fp8_weights = sum(1 for t in out.values() if _is_fp8(t))
    if report.fp8_weights or report.markers:
        log.info(report.summary())
    return out, report


def per_channel_scale(scale: torch.Tensor | None, rows: int, like: torch.Tensor) -> torch.Tensor:
    """A scalar, [N] or [N, 1] scale (None means 1.0) as fp32 [N] on ``like``'s device."""
    if scale is None:
        return torch.ones(rows, dtype=torch.float32, device=like.device)
    scale = scale.to(device=like.device, dtype=torch.float32).reshape(-1)
    return scale.expand(rows).clone() if scale.numel() == 1 else scale.contiguous()


def needs_fit(model: nn.Module, state: Mapping[str, torch.Tensor]) -> bool:
    """True when ``state`` holds FP8 tensors or scales, or ``model`` has FP8 layers."""
    if any(_is_fp8(t) or k.endswith(SCALE_SUFFIX) for k, t in state.items()):
        return True
    return bool(quantized_layers(model))


def fit_state_to_model(
    model: nn.Module, state: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Each tensor of ``state`` in the form ``model`` stores it (see the module docstring).

    ``dtype`` casts the non-FP8 floating tensors (None keeps them; dequantised FP8 tensors then become
    bf16). Scales nobody consumes stay in the result, so strict loading reports them as unexpected.
    """
    fp8_layers = set(quantized_layers(model))
    plain = dtype or torch.bfloat16
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for key, tensor in state.items():
        if key.endswith(SCALE_SUFFIX):
            continue
        layer, _, leaf = key.rpartition(".")
        scale_key = layer + SCALE_SUFFIX
        scale = state.get(scale_key) if leaf == "weight" else None
        if leaf == "weight" and layer in fp8_layers and tensor.ndim == 2:
            used.add(scale_key)
            if tensor.dtype == FP8_DTYPE:
                out[key] = tensor
                out[scale_key] = per_channel_scale(scale, tensor.shape[0], tensor)
            else:  # bf16/fp32 weight (or e5m2): quantise per channel
                dense = dequantize_weight(tensor, scale, torch.float32) if _is_fp8(tensor) else tensor
                out[key], out[scale_key] = quantize_weight(dense)
        elif _is_fp8(tensor):
            if scale is not None:
                used.add(scale_key)
                if scale.numel() != 1 and tensor.ndim != 2:
                    raise CheckpointError(f"{key}: per-channel scale for a {tensor.ndim}-D tensor")
                out[key] = dequantize_weight(tensor, scale, plain)
            else:
                out[key] = tensor.to(plain)
        else:
            out[key] = tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor
    for key, tensor in state.items():
        if key.endswith(SCALE_SUFFIX) and key not in used:
            out[key] = tensor
    return out


def fp8_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict with every FP8-mode layer as e4m3 weight + per-channel fp32 scale (layers
    already quantised are written as they are, so a save after a load is bit-exact)."""
    state = model.state_dict()
    for name in fp8_layer_names(model):
        key = name + ".weight"
        if state[key].dtype != FP8_DTYPE:
            state[key], state[name + SCALE_SUFFIX] = quantize_weight(state[key])
    return state


def fp8_metadata() -> dict[str, str]:
    return {METADATA_KEY: FP8_FORMAT, "format": "pt"}


def save_fp8_weights(model: nn.Module, path: str | Path) -> Path:
    """One safetensors file with :func:`fp8_state_dict` and the FP8 metadata entry."""
    from fantasy_world.checkpoints.io import save_state_dict

    path = Path(path)
    save_state_dict(fp8_state_dict(model), path, metadata=fp8_metadata())
    return path


def file_quantization(path: str | Path) -> str | None:
    """The ``quantization`` metadata entry of a safetensors file (or the first shard of an index)."""
    import json

    from safetensors import safe_open

    path = Path(path)
    if path.name.endswith(".index.json"):
        shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        path = path.parent / shards[0]
    if path.suffix != ".safetensors":
        return None
    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get(METADATA_KEY)


def state_bytes(model: nn.Module, fp8: bool, other_dtype: torch.dtype = torch.bfloat16) -> int:
    """Bytes of ``model``'s weights on disk: FP8-mode layers as e4m3 + fp32 scales when ``fp8``, every
    other tensor in ``other_dtype``. Works on meta models (shapes only)."""
    fp8_weights = {n + ".weight" for n in fp8_layer_names(model)} if fp8 else set()
    other = torch.empty((), dtype=other_dtype).element_size()
    total = 0
    for key, tensor in model.state_dict().items():
        if key in fp8_weights:
            total += tensor.numel() + 4 * tensor.shape[0]  # e4m3 bytes + one fp32 scale per channel
        elif not key.endswith(SCALE_SUFFIX):  # scales are counted with their weight
            total += tensor.numel() * other
    return total
