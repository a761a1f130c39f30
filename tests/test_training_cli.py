"""``train`` / ``eval`` command functions: a 1-step recipe leaves loadable model folders; bad input exits 2."""

from __future__ import annotations

import json

import torch

from fantasy_world.cli_train import main
from fantasy_world.model_folder import load_model
from fantasy_world.training.log_writer import read_jsonl


def test_train_phases_write_model_folders(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        ["train", "--phases", "vae,stage1", "--out", str(out), "--steps", "1", "--frames", "5", "--height", "32",
         "--width", "48", "--batch-size", "1", "--bank-size", "2", "--device", "cpu", "--log-every", "1"]
    )  # fmt: skip
    assert rc == 0
    assert "model folder:" in capsys.readouterr().out
    vae_meta = json.loads((out / "vae" / "final" / "fantasyworld.json").read_text())
    stats = vae_meta["vae"]["latents_std"]
    assert len(stats) == 16 and stats != [1.0] * 16  # measured latent statistics went into the config
    assert vae_meta["trained"] is False
    records = read_jsonl(out / "stage1" / "metrics.jsonl")
    assert records[-1]["step"] == 1 and {"depth_conf", "cam_rot", "geo"} <= set(records[-1])
    loaded = load_model(str(out / "stage1" / "final"), torch.device("cpu"), torch.float32)
    assert loaded.vae.cfg.latents_std == tuple(stats)
    assert next(loaded.model.parameters()).dtype == torch.float32  # stored in float16, loaded as asked


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "--phases", "stage3", "--out", str(tmp_path)]) == 2
    assert "unknown phase 'stage3'" in capsys.readouterr().err
    assert main(["eval", "--json", str(tmp_path / "x.json"), "--clips", "0", "--device", "cpu"]) == 2
    assert "--clips=0" in capsys.readouterr().err
