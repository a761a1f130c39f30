"""Which linear layers FP8 mode quantises, and the swap itself.

Quantised (the GEMMs that hold the FLOPs and the bytes; applied to every block):

* Wan DiT blocks: self-attention q/k/v/o, cross-attention q/k/v/o (and k_img/v_img for I2V), FFN.
* Geometry branch: frame blocks and the IRG global blocks (attention qkv/proj, MLP fc1/fc2), the
  bidirectional cross-attention projections, the transformer latent bridge (its layers and projection).

Kept in the model dtype, and why:

* norms, RMS/LayerNorm weights, modulation tables, gates: tiny, and they set every token's scale;
* embeddings (patch Conv3d, text/time embeddings, time projection, CLIP image embedding), the Wan output
  head: run once per forward on few tokens or map straight to the predicted velocity;
* the camera adapters inside the DiT cross-attention and the pose encoder / Wan2.2 control adapter: the
  camera signal is small in FLOPs but steers the whole video; the adapter widths (e.g. 409) are not
  multiples of 16 either;
* the geometry heads (DPT depth/point heads, camera head and its trunk): they run once per generation and
  issue 18 showed they are the most precision-sensitive outputs;
* the conv latent bridge (a 1×1×1 Conv3d, one GEMM per forward) and the camera-token projector (unused
  at inference).

Attention itself (QK^T, PV) stays bf16 by default. Opt-in (``attention=True``, ``fp8_attention=True``,
``--fp8-attention``): the video self-attention, the geometry attention and the bidirectional
cross-attention of the quantised regions run FA3's FP8 kernel (``models/wan/flash3.py``: q, k, v in e4m3
with per-(batch, head) scales) where FlashAttention-3 is installed on an sm90 GPU; a CPU emulates it;
other GPUs keep bf16 attention; the text/image cross-attention (a few hundred keys) stays bf16. Why not by
default: on an H200 it made the FP8 FantasyWorld-14B forward 8 % faster but its error against bf16 2.5×
larger, and took the tiny model's video PSNR against fp32 from 38.2 to 35.0 dB (README, FP8 mode).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch import nn

from fantasy_world.quant.fp8_linear import FP8Linear, enable_fp8_gemm

log = logging.getLogger(__name__)

# Sub-module names under which nothing is quantised, wherever they appear inside a quantised region.
_KEEP = ("camera_adapter",)


SCOPES = ("all", "dit")  # "dit": the Wan blocks only, the geometry branch stays in the model dtype


def _region_roots(model: nn.Module, scope: str = "all") -> list[tuple[str, nn.Module]]:
    """(prefix, module) pairs whose linears FP8 mode quantises."""
    if scope not in SCOPES:
        raise ValueError(f"fp8 scope {scope!r}: expected one of {', '.join(SCOPES)}")
    if hasattr(model, "irg") and hasattr(model, "dit"):  # FantasyWorldModel
        roots: list[tuple[str, nn.Module]] = [("dit.blocks", model.dit.blocks)]
        if scope == "dit":
            return roots
        bridge = model.bridge
        if hasattr(bridge, "layers"):  # TransformerBridge; the conv bridge stays
            roots += [("bridge.layers", bridge.layers), ("bridge.proj", bridge.proj)]
        roots.append(("aggregator.frame_blocks", model.aggregator.frame_blocks))
        roots.append(("irg", model.irg))  # x_agg + bicross (x_dit is dit.blocks, not registered here)
        return roots
    if hasattr(model, "blocks") and hasattr(model, "patch_embedding"):  # WanDiT
        return [("blocks", model.blocks)]
    raise TypeError(f"{type(model).__name__}: expected a WanDiT or FantasyWorldModel for FP8 mode")


def _linears(prefix: str, root: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Every ``nn.Linear`` or :class:`FP8Linear` in a region, minus the kept sub-modules."""
    kinds = (nn.Linear, FP8Linear)
    if isinstance(root, kinds):
        yield prefix, root
        return
    for name, module in root.named_modules():
        if isinstance(module, kinds) and not any(part in _KEEP for part in name.split(".")):
            yield f"{prefix}.{name}", module


def fp8_layer_names(model: nn.Module, scope: str = "all") -> list[str]:
    """Qualified names of the linears FP8 mode quantises (whether or not they are swapped already)."""
    return sorted(name for prefix, root in _region_roots(model, scope) for name, _ in _linears(prefix, root))


def quantized_layers(model: nn.Module) -> list[str]:
    """Names of the :class:`FP8Linear` modules in ``model``."""
    return [n for n, m in model.named_modules() if isinstance(m, FP8Linear)]


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, FP8Linear) for m in model.modules())


def set_fp8_attention(model: nn.Module, enabled: bool, scope: str = "all") -> int:
    """Switch FP8 attention on or off for the attention modules of the FP8 regions; returns how many."""
    count = 0
    for _, root in _region_roots(model, scope):
        for module in root.modules():
            if hasattr(module, "fp8_attention"):
                module.fp8_attention = bool(enabled)
                count += 1
    return count


def quantize_model(
    model: nn.Module, fp8: bool = True, scope: str = "all", attention: bool = False
) -> nn.Module:
    """Swap the selected ``nn.Linear`` layers of a WanDiT or FantasyWorldModel for :class:`FP8Linear`, in
    place (works on the meta device too, for loading FP8 files). Idempotent; ``fp8=False`` is a no-op.
    ``attention`` also switches on FP8 attention in the same regions (see the module docstring).
    ``scope="dit"`` leaves the geometry branch alone (an experiment of ``bench/fp8_quality.py``)."""
    if not fp8:
        return model
    enable_fp8_gemm()
    count = 0
    for prefix, root in _region_roots(model, scope):
        for name, linear in list(_linears(prefix, root)):
            if not isinstance(linear, nn.Linear):
                continue
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            setattr(parent, attr, FP8Linear.from_linear(linear))
            count += 1
    if count:
        log.info("FP8: quantised %d linear layers of %s", count, type(model).__name__)
    if attention:
        n = set_fp8_attention(model, True, scope)
        log.info("FP8: %d attention modules use FP8 attention where FlashAttention-3 runs", n)
    return model


def dequantize_model(model: nn.Module) -> nn.Module:
    """Swap every :class:`FP8Linear` back for an ``nn.Linear`` holding its dequantised weight, in place
    (an FP8 file loaded without FP8 mode then runs bf16 GEMMs on the FP8-rounded weights); attention
    goes back to bf16 too."""
    for module in model.modules():
        if hasattr(module, "fp8_attention"):
            module.fp8_attention = False
    for name in quantized_layers(model):
        layer = model.get_submodule(name)
        parent_name, _, attr = name.rpartition(".")
        device, dtype = layer.qweight.device, layer.compute_dtype
        linear = nn.Linear(
            layer.in_features, layer.out_features, layer.bias is not None, device=device, dtype=dtype
        )
        with torch.no_grad():
            linear.weight.copy_(layer.dequantized_weight())
            if layer.bias is not None:
                linear.bias.copy_(layer.bias)
        setattr(
            model.get_submodule(parent_name) if parent_name else model, attr, linear.requires_grad_(False)
        )
    return model
