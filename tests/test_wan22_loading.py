"""Wan2.2 loaders: the 2,658 official keys per expert at full size (meta), the reward-LoRA merge (hand-computed,
and every real kohya name at full size on meta), and both experts loaded from synthesised files with the
real names, folder layout and shard naming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fantasy_world.checkpoints.io import load_into_model, save_state_dict
from fantasy_world.errors import CheckpointError
from fantasy_world.models.fantasy.config import FantasyWorldConfig, fantasy_world_config, reduced
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.fantasy.official_checkpoint import (
    is_wan_key,
    official_state_dict,
    official_to_ours,
    ours_to_official,
)
from fantasy_world.models.fantasy.official_wan22 import (
    EXPERT_DIRS,
    EXPERT_FILES,
    REWARD_LORAS,
    expert_shards,
    load_official_wan22,
    resolve_wan22_folder,
)
from fantasy_world.models.fantasy.stages import parameter_counts
from fantasy_world.models.wan.lora_merge import merge_lora, split_lora_key

FIXTURE = Path(__file__).parent / "fixtures" / "official_keys_wan22.json"
BLOCK_LINEARS = ("self_attn_q", "self_attn_k", "self_attn_v", "self_attn_o") + (
    "cross_attn_q",
    "cross_attn_k",
    "cross_attn_v",
    "cross_attn_o",
    "ffn_0",
    "ffn_2",
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def official_keys() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v) for k, v in json.loads(FIXTURE.read_text())["keys"].items()}


def test_full_size_expert_has_exactly_the_official_keys(official_keys) -> None:
    assert len(official_keys) == 2658
    with torch.device("meta"):
        model = FantasyWorldModel(fantasy_world_config("wan2.2-fun-a14b"))
    state = {official_to_ours(k, 16): torch.empty(s, device="meta") for k, s in official_keys.items()}
    assert len(state) == 2658
    report = load_into_model(model, state, source=FIXTURE.name, strict=True)
    assert report.ok and len(report.loaded) == 2658
    assert {ours_to_official(k, 16) for k in model.state_dict()} == set(official_keys)
    counts = parameter_counts(model)
    assert sum(counts.values()) == 16_543_568_600  # reference §2.1, per expert
    assert counts["camera"] == 503_331_840  # pipe.dit.control_adapter
    assert official_to_ours("pipe.dit.control_adapter.conv.weight", 16) == "dit.control_adapter.conv.weight"
    assert is_wan_key("dit.control_adapter.conv.weight")  # shipped in the Wan2.2-Fun base shards


def test_lora_merge_matches_hand_computation() -> None:
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    up = torch.tensor([[1.0], [2.0], [0.5]])  # [out 3, r 1]
    down = torch.tensor([[2.0, -1.0]])  # [r 1, in 2]
    state = {"dit.blocks.0.self_attn.q.weight": w.clone(), "dit.blocks.0.norm3.weight": torch.ones(2)}
    lora = {
        "lora_unet__blocks_0_self_attn_q.lora_up.weight": up,
        "lora_unet__blocks_0_self_attn_q.lora_down.weight": down,
        "lora_unet__blocks_0_self_attn_q.alpha": torch.tensor(0.5),
        "lora_unet__blocks_0_cross_attn_k_img.lora_up.weight": up,
        "lora_unet__blocks_0_cross_attn_k_img.lora_down.weight": down,
        "lora_unet__blocks_0_norm3.lora_up.weight": up,
        "lora_unet__blocks_0_norm3.lora_down.weight": down,
        "lora_unet__blocks_1_ffn_0.lora_up.weight": up,
        "something_else": torch.zeros(1),
    }
    report = merge_lora(state, lora, multiplier=0.55, source="x", prefix="dit.", dtype=torch.float32)
    # 0.55 * (alpha 0.5 / rank 1) * up @ down; up @ down = [[2,-1],[4,-2],[1,-0.5]]
    want = torch.tensor([[1.55, 1.725], [4.1, 3.45], [5.275, 5.8625]])
    torch.testing.assert_close(state["dit.blocks.0.self_attn.q.weight"], want)
    assert report.merged == ["dit.blocks.0.self_attn.q.weight"]
    assert report.unresolved == ["blocks_0_cross_attn_k_img", "blocks_0_norm3"]  # no CLIP; 1-D weight
    assert report.incomplete == ["blocks_1_ffn_0"] and report.unrecognised == ["something_else"]
    assert not report.ok and "unresolved (skipped) 2" in report.summary()
    assert split_lora_key("blocks.2.ffn.2.lora_B.default.weight") == ("blocks_2_ffn_2", "up")
    # bf16 merge: the official arithmetic (cast, product and sum in bf16)
    state = {"w.weight": w.clone()}
    lora16 = {"w.lora_up.weight": up, "w.lora_down.weight": down, "w.alpha": torch.tensor(0.5)}
    merge_lora(state, lora16, multiplier=0.55, source="x")
    bf = torch.bfloat16
    assert state["w.weight"].dtype == bf
    assert torch.equal(state["w.weight"], w.to(bf) + 0.275 * torch.mm(up.to(bf), down.to(bf)))
    with pytest.raises(CheckpointError, match="another model"):
        merge_lora({"w.weight": torch.zeros(4, 2)}, lora16, multiplier=1.0, source="bad")


def test_every_real_reward_lora_name_resolves_at_full_size(official_keys) -> None:
    """kohya names of the 10 linears of all 40 blocks (rank 128, alpha 64) on full-size meta weights."""
    wan = {
        official_to_ours(k, 16): torch.empty(s, device="meta")
        for k, s in official_keys.items()
        if is_wan_key(official_to_ours(k, 16))
    }
    lora: dict[str, torch.Tensor] = {}
    for j in range(40):
        for lin in BLOCK_LINEARS:
            out_dim, in_dim = (
                (13824, 5120) if lin == "ffn_0" else (5120, 13824) if lin == "ffn_2" else (5120, 5120)
            )
            name = f"lora_unet__blocks_{j}_{lin}"
            lora[f"{name}.lora_down.weight"] = torch.empty(128, in_dim, device="meta")
            lora[f"{name}.lora_up.weight"] = torch.empty(out_dim, 128, device="meta")
            lora[f"{name}.alpha"] = torch.tensor(64.0)
    lora["lora_unet__text_embedding_0.lora_down.weight"] = torch.empty(128, 4096, device="meta")
    lora["lora_unet__text_embedding_0.lora_up.weight"] = torch.empty(5120, 128, device="meta")
    report = merge_lora(wan, lora, multiplier=0.55, source="meta", prefix="dit.")
    assert len(report.merged) == 401 and report.ok
    assert "dit.blocks.39.ffn.2.weight" in report.merged and "dit.text_embedding.0.weight" in report.merged
    assert wan["dit.blocks.7.cross_attn.o.weight"].dtype == torch.bfloat16


def _random_reduced(seed: int, cfg: FantasyWorldConfig | None = None) -> FantasyWorldModel:
    torch.manual_seed(seed)
    model = FantasyWorldModel(cfg or reduced(fantasy_world_config("wan2.2-fun-a14b")))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def write_release(root: Path, official_keys, cfg: FantasyWorldConfig | None = None) -> dict[str, dict]:
    """A synthesised download (layout of README), reduced widths, real names; returns what was written.

    The VAE and umT5 files are left empty (tests that run the pipeline write small real ones)."""
    base = root / "Wan2.2-Fun-A14B-Control-Camera"
    written: dict[str, dict] = {}
    for i, expert in enumerate(("high", "low")):
        model = _random_reduced(10 + i, cfg)
        assert set(official_state_dict(model, include_wan=True)) == set(official_keys)
        wan = {k[len("dit.") :]: v.to(torch.bfloat16) for k, v in model.state_dict().items() if is_wan_key(k)}
        folder = base / EXPERT_DIRS[expert]
        names = sorted(wan)
        thirds = [names[0::3], names[1::3], names[2::3]]
        weight_map = {}
        for n, part in enumerate(thirds, start=1):
            shard = f"diffusion_pytorch_model-{n:05d}-of-00003-bf16.safetensors"
            save_state_dict({k: wan[k] for k in part}, folder / shard)
            weight_map.update(dict.fromkeys(part, shard))
        if expert == "low":  # one expert with an index, one without (both layouts are read)
            index = {"metadata": {}, "weight_map": weight_map}
            (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
        g = torch.Generator().manual_seed(20 + i)
        lora = {}
        for j in range(model.cfg.dit.num_layers):
            for lin in BLOCK_LINEARS:
                target = wan[f"blocks.{j}.{lin.replace('_attn_', '_attn.').replace('ffn_', 'ffn.')}.weight"]
                lora[f"lora_unet__blocks_{j}_{lin}.lora_down.weight"] = torch.randn(
                    4, target.shape[1], generator=g
                )
                lora[f"lora_unet__blocks_{j}_{lin}.lora_up.weight"] = torch.randn(
                    target.shape[0], 4, generator=g
                )
                lora[f"lora_unet__blocks_{j}_{lin}.alpha"] = torch.tensor(2.0)
        save_state_dict(lora, root / "Wan2.2-Fun-Reward-LoRAs" / REWARD_LORAS[expert])
        fantasy = official_state_dict(model, include_wan=False)
        fantasy["IRGBlock.0.x_dit.ffn.0.bias"] = torch.full_like(model.dit.blocks[16].ffn[0].bias, 0.25)
        torch.save(fantasy, root / EXPERT_FILES[expert])
        written[expert] = {"model": model, "wan": wan, "lora": lora, "fantasy": fantasy}
    for name in ("Wan2.1_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth"):
        (base / name).write_bytes(b"")
    (base / "google" / "umt5-xxl").mkdir(parents=True)
    return written


def test_both_experts_load_from_the_release_layout(tmp_path: Path, official_keys) -> None:
    written = write_release(tmp_path, official_keys)
    models, reports, files = load_official_wan22(tmp_path, cfg=written["high"]["model"].cfg)
    assert files.tokenizer == tmp_path / "Wan2.2-Fun-A14B-Control-Camera" / "google" / "umt5-xxl"
    bf = torch.bfloat16
    for expert in ("high", "low"):
        w, report = written[expert], reports[expert]
        got = models[expert].state_dict()
        assert report.base.ok and report.lora.ok and report.official.ok
        assert len(report.lora.merged) == 40 * 10
        # a merged linear: base (bf16) + 0.55 · (alpha 2 / rank 4) · up @ down, in bf16
        up = w["lora"]["lora_unet__blocks_3_self_attn_q.lora_up.weight"].to(bf)
        down = w["lora"]["lora_unet__blocks_3_self_attn_q.lora_down.weight"].to(bf)
        want = w["wan"]["blocks.3.self_attn.q.weight"] + 0.275 * torch.mm(up, down)
        assert torch.equal(got["dit.blocks.3.self_attn.q.weight"], want)
        # unmerged DiT weights come from the shards, the rest from the expert file, both as bf16
        assert torch.equal(got["dit.control_adapter.conv.weight"], w["wan"]["control_adapter.conv.weight"])
        assert torch.equal(
            got["irg.5.bicross_attention.gamma_m1"],
            w["fantasy"]["IRGBlock.5.bicross_attention.gamma_m1"].to(bf),
        )
        # DiT keys carried by the expert file overwrite the merged base (official non-strict load)
        assert report.official.overridden_wan == ["dit.blocks.16.ffn.0.bias"]
        assert (got["dit.blocks.16.ffn.0.bias"] == 0.25).all()
        assert {p.dtype for p in models[expert].parameters()} == {bf}
    assert not torch.equal(
        models["high"].state_dict()["dit.blocks.0.self_attn.q.weight"],
        models["low"].state_dict()["dit.blocks.0.self_attn.q.weight"],
    )


def test_strict_key_reports_name_the_problem(tmp_path: Path, official_keys) -> None:
    written = write_release(tmp_path, official_keys)
    cfg = written["high"]["model"].cfg
    high = tmp_path / "Wan2.2-Fun-A14B-Control-Camera" / "high_noise_model"
    assert [p.name for p in expert_shards(high)][
        0
    ] == "diffusion_pytorch_model-00001-of-00003-bf16.safetensors"

    fantasy = dict(written["high"]["fantasy"])
    fantasy["vggt.track_head.w"] = torch.zeros(1)
    torch.save(fantasy, tmp_path / EXPERT_FILES["high"])
    with pytest.raises(CheckpointError, match="vggt.track_head.w"):
        load_official_wan22(tmp_path, cfg=cfg)

    del fantasy["vggt.track_head.w"], fantasy["vggt.aggregator.camera_token"]
    torch.save(fantasy, tmp_path / EXPERT_FILES["high"])
    with pytest.raises(CheckpointError, match="aggregator.camera_token"):
        load_official_wan22(tmp_path, cfg=cfg)
    torch.save(written["high"]["fantasy"], tmp_path / EXPERT_FILES["high"])

    save_state_dict(
        {"blocks.99.extra": torch.zeros(1)}, high / "diffusion_pytorch_model-00004-of-00004-bf16.safetensors"
    )
    with pytest.raises(CheckpointError, match="incomplete or mixed shard set"):
        load_official_wan22(tmp_path, cfg=cfg)
    (high / "diffusion_pytorch_model-00004-of-00004-bf16.safetensors").unlink()
    (high / "diffusion_pytorch_model-00002-of-00003-bf16.safetensors").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        load_official_wan22(tmp_path, cfg=cfg)

    (tmp_path / "Wan2.2-Fun-Reward-LoRAs" / REWARD_LORAS["low"]).unlink()
    with pytest.raises(CheckpointError, match="low reward LoRA"):
        resolve_wan22_folder(tmp_path)


def test_model_folder_takes_a_wan22_folder_and_names_missing_files(tmp_path: Path) -> None:
    from fantasy_world.model_folder import load_model

    (tmp_path / EXPERT_FILES["high"]).write_bytes(b"")
    with pytest.raises(CheckpointError, match="Wan2.2-Fun-A14B-Control-Camera"):
        load_model(tmp_path, torch.device("cpu"), torch.float32)
