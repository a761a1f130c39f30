"""FP8 files: the shared Wan FP8 layouts (synthesised at reduced width with the real key names), our own
FP8 folders (bit-exact round trip), and the size of the 14B DiT in FP8 from the official key shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fantasy_world.errors import CheckpointError
from fantasy_world.model_folder import load_our_folder, save_our_folder
from fantasy_world.models.fantasy.config import fantasy_world_config
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan.config import wan_dit_config
from fantasy_world.models.wan.dit import WanDiT
from fantasy_world.models.wan.dit_loader import load_wan_dit
from fantasy_world.models.wan.vae import WanVAE, wan_vae_config
from fantasy_world.quant import FP8_FORMAT, FP8Linear, fp8_layer_names, quantize_model, state_bytes
from fantasy_world.quant.fp8_files import pick_wan_dit_source
from fantasy_world.quant.fp8_state import file_quantization

FP8 = torch.float8_e4m3fn
KEYS_JSON = Path(__file__).resolve().parent / "fixtures" / "official_keys_wan21.json"


def _cfg():
    """A reduced Wan2.1-I2V DiT: same key names as the 14B files (k_img/v_img, img_emb), small widths."""
    return wan_dit_config(
        "tiny", dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=24, text_len=16, freq_dim=32,
        in_dim=36, image_input=True, clip_dim=40, clip_tokens=257,
    )  # fmt: skip


@pytest.fixture(scope="module")
def reference() -> tuple[WanDiT, dict[str, torch.Tensor], list[str]]:
    torch.manual_seed(0)
    model = WanDiT(_cfg()).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return (
        model,
        {k: v.clone() for k, v in model.state_dict().items()},
        [n + ".weight" for n in fp8_layer_names(model)],
    )


def _layout(ref, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(file tensors, expected dense value of every FP8 weight) for one shared layout."""
    _, state, fp8_keys = ref
    out, dense = {}, {}
    for key, w in state.items():
        if key not in fp8_keys:
            out[key] = w.to(torch.bfloat16) if kind != "kijai" else w  # Kijai keeps norms etc. in fp32
            continue
        layer = key[: -len(".weight")]
        if kind == "comfy-plain":  # raw cast, no scale at all
            q = w.to(FP8)
            out[key], dense[key] = q, q.float()
        elif kind in ("comfy-scaled", "kijai"):  # one fp32 scalar per weight
            s = w.abs().amax() / 448.0
            q = (w / s).to(FP8)
            name = ".scale_weight" if kind == "comfy-scaled" else ".weight_scale"
            out[key], out[layer + name] = q, s.reshape(()) if kind == "comfy-scaled" else s.reshape(1)
            dense[key] = q.float() * s
            if kind == "comfy-scaled":
                out[layer + ".scale_input"] = torch.tensor(1.0)
        elif kind == "per-channel":
            s = w.abs().amax(dim=1) / 448.0
            q = (w / s[:, None]).to(FP8)
            out[key], out[layer + ".weight_scale"] = q, s
            dense[key] = q.float() * s[:, None]
    if kind == "comfy-scaled":
        out["scaled_fp8"] = torch.empty(0, dtype=FP8)
    if kind == "kijai":
        out = {"model.diffusion_model." + k: v for k, v in out.items()}
    return out, dense


@pytest.mark.parametrize("kind", ["comfy-plain", "comfy-scaled", "kijai", "per-channel"])
def test_shared_fp8_layouts_load_into_fp8_and_bf16_models(tmp_path, reference, kind) -> None:
    model, state, fp8_keys = reference
    tensors, dense = _layout(reference, kind)
    path = tmp_path / "wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors"
    save_file(tensors, str(path))

    fp8_model = load_wan_dit(path, _cfg(), dtype=torch.bfloat16, fp8=True)
    for key in fp8_keys:
        layer = fp8_model.get_submodule(key[: -len(".weight")])
        assert isinstance(layer, FP8Linear)
        torch.testing.assert_close(layer.dequantized_weight(torch.float32), dense[key], rtol=1e-6, atol=0)
    kept = fp8_model.state_dict()
    for key in (
        "patch_embedding.weight",
        "blocks.0.norm3.weight",
        "head.head.weight",
        "img_emb.proj.1.weight",
    ):
        assert kept[key].dtype == torch.bfloat16 and torch.equal(kept[key], state[key].to(torch.bfloat16))

    plain = load_wan_dit(path, _cfg(), dtype=torch.bfloat16, fp8=False)
    for key in fp8_keys:
        got = plain.state_dict()[key]
        assert got.dtype == torch.bfloat16 and torch.equal(got, dense[key].to(torch.bfloat16))


def test_fp8_norm_or_embedding_tensors_are_dequantised(tmp_path, reference) -> None:
    tensors, _ = _layout(reference, "comfy-plain")
    tensors["blocks.0.norm3.weight"] = tensors["blocks.0.norm3.weight"].to(
        FP8
    )  # a file that casts everything
    save_file(tensors, str(tmp_path / "all_fp8.safetensors"))
    model = load_wan_dit(tmp_path / "all_fp8.safetensors", _cfg(), dtype=torch.bfloat16, fp8=True)
    assert model.blocks[0].norm3.weight.dtype == torch.bfloat16
    assert torch.equal(model.blocks[0].norm3.weight, tensors["blocks.0.norm3.weight"].to(torch.bfloat16))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.update({"blocks.0.ffn.0.weight_scale": torch.ones(3)}), "expected a scalar or \\[96\\]"),
        (lambda t: t.update({"blocks.0.ffn.0.weight_scale": torch.ones(96, dtype=torch.int32)}), "has dtype"),
        (lambda t: t.update({"head.head.scale_weight": torch.tensor(1.0)}), "expected a float8 weight"),
        (lambda t: t.update({"blocks.0.ffn.0.scale_weight": torch.tensor(0.0)}), "zero or non-finite"),
        (lambda t: t.update({"blocks.9.ffn.0.scale_weight": torch.tensor(1.0)}), "has no weight"),
        (lambda t: t.update({"blocks.0.ffn.0.weight": torch.zeros(96, 32, dtype=FP8)}), "mis-shaped 1"),
        (lambda t: t.pop("blocks.1.self_attn.q.weight"), "missing 1: blocks.1.self_attn.q.weight"),
        (lambda t: t.update({"blocks.0.extra.weight": torch.zeros(2, dtype=FP8)}), "unexpected 1"),
    ],
)
def test_bad_fp8_files_give_one_clear_error(tmp_path, reference, change, message) -> None:
    tensors, _ = _layout(reference, "comfy-plain")
    change(tensors)
    save_file(tensors, str(tmp_path / "bad_fp8_e4m3fn.safetensors"))
    with pytest.raises(CheckpointError, match=message) as info:
        load_wan_dit(tmp_path / "bad_fp8_e4m3fn.safetensors", _cfg(), dtype=torch.bfloat16, fp8=True)
    assert "\n" not in str(info.value)


def test_official_folder_picks_the_fp8_file(tmp_path) -> None:
    (tmp_path / "Wan2_1-I2V-14B-480P_fp8_e4m3fn.safetensors").write_bytes(b"x")
    assert pick_wan_dit_source(tmp_path, fp8=False).name.endswith("fp8_e4m3fn.safetensors")  # no shards
    (tmp_path / "diffusion_pytorch_model.safetensors.index.json").write_text("{}")
    assert pick_wan_dit_source(tmp_path, fp8=False) == tmp_path  # the bf16 shards win without fp8
    assert pick_wan_dit_source(tmp_path, fp8=True).suffix == ".safetensors"
    (tmp_path / "wan2.1_i2v_480p_14B_fp8_scaled.safetensors").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="several FP8 DiT files"):
        pick_wan_dit_source(tmp_path, fp8=True)


# ---------------------------------------------------------------------------------------------- our files
def test_our_fp8_folder_round_trips_bit_exactly(tmp_path) -> None:
    torch.manual_seed(4)
    model = FantasyWorldModel(fantasy_world_config("tiny")).eval()
    vae = WanVAE(wan_vae_config("tiny"))
    save_our_folder(tmp_path / "m", "t", model, vae, fp8=True)
    meta = json.loads((tmp_path / "m" / "fantasyworld.json").read_text())
    assert meta["quantization"] == FP8_FORMAT
    files = sorted((tmp_path / "m").glob("model*.safetensors"))
    assert files and file_quantization(files[0]) == FP8_FORMAT
    saved = quantize_model(model).state_dict()  # what quantising in memory gives

    loaded = load_our_folder(tmp_path / "m", torch.device("cpu"), torch.float32, fp8=True).model
    got = loaded.state_dict()
    assert set(got) == set(saved)
    for key, value in saved.items():
        a, b = got[key], value
        assert a.dtype == b.dtype, key
        assert torch.equal(
            a.view(torch.uint8) if a.dtype == FP8 else a, b.view(torch.uint8) if b.dtype == FP8 else b
        ), key
    # a second save of the loaded FP8 model is the same file content
    save_our_folder(tmp_path / "again", "t", loaded, vae)
    again = load_our_folder(
        tmp_path / "again", torch.device("cpu"), torch.float32, fp8=True
    ).model.state_dict()
    assert all(torch.equal(again[k].float(), got[k].float()) for k in got)

    dense = load_our_folder(tmp_path / "m", torch.device("cpu"), torch.float32, fp8=False).model
    assert not any(isinstance(m, FP8Linear) for m in dense.modules())
    layer = loaded.dit.blocks[0].ffn[0]
    assert torch.equal(dense.dit.blocks[0].ffn[0].weight, layer.dequantized_weight(torch.float32))


def test_14b_dit_in_fp8_is_about_17_gb_from_the_official_key_shapes() -> None:
    shapes = json.loads(KEYS_JSON.read_text())["keys"]
    with torch.device("meta"):
        dit = WanDiT(wan_dit_config("wan2.1-i2v-14b"))
    ours = {k: tuple(v.shape) for k, v in dit.state_dict().items()}
    official = {}
    for name, shape in shapes.items():  # pipe.dit.* plus IRGBlock.i.x_dit.* = block 16+i, adapters excluded
        if ".processor." in name:
            continue
        if name.startswith("pipe.dit."):
            official[name[len("pipe.dit.") :]] = tuple(shape)
        elif ".x_dit." in name:
            idx, rest = name[len("IRGBlock.") :].split(".x_dit.", 1)
            official[f"blocks.{16 + int(idx)}.{rest}"] = tuple(shape)
    assert official == ours
    fp8_gb, bf16_gb = state_bytes(dit, fp8=True) / 1e9, state_bytes(dit, fp8=False) / 1e9
    assert 16.0 < fp8_gb < 17.5 and 32.0 < bf16_gb < 33.5, (fp8_gb, bf16_gb)


def test_official_fantasyworld_over_a_shared_fp8_wan_file(tmp_path) -> None:
    """model.pth (bf16 geometry branch, camera adapters) laid over a Kijai-style FP8 Wan file, in FP8 mode."""
    from fantasy_world.models.fantasy.config import reduced
    from fantasy_world.models.fantasy.official_checkpoint import (
        is_wan_key,
        load_official_fantasyworld,
        official_state_dict,
    )

    torch.manual_seed(6)
    model = FantasyWorldModel(reduced(fantasy_world_config("wan2.1-i2v-14b"))).eval()
    fp8_names = set(fp8_layer_names(model))
    wan, dense = {}, {}
    for key, value in model.state_dict().items():
        if not is_wan_key(key):
            continue
        if key[: -len(".weight")] in fp8_names:
            s = value.abs().amax() / 448.0
            wan["model.diffusion_model." + key[4:]] = (value / s).to(FP8)
            wan["model.diffusion_model." + key[4:-7] + ".scale_weight"] = s.reshape(())
            dense[key] = (value / s).to(FP8).float() * s
        else:
            wan["model.diffusion_model." + key[4:]] = value
    wan_dir = tmp_path / "Wan2.1-I2V-14B-480P"
    wan_dir.mkdir()
    save_file(wan, str(wan_dir / "Wan2_1-I2V-14B-480P_fp8_e4m3fn.safetensors"))
    torch.save(official_state_dict(model, include_wan=False), tmp_path / "model.pth")

    source = pick_wan_dit_source(wan_dir, fp8=True)
    loaded, report = load_official_fantasyworld(
        source, tmp_path / "model.pth", dtype=None, cfg=model.cfg, fp8=True
    )
    assert report.ok
    for name in fp8_names:
        layer = loaded.get_submodule(name)
        assert isinstance(layer, FP8Linear), name
        want = dense.get(name + ".weight")
        if want is None:  # geometry-branch linears come from model.pth in fp32 and are quantised on load
            want = model.get_submodule(name).weight
            assert 0 < (layer.dequantized_weight(torch.float32) - want).abs().max() <= want.abs().max() / 16
        else:
            torch.testing.assert_close(layer.dequantized_weight(torch.float32), want, rtol=1e-6, atol=0)
    adapter = loaded.dit.blocks[0].cross_attn.camera_adapter.k_proj.group1
    assert isinstance(adapter, torch.nn.Linear)
    assert torch.equal(adapter.weight, model.dit.blocks[0].cross_attn.camera_adapter.k_proj.group1.weight)
