import json

import pytest
import torch

from fantasy_world.errors import CheckpointError
from fantasy_world.model_folder import (
    CONFIG_FILE,
    TINY_DEFAULTS,
    load_model,
    save_our_folder,
)
from fantasy_world.models.fantasy.config import fantasy_world_config
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan.vae import WanVAE, wan_vae_config
from fantasy_world.utils.dataclass_io import config_from_dict, config_to_dict


@pytest.fixture(scope="module")
def tiny_parts():
    torch.manual_seed(3)
    return FantasyWorldModel(fantasy_world_config("tiny")), WanVAE(wan_vae_config("tiny"))


def test_config_round_trip_through_json():
    cfg = fantasy_world_config("tiny")
    data = json.loads(json.dumps(config_to_dict(cfg)))
    assert config_from_dict(type(cfg), data) == cfg


def test_config_rejects_unknown_and_ill_typed_fields():
    cfg = fantasy_world_config("tiny")
    data = config_to_dict(cfg)
    with pytest.raises(CheckpointError, match="unknown field"):
        config_from_dict(type(cfg), {**data, "bogus": 1})
    with pytest.raises(CheckpointError, match="n_pcb"):
        config_from_dict(type(cfg), {**data, "n_pcb": "three"})


def test_folder_round_trip_is_exact_and_sharded(tmp_path, tiny_parts):
    model, vae = tiny_parts
    folder = save_our_folder(tmp_path / "m", "tiny-test", model, vae, TINY_DEFAULTS)
    shards = sorted(p.name for p in folder.glob("model-*-of-*.safetensors"))
    assert shards, "a 14M-parameter fp32 model must be split into shards under 16 MiB"
    assert all((folder / s).stat().st_size <= 16 * 1024 * 1024 for s in shards)
    loaded = load_model(str(folder), torch.device("cpu"), torch.float32)
    assert loaded.name == "tiny-test" and loaded.trained
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    for a, b in zip(vae.state_dict().values(), loaded.vae.state_dict().values()):
        assert torch.equal(a, b)


def test_folder_errors_name_the_problem(tmp_path, tiny_parts):
    model, vae = tiny_parts
    with pytest.raises(CheckpointError, match="not found"):
        load_model(str(tmp_path / "nope"), torch.device("cpu"), torch.float32)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="neither"):
        load_model(str(empty), torch.device("cpu"), torch.float32)
    folder = save_our_folder(tmp_path / "m2", "x", model, vae)
    (folder / "vae.safetensors").unlink()
    with pytest.raises(CheckpointError, match="vae.safetensors"):
        load_model(str(folder), torch.device("cpu"), torch.float32)
    meta = json.loads((folder / CONFIG_FILE).read_text())
    meta["version"] = 99
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="version"):
        load_model(str(folder), torch.device("cpu"), torch.float32)


def test_official_folder_reports_missing_wan_files(tmp_path):
    (tmp_path / "model.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="Wan2.1_VAE.pth"):
        load_model(str(tmp_path), torch.device("cpu"), torch.bfloat16)


def test_config_names_its_text_encoder_and_old_folders_still_load(tmp_path, tiny_parts):
    assert fantasy_world_config("tiny").text_encoder == "minilm"
    assert fantasy_world_config("wan2.1-i2v-14b").text_encoder == "umt5-xxl"
    model, vae = tiny_parts
    folder = save_our_folder(tmp_path / "m", "tiny-test", model, vae, TINY_DEFAULTS)
    meta = json.loads((folder / CONFIG_FILE).read_text())
    assert meta["model"]["text_encoder"] == "minilm" and meta["text_encoder"]["kind"] == "minilm"
    # A folder from before the config named it: only the top-level "text_encoder" says which.
    del meta["model"]["text_encoder"]
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    loaded = load_model(str(folder), torch.device("cpu"), torch.float32)
    assert loaded.model.cfg.text_encoder == "minilm" and loaded.text_encoder.dim == 384
