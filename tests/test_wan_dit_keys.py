"""Wan2.1 DiT key/shape coverage against the public checkpoints (meta tensors) and the loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fantasy_world.checkpoints.io import load_into_model
from fantasy_world.errors import CheckpointError
from fantasy_world.models.wan.config import wan_dit_config
from fantasy_world.models.wan.dit import WanDiT
from fantasy_world.models.wan.dit_loader import load_wan_dit

KEYS_JSON = (
    Path(__file__).resolve().parent / "fixtures" / "official_keys_wan21.json"
)  # copy of the official key list


def official_i2v_14b_shapes() -> dict[str, tuple[int, ...]]:
    """The Wan DiT of the official FantasyWorld model: ``pipe.dit.*`` plus ``IRGBlock.i.x_dit`` = block 16+i."""
    keys: dict[str, list[int]] = json.loads(KEYS_JSON.read_text())["keys"]
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in keys.items():
        if ".cross_attn.processor." in name:
            continue  # FantasyWorld's camera adapter, not part of Wan
        if name.startswith("pipe.dit."):
            out[name[len("pipe.dit.") :]] = tuple(shape)
        elif name.startswith("IRGBlock.") and ".x_dit." in name:
            idx, rest = name[len("IRGBlock.") :].split(".x_dit.", 1)
            out[f"blocks.{16 + int(idx)}.{rest}"] = tuple(shape)
    return out


def t2v_1_3b_shapes() -> dict[str, tuple[int, ...]]:
    """Key layout of Wan2.1-T2V-1.3B ``diffusion_pytorch_model.safetensors`` written out from its config."""
    d, ffn, text, freq, layers = 1536, 8960, 4096, 256, 30
    out: dict[str, tuple[int, ...]] = {
        "patch_embedding.weight": (d, 16, 1, 2, 2),
        "patch_embedding.bias": (d,),
        "text_embedding.0.weight": (d, text),
        "text_embedding.0.bias": (d,),
        "text_embedding.2.weight": (d, d),
        "text_embedding.2.bias": (d,),
        "time_embedding.0.weight": (d, freq),
        "time_embedding.0.bias": (d,),
        "time_embedding.2.weight": (d, d),
        "time_embedding.2.bias": (d,),
        "time_projection.1.weight": (6 * d, d),
        "time_projection.1.bias": (6 * d,),
        "head.modulation": (1, 2, d),
        "head.head.weight": (64, d),
        "head.head.bias": (64,),
    }
    for i in range(layers):
        p = f"blocks.{i}."
        out[p + "modulation"] = (1, 6, d)
        for attn in ("self_attn", "cross_attn"):
            for lin in "qkvo":
                out[f"{p}{attn}.{lin}.weight"] = (d, d)
                out[f"{p}{attn}.{lin}.bias"] = (d,)
            out[f"{p}{attn}.norm_q.weight"] = (d,)
            out[f"{p}{attn}.norm_k.weight"] = (d,)
        out[p + "norm3.weight"] = (d,)
        out[p + "norm3.bias"] = (d,)
        out[p + "ffn.0.weight"] = (ffn, d)
        out[p + "ffn.0.bias"] = (ffn,)
        out[p + "ffn.2.weight"] = (d, ffn)
        out[p + "ffn.2.bias"] = (d,)
    return out


def meta_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta", dtype=torch.bfloat16) for k, s in shapes.items()}


def meta_model(name: str) -> WanDiT:
    with torch.device("meta"):
        return WanDiT(wan_dit_config(name))


def test_i2v_14b_matches_official_keys() -> None:
    shapes = official_i2v_14b_shapes()
    assert len([k for k in shapes if k.startswith("blocks.") and k.endswith(".modulation")]) == 40
    model = meta_model("wan2.1-i2v-14b")
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert own == shapes
    report = load_into_model(model, meta_state(shapes), source="official_keys_wan21.json", strict=True)
    assert report.ok and len(report.loaded) == len(shapes)
    assert model.blocks[39].ffn[2].weight.dtype == torch.bfloat16


def test_t2v_1_3b_matches_public_layout() -> None:
    shapes = t2v_1_3b_shapes()
    model = meta_model("wan2.1-t2v-1.3b")
    report = load_into_model(model, meta_state(shapes), source="Wan2.1-T2V-1.3B", strict=True)
    assert report.ok and not report.missing and not report.unexpected
    assert len(report.loaded) == len(model.state_dict()) == len(shapes)


def test_t2v_14b_is_i2v_without_image_parts() -> None:
    shapes = {
        k: s
        for k, s in official_i2v_14b_shapes().items()
        if not k.startswith("img_emb.") and "_img." not in k and k != "patch_embedding.weight"
    }
    shapes["patch_embedding.weight"] = (5120, 16, 1, 2, 2)
    report = load_into_model(meta_model("wan2.1-t2v-14b"), meta_state(shapes), source="t2v-14b", strict=True)
    assert report.ok


def test_renamed_missing_and_misshaped_keys_are_named() -> None:
    shapes = t2v_1_3b_shapes()
    renamed = dict(shapes)
    renamed["blocks.3.self_attn.q_proj.weight"] = renamed.pop("blocks.3.self_attn.q.weight")
    with pytest.raises(CheckpointError, match=r"blocks\.3\.self_attn\.q\.weight") as err:
        load_into_model(meta_model("wan2.1-t2v-1.3b"), meta_state(renamed), source="file.safetensors")
    assert "blocks.3.self_attn.q_proj.weight" in str(err.value) and "file.safetensors" in str(err.value)

    missing = dict(shapes)
    del missing["head.modulation"]
    with pytest.raises(CheckpointError, match=r"missing 1: head\.modulation"):
        load_into_model(meta_model("wan2.1-t2v-1.3b"), meta_state(missing), source="x")

    bad = dict(shapes)
    bad["blocks.7.ffn.0.weight"] = (8960, 1535)
    with pytest.raises(CheckpointError, match=r"mis-shaped 1: blocks\.7\.ffn\.0\.weight"):
        load_into_model(meta_model("wan2.1-t2v-1.3b"), meta_state(bad), source="x")

    # An I2V file into a T2V config: the image keys are reported as unexpected.
    with pytest.raises(CheckpointError, match=r"unexpected .*img"):
        load_into_model(meta_model("wan2.1-t2v-14b"), meta_state(official_i2v_14b_shapes()), source="x")


def _tiny_cfg():
    return wan_dit_config("tiny", dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=24, text_len=8)


def _write_sharded(model: WanDiT, folder: Path, shards: int = 3) -> None:
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    names = sorted(state)
    weight_map = {}
    for s in range(shards):
        fname = f"diffusion_pytorch_model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k] for k in names[s::shards]}
        save_file(part, str(folder / fname))
        weight_map.update({k: fname for k in part})
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))


def test_loader_round_trip_sharded_folder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = _tiny_cfg()
    src = WanDiT(cfg).eval()
    with torch.no_grad():
        src.head.head.weight.normal_()  # Wan initialises the head to zero; make the output informative
    _write_sharded(src, tmp_path)
    loaded = load_wan_dit(tmp_path, cfg)
    assert not any(p.is_meta for p in loaded.parameters())
    for k, v in src.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x, t, ctx = torch.randn(1, 16, 2, 4, 4), torch.tensor([400.0]), torch.randn(1, 8, 24)
    with torch.no_grad():
        want = src(x, t, ctx)
        # Same weights; only kernel choice (alignment of the loaded buffers) may differ in the last bits.
        torch.testing.assert_close(loaded(x, t, ctx), want, rtol=1e-5, atol=1e-5)
    assert want.abs().mean() > 0

    half = load_wan_dit(
        tmp_path / "diffusion_pytorch_model.safetensors.index.json", cfg, dtype=torch.bfloat16
    )
    assert half.blocks[0].self_attn.q.weight.dtype == torch.bfloat16


def test_loader_single_file_prefix_and_errors(tmp_path: Path) -> None:
    cfg = _tiny_cfg()
    src = WanDiT(cfg)
    single = tmp_path / "single"
    single.mkdir()
    save_file(
        {k: v.contiguous() for k, v in src.state_dict().items()},
        str(single / "diffusion_pytorch_model.safetensors"),
    )
    assert torch.equal(load_wan_dit(single, cfg).time_projection[1].weight, src.time_projection[1].weight)

    prefixed = tmp_path / "prefixed.safetensors"
    save_file({"pipe.dit." + k: v.contiguous() for k, v in src.state_dict().items()}, str(prefixed))
    assert torch.equal(load_wan_dit(prefixed, cfg).head.modulation, src.head.modulation)

    with pytest.raises(CheckpointError, match="not found"):
        load_wan_dit(tmp_path / "nope", cfg)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="diffusion_pytorch_model.safetensors"):
        load_wan_dit(empty, cfg)
    # Wrong config for the file: the error names the file and the offending keys.
    with pytest.raises(CheckpointError, match=r"single/diffusion_pytorch_model\.safetensors.*mis-shaped"):
        load_wan_dit(
            single, wan_dit_config("tiny", dim=64, ffn_dim=128, num_heads=2, num_layers=2, text_dim=24)
        )
    with pytest.raises(CheckpointError, match=r"missing .*blocks\.2\."):
        load_wan_dit(
            single, wan_dit_config("tiny", dim=64, ffn_dim=96, num_heads=2, num_layers=3, text_dim=24)
        )
    diffusers_like = tmp_path / "d.safetensors"
    save_file({"condition_embedder.time_proj.weight": torch.zeros(2, 2)}, str(diffusers_like))
    with pytest.raises(CheckpointError, match="diffusers-format"):
        load_wan_dit(diffusers_like, cfg)
