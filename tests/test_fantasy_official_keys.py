"""Official FantasyWorld (Wan2.1) checkpoint layout: full-size key coverage, parameter counts, converter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fantasy_world.checkpoints.io import load_into_model, save_state_dict
from fantasy_world.errors import CheckpointError
from fantasy_world.models.fantasy.config import fantasy_world_config, reduced
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.fantasy.official_checkpoint import (
    is_wan_key,
    load_official_fantasyworld,
    load_official_state,
    official_state_dict,
    official_to_ours,
    ours_to_official,
    save_official_layout,
)
from fantasy_world.models.fantasy.stages import parameter_counts, set_training_stage

KEYS_JSON = (
    Path(__file__).resolve().parent / "fixtures" / "official_keys_wan21.json"
)  # copy of the official key list


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def official_keys() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v) for k, v in json.loads(KEYS_JSON.read_text())["keys"].items()}


@pytest.fixture(scope="module")
def full_model() -> FantasyWorldModel:
    with torch.device("meta"):
        return FantasyWorldModel(fantasy_world_config("wan2.1-i2v-14b"))


def test_full_size_official_state_dict_loads_exactly(official_keys, full_model) -> None:
    assert len(official_keys) == 3132
    n_pcb = full_model.cfg.n_pcb
    state = {official_to_ours(k, n_pcb): torch.empty(s, device="meta") for k, s in official_keys.items()}
    assert len(state) == len(official_keys)  # the mapping is injective
    report = load_into_model(full_model, state, source="official_keys_wan21.json", strict=True)
    assert report.ok and len(report.loaded) == 3132
    assert {ours_to_official(k, n_pcb) for k in full_model.state_dict()} == set(official_keys)
    for key in official_keys:
        assert ours_to_official(official_to_ours(key, n_pcb), n_pcb) == key


def test_key_mapping_examples() -> None:
    assert official_to_ours("IRGBlock.3.x_dit.ffn.0.weight", 16) == "dit.blocks.19.ffn.0.weight"
    assert (
        official_to_ours("IRGBlock.8.x_dit.cross_attn.processor.k_proj.group1.weight", 16)
        == "dit.blocks.24.cross_attn.camera_adapter.k_proj.group1.weight"
    )
    assert official_to_ours("pipe.dit.blocks.2.cross_attn.processor.v_proj.group2.2.bias", 16) == (
        "dit.blocks.2.cross_attn.camera_adapter.v_proj.group2.2.bias"
    )
    assert official_to_ours("vggt.projection_head.weight", 16) == "bridge.proj.weight"
    assert official_to_ours("IRGBlock.0.bicross_attention.gamma_m1", 16) == "irg.0.bicross_attention.gamma_m1"
    assert ours_to_official("dit.blocks.15.norm3.weight", 16) == "pipe.dit.blocks.15.norm3.weight"
    assert ours_to_official("dit.blocks.16.norm3.weight", 16) == "IRGBlock.0.x_dit.norm3.weight"
    with pytest.raises(CheckpointError, match="not a FantasyWorld"):
        official_to_ours("vggt.track_head.x", 16)
    with pytest.raises(CheckpointError, match="conv"):
        ours_to_official("bridge.layers.0.q.weight", 12)


def test_official_trainable_counts_match_reference_table(full_model) -> None:
    counts = parameter_counts(full_model)
    assert counts["dit"] == 16_394_878_784
    # reference §2.1: frame blocks + IRG global blocks + time embedding/projection + tokens + CamTokenProjector
    assert counts["geometry"] == 2 * 302_512_128 + 1_312_768 + 6_297_600 + 2_048 + 8_192 + 136_832
    assert counts["bridge"] == 5_243_904
    assert counts["bicross"] == 510_013_440
    assert counts["heads"] == 233_009_170 + 195_143_650 + 195_143_716
    assert counts["camera"] == 34_692_096 + 25 * 14_476_697
    geometry_path = counts["geometry"] + counts["bridge"] + counts["bicross"] + counts["heads"]
    assert geometry_path == 1_751_335_576
    assert geometry_path + counts["camera"] == 2_147_945_097
    assert sum(counts.values()) == 18_542_823_881

    stage1 = set_training_stage(full_model, 1)
    assert stage1 == {**counts, "dit": 0, "bicross": 0, "camera": 0}
    stage2 = set_training_stage(full_model, 2)
    assert stage2 == {**counts, "dit": 0}


def _random_reduced_official(seed: int) -> FantasyWorldModel:
    """Reduced-width model with exactly the official structure; zero-initialised tensors randomised too."""
    torch.manual_seed(seed)
    model = FantasyWorldModel(reduced(fantasy_world_config("wan2.1-i2v-14b")))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def test_reduced_model_has_the_official_key_set(official_keys) -> None:
    model = _random_reduced_official(0)
    assert set(official_state_dict(model, include_wan=True)) == set(official_keys)
    only_new = official_state_dict(model, include_wan=False)
    assert not any(k.startswith("pipe.dit.") and ".processor." not in k for k in only_new)
    assert not any(".x_dit." in k and ".processor." not in k for k in only_new)
    assert "IRGBlock.8.x_dit.cross_attn.processor.k_proj.group1.weight" in only_new


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_converter_round_trip(tmp_path: Path, suffix: str) -> None:
    model = _random_reduced_official(1)
    path = save_official_layout(model, tmp_path / f"model{suffix}", include_wan=True)
    if suffix == ".pth":
        official = torch.load(path, weights_only=True)
    else:
        from safetensors.torch import load_file

        official = load_file(str(path))
    with torch.device("meta"):
        fresh = FantasyWorldModel(model.cfg)
    report = load_official_state(fresh, official, source=str(path))
    assert report.ok and not report.ignored
    ours, back = model.state_dict(), fresh.state_dict()
    assert set(ours) == set(back)
    for key, value in ours.items():
        assert torch.equal(value, back[key]), key


def test_load_official_fantasyworld_from_wan_files_and_model_pth(tmp_path: Path) -> None:
    model = _random_reduced_official(2)
    wan_dir = tmp_path / "Wan2.1-I2V-14B-480P"
    wan = {k[len("dit.") :]: v for k, v in model.state_dict().items() if is_wan_key(k)}
    save_state_dict(wan, wan_dir / "diffusion_pytorch_model.safetensors")
    new = official_state_dict(model, include_wan=False)
    new["pipe.vae.model.decoder.conv1.weight"] = torch.zeros(2)
    torch.save(new, tmp_path / "model.pth")

    loaded, report = load_official_fantasyworld(wan_dir, tmp_path / "model.pth", dtype=None, cfg=model.cfg)
    assert report.ok and report.ignored == ["pipe.vae.model.decoder.conv1.weight"]
    assert not report.overridden_wan
    got = loaded.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, got[key]), key
    assert all(irg.x_dit is loaded.dit.blocks[16 + i] for i, irg in enumerate(loaded.irg))

    # shipped x_dit copies win over the Wan shards, as with the official load_state_dict
    override = dict(new)
    override["IRGBlock.0.x_dit.ffn.0.bias"] = torch.zeros(model.dit.blocks[16].ffn[0].bias.shape)
    torch.save(override, tmp_path / "override.pth")
    loaded, report = load_official_fantasyworld(wan_dir, tmp_path / "override.pth", dtype=None, cfg=model.cfg)
    assert report.overridden_wan == ["dit.blocks.16.ffn.0.bias"]
    assert loaded.dit.blocks[16].ffn[0].bias.abs().max() == 0

    broken = {k: v for k, v in new.items() if k != "vggt.aggregator.camera_token"}
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="aggregator.camera_token"):
        load_official_fantasyworld(wan_dir, tmp_path / "broken.pth", dtype=None, cfg=model.cfg)

    unknown = dict(new)
    unknown["vggt.track_head.w"] = torch.zeros(1)
    torch.save(unknown, tmp_path / "unknown.pth")
    _, report = load_official_fantasyworld(wan_dir, tmp_path / "unknown.pth", dtype=None, cfg=model.cfg)
    assert report.unmapped == ["vggt.track_head.w"] and not report.ok


def test_bf16_load_casts_weights(tmp_path: Path) -> None:
    model = _random_reduced_official(3)
    wan_dir = tmp_path / "wan"
    save_state_dict(
        {k[4:]: v for k, v in model.state_dict().items() if is_wan_key(k)}, wan_dir / "x.safetensors"
    )
    torch.save(official_state_dict(model), tmp_path / "model.pth")
    loaded, _ = load_official_fantasyworld(wan_dir, tmp_path / "model.pth", cfg=model.cfg)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
