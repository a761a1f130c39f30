"""CLIP ViT-H/14 vision tower: parity with transformers, full-size key coverage, loader, preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from fantasy_world.errors import CheckpointError, InputError
from fantasy_world.models.wan.clip_vision import (
    CLIP_MEAN,
    CLIP_STD,
    CLIP_VISION_PRESETS,
    ClipVisionConfig,
    ClipVisionEncoder,
    load_clip_vision,
)

TEST_CFG = CLIP_VISION_PRESETS["vit-test"]


def hf_config(cfg: ClipVisionConfig) -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=cfg.dim,
        intermediate_size=cfg.mlp_dim,
        num_attention_heads=cfg.num_heads,
        num_hidden_layers=cfg.num_layers,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        projection_dim=cfg.out_dim,
        hidden_act="gelu",
        layer_norm_eps=cfg.eps,
    )


def hf_clip_to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Test-only converter: transformers CLIPVisionModelWithProjection names -> open-clip ``visual.*``."""
    out: dict[str, torch.Tensor] = {}
    pre = "vision_model."
    simple = {
        "embeddings.patch_embedding.weight": "patch_embedding.weight",
        "pre_layrnorm.weight": "pre_norm.weight",
        "pre_layrnorm.bias": "pre_norm.bias",
        "post_layernorm.weight": "post_norm.weight",
        "post_layernorm.bias": "post_norm.bias",
    }
    per_layer = {
        "layer_norm1": "norm1",
        "layer_norm2": "norm2",
        "self_attn.out_proj": "attn.proj",
        "mlp.fc1": "mlp.0",
        "mlp.fc2": "mlp.2",
    }
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue
        if key == "visual_projection.weight":
            out["visual.head"] = value.t()
            continue
        name = key.removeprefix(pre)
        if name in simple:
            out["visual." + simple[name]] = value
        elif name == "embeddings.class_embedding":
            out["visual.cls_embedding"] = value.view(1, 1, -1)
        elif name == "embeddings.position_embedding.weight":
            out["visual.pos_embedding"] = value.unsqueeze(0)
        elif name.startswith("encoder.layers."):
            _, _, i, *rest = name.split(".")
            module, param = ".".join(rest[:-1]), rest[-1]
            if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                if module == "self_attn.q_proj":
                    parts = [state[f"{pre}encoder.layers.{i}.self_attn.{p}_proj.{param}"] for p in "qkv"]
                    out[f"visual.transformer.{i}.attn.to_qkv.{param}"] = torch.cat(parts, dim=0)
                continue
            out[f"visual.transformer.{i}.{per_layer[module]}.{param}"] = value
        else:
            raise AssertionError(f"unmapped key {key}")
    return out


@pytest.fixture(scope="module")
def hf_and_ours() -> tuple[CLIPVisionModelWithProjection, ClipVisionEncoder]:
    torch.manual_seed(0)
    hf = CLIPVisionModelWithProjection(hf_config(TEST_CFG)).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "layer_norm" in name or "layrnorm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * p[0].numel() ** -0.5)
    ours = ClipVisionEncoder(TEST_CFG).eval()
    ours.load_state_dict(hf_clip_to_official(hf.state_dict()), strict=True)
    return hf, ours


def test_matches_transformers_penultimate_layer(hf_and_ours) -> None:
    hf, ours = hf_and_ours
    pixels = torch.randn(
        2, 3, TEST_CFG.image_size, TEST_CFG.image_size, generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        hidden = hf(pixel_values=pixels, output_hidden_states=True).hidden_states
        got = ours(pixels)
    # hidden_states[0] is the pre-layernormed embedding, [k] the output of block k
    ref = hidden[TEST_CFG.feature_layers]
    assert got.shape == (2, TEST_CFG.num_tokens, TEST_CFG.dim) == ref.shape
    err = (got - ref).norm() / ref.norm()
    assert err < 1e-4, float(err)
    # and not the last block's output: Wan drops it
    assert (got - hidden[-1]).norm() / hidden[-1].norm() > 0.05


def test_head_and_post_norm_match_projection(hf_and_ours) -> None:
    """The unused post norm and head are the same tensors as HF's, so the key layout is not just names."""
    hf, ours = hf_and_ours
    pixels = torch.randn(
        1, 3, TEST_CFG.image_size, TEST_CFG.image_size, generator=torch.Generator().manual_seed(2)
    )
    with torch.no_grad():
        ref = hf(pixel_values=pixels).image_embeds
        x = ours.visual.transformer(
            ours.visual.pre_norm(
                torch.cat(
                    [
                        ours.visual.cls_embedding,
                        ours.visual.patch_embedding(pixels).flatten(2).transpose(1, 2),
                    ],
                    1,
                )
                + ours.visual.pos_embedding
            )
        )
        got = ours.visual.post_norm(x[:, 0]) @ ours.visual.head
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_preprocess_resize_and_normalise(hf_and_ours) -> None:
    _, ours = hf_and_ours
    gen = torch.Generator().manual_seed(3)
    img = torch.rand(2, 3, 40, 72, generator=gen) * 2 - 1
    pix = ours.preprocess(img)
    assert pix.shape == (2, 3, 56, 56) and pix.dtype == torch.float32
    # a constant image stays constant through bicubic resize, so the normalisation is visible exactly
    grey = ours.preprocess(torch.full((1, 3, 30, 30), 0.2))
    want = (torch.tensor([0.6, 0.6, 0.6]) - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(grey[0, :, 10, 10], want, rtol=1e-5, atol=1e-5)
    # already at model size: the resize is the identity
    same = torch.rand(1, 3, 56, 56, generator=gen) * 2 - 1
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(ours.preprocess(same), ((same + 1) / 2 - mean) / std, rtol=1e-5, atol=1e-5)
    # bicubic, not bilinear
    bicubic = F.interpolate(img, size=(56, 56), mode="bicubic", align_corners=False)
    torch.testing.assert_close(pix, ((bicubic + 1) / 2 - mean) / std, rtol=1e-5, atol=1e-5)


def test_encode_uint8_equals_float(hf_and_ours) -> None:
    _, ours = hf_and_ours
    rng = np.random.default_rng(4)
    u8 = rng.integers(0, 256, size=(56, 56, 3), dtype=np.uint8)
    as_float = torch.from_numpy(u8).permute(2, 0, 1)[None].float() / 127.5 - 1
    a = ours.encode(u8)
    b = ours.encode(as_float)
    assert a.shape == (1, TEST_CFG.num_tokens, TEST_CFG.dim)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bad_images_rejected(hf_and_ours) -> None:
    _, ours = hf_and_ours
    with pytest.raises(InputError, match=r"\[-1, 1\]"):
        ours.encode(torch.rand(1, 3, 56, 56) * 255)
    with pytest.raises(InputError, match="shape"):
        ours.encode(torch.rand(3, 56, 56))
    with pytest.raises(InputError, match="HWC"):
        ours.encode(np.zeros((56, 56, 4), dtype=np.uint8))


def test_vit_h_key_coverage_on_meta() -> None:
    cfg = CLIP_VISION_PRESETS["vit-h-14"]
    with torch.device("meta"):
        hf = CLIPVisionModelWithProjection(hf_config(cfg))
        ours = ClipVisionEncoder(cfg)
    want = {k: tuple(v.shape) for k, v in hf_clip_to_official(hf.state_dict()).items()}
    got = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert sorted(set(got) - set(want)) == []
    assert sorted(set(want) - set(got)) == []
    assert got == want
    assert len(got) == 3 + 2 + 32 * 12 + 2 + 1
    assert got["visual.pos_embedding"] == (1, 257, 1280)
    assert got["visual.transformer.31.attn.to_qkv.weight"] == (3840, 1280)
    assert got["visual.transformer.0.mlp.0.weight"] == (5120, 1280)
    assert got["visual.head"] == (1280, 1024)
    assert "visual.patch_embedding.bias" not in got
    with torch.device("meta"):
        out = ours(torch.empty(1, 3, 224, 224))
    assert tuple(out.shape) == (1, 257, 1280)


def test_loader_reads_visual_part_only(hf_and_ours, tmp_path: Path) -> None:
    _, ours = hf_and_ours
    state = {k: v.clone() for k, v in ours.state_dict().items()}
    state["textual.token_embedding.weight"] = torch.randn(10, 8)
    state["log_scale"] = torch.tensor(4.6)
    path = tmp_path / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
    torch.save(state, path)

    loaded = load_clip_vision(tmp_path, cfg=TEST_CFG)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    img = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(5)) * 2 - 1
    torch.testing.assert_close(loaded.encode(img), ours.encode(img), rtol=0, atol=0)

    half = load_clip_vision(path, cfg=TEST_CFG, dtype=torch.bfloat16)
    assert half.visual.head.dtype == torch.bfloat16
    assert (half.encode(img).float() - ours.encode(img)).abs().max() < 0.2

    del state["visual.transformer.1.attn.proj.weight"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"visual\.transformer\.1\.attn\.proj\.weight"):
        load_clip_vision(path, cfg=TEST_CFG)
    torch.save({"log_scale": torch.tensor(1.0)}, path)
    with pytest.raises(CheckpointError, match="visual"):
        load_clip_vision(path, cfg=TEST_CFG)
    with pytest.raises(CheckpointError, match="not found"):
        load_clip_vision(tmp_path / "absent.pth", cfg=TEST_CFG)
