"""diffusers' ``WanTransformer3DModel`` as the reference implementation the benchmark compares against.

Why: the issue's speed targets are relative to diffusers on the same card and the same weights. Our
state-dict names are Wan's official ones; :func:`to_diffusers_name` maps them to diffusers' (the mapping
of diffusers' ``convert_wan_to_diffusers.py``, also used by the parity tests). diffusers is optional: it
is imported only inside :func:`build_diffusers_wan`.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from bench.harness.weights import build, seeded_randomize
from fantasy_world.models.wan.config import WanDiTConfig

_RENAMES: list[tuple[str, str]] = [
    (r"^time_embedding\.0\.", "condition_embedder.time_embedder.linear_1."),
    (r"^time_embedding\.2\.", "condition_embedder.time_embedder.linear_2."),
    (r"^text_embedding\.0\.", "condition_embedder.text_embedder.linear_1."),
    (r"^text_embedding\.2\.", "condition_embedder.text_embedder.linear_2."),
    (r"^time_projection\.1\.", "condition_embedder.time_proj."),
    (r"^img_emb\.proj\.0\.", "condition_embedder.image_embedder.norm1."),
    (r"^img_emb\.proj\.1\.", "condition_embedder.image_embedder.ff.net.0.proj."),
    (r"^img_emb\.proj\.3\.", "condition_embedder.image_embedder.ff.net.2."),
    (r"^img_emb\.proj\.4\.", "condition_embedder.image_embedder.norm2."),
    (r"^head\.modulation$", "scale_shift_table"),
    (r"^head\.head\.", "proj_out."),
    (r"\.modulation$", ".scale_shift_table"),
    (r"\.self_attn\.", ".attn1."),
    (r"\.cross_attn\.", ".attn2."),
    (r"\.norm3\.", ".norm2."),
    (r"\.ffn\.0\.", ".ffn.net.0.proj."),
    (r"\.ffn\.2\.", ".ffn.net.2."),
    (r"\.attn([12])\.q\.", r".attn\1.to_q."),
    (r"\.attn([12])\.k\.", r".attn\1.to_k."),
    (r"\.attn([12])\.v\.", r".attn\1.to_v."),
    (r"\.attn([12])\.o\.", r".attn\1.to_out.0."),
    (r"\.attn2\.k_img\.", ".attn2.add_k_proj."),
    (r"\.attn2\.v_img\.", ".attn2.add_v_proj."),
    (r"\.attn2\.norm_k_img\.", ".attn2.norm_added_k."),
]

# diffusers' WanTransformer3DModel._keep_in_fp32_modules: from_pretrained(torch_dtype=bf16) keeps these fp32.
KEEP_FP32 = ("rope", "time_embedder", "scale_shift_table", "norm1", "norm2", "norm3")


def to_diffusers_name(name: str) -> str:
    """Official Wan2.1 DiT parameter name -> diffusers name."""
    for pattern, repl in _RENAMES:
        name = re.sub(pattern, repl, name)
    return name


def to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {to_diffusers_name(k): v for k, v in state.items()}


def diffusers_kwargs(cfg: WanDiTConfig) -> dict[str, object]:
    """Constructor arguments of the diffusers model with the sizes of ``cfg``."""
    return {
        "patch_size": cfg.patch_size,
        "num_attention_heads": cfg.num_heads,
        "attention_head_dim": cfg.head_dim,
        "in_channels": cfg.in_dim,
        "out_channels": cfg.out_dim,
        "text_dim": cfg.text_dim,
        "freq_dim": cfg.freq_dim,
        "ffn_dim": cfg.ffn_dim,
        "num_layers": cfg.num_layers,
        "cross_attn_norm": cfg.cross_attn_norm,
        "eps": cfg.eps,
        "image_dim": cfg.clip_dim if cfg.image_input else None,
        "added_kv_proj_dim": cfg.dim if cfg.image_input else None,
    }


def keep_fp32(model: nn.Module) -> None:
    """Cast the modules diffusers keeps in float32 back to float32, as ``from_pretrained`` would."""
    for name, module in model.named_modules():
        if any(part in KEEP_FP32 for part in name.split(".")):
            module.float()
    for name, p in model.named_parameters():
        if any(part in KEEP_FP32 for part in name.split(".")):
            p.data = p.data.float()


def build_diffusers_wan(
    cfg: WanDiTConfig, our_names: list[str], device: torch.device, dtype: torch.dtype, seed: int
) -> nn.Module:
    """diffusers' model with the seeded weights our model (parameter names ``our_names``) would get."""
    from diffusers import WanTransformer3DModel

    back = {to_diffusers_name(n): n for n in our_names}
    model = build(lambda: WanTransformer3DModel(**diffusers_kwargs(cfg)), device, dtype)
    names = {n for n, _ in model.named_parameters()}
    missing = sorted(names - set(back))
    if missing:
        raise RuntimeError(f"diffusers parameters without a counterpart in ours: {missing[:5]}")
    keep_fp32(model)
    seeded_randomize(model, seed, key=back.__getitem__, round_to=dtype)
    return model


def diffusers_forward(
    model: nn.Module,
    x: torch.Tensor,
    t: torch.Tensor,
    context: torch.Tensor,
    clip_fea: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """Call diffusers with our argument convention (I2V: ``y`` concatenated to ``x``, CLIP tokens)."""
    hidden = x if y is None else torch.cat([x, y.to(x.dtype)], dim=1)
    kw = {} if clip_fea is None else {"encoder_hidden_states_image": clip_fea}
    return model(hidden, t, context, return_dict=False, **kw)[0]


def use_fa3(model: nn.Module, on: bool = True) -> bool:
    """Point diffusers' own FlashAttention-3 backend (``"_flash_3"``) at the FA3 build our attention
    loaded and select it (``on=False``: back to diffusers' default), so a row can compare the two stacks on
    the same attention kernel. diffusers looks for the module ``flash_attn_interface``; ``fa3-fwd`` names
    it ``fa3_fwd_interface``, hence the re-pointing."""
    import importlib

    import diffusers.models.attention_dispatch as dispatch

    from fantasy_world.models.wan import flash3

    registry = dispatch._AttentionBackendRegistry
    if not on:  # set_attention_backend also changed diffusers' process-wide default: restore it
        model.reset_attention_backend()
        registry.set_active_backend(_default_backend[0] or registry._active_backend)
        return True
    if not flash3.source():
        raise RuntimeError("no FlashAttention-3 build loaded")
    _default_backend[0] = _default_backend[0] or registry._active_backend
    dispatch.flash_attn_3_func = importlib.import_module(flash3.source()).flash_attn_func
    dispatch._CAN_USE_FLASH_ATTN_3 = True
    model.set_attention_backend("_flash_3")
    return True


def active_backend() -> str:
    """diffusers' process-wide attention backend (a note on every diffusers row)."""
    import diffusers.models.attention_dispatch as dispatch

    backend = dispatch._AttentionBackendRegistry._active_backend
    return str(getattr(backend, "value", backend))


_default_backend: list[object] = [None]  # diffusers' active backend before use_fa3 first changed it
