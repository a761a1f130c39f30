"""An installed package finds the bundled tiny model as package data, and never falls back to random weights."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from fantasy_world import model_folder
from fantasy_world.errors import CheckpointError

REPO = Path(__file__).resolve().parents[1]


def test_tiny_folder_prefers_package_data_then_checkout(tmp_path, monkeypatch):
    installed, checkout = tmp_path / "installed", tmp_path / "checkout"
    monkeypatch.setattr(model_folder, "INSTALLED_TINY_DIR", installed)
    monkeypatch.setattr(model_folder, "TINY_DIR", checkout)
    with pytest.raises(CheckpointError, match="bundled model is missing"):
        model_folder.tiny_folder()
    with pytest.raises(CheckpointError, match="bundled model is missing"):  # no random stand-in
        model_folder.load_model("tiny", torch.device("cpu"), torch.float32)
    for folder in (checkout, installed):
        folder.mkdir()
        (folder / model_folder.CONFIG_FILE).write_text("{}")
        assert model_folder.tiny_folder() == folder


@pytest.mark.slow
def test_wheel_ships_tiny_model_and_leaves_repo_tooling_out(tmp_path):
    pytest.importorskip("setuptools")
    src, wheels = tmp_path / "src", tmp_path / "wheels"  # a copy: setuptools writes build/ beside the sources
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("fantasy_world", "app", "checkpoints/fantasyworld-tiny"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(wheels),
    ]
    subprocess.run([*build, str(src)], check=True, cwd=tmp_path, timeout=600)
    (wheel,) = wheels.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "fantasy_world/bundled_tiny/fantasyworld.json" in names
    assert any(n.startswith("fantasy_world/bundled_tiny/") and n.endswith(".safetensors") for n in names)
    assert not any(n.startswith(("bench/", "tests/", "checkpoints/")) for n in names)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        timeout=600,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import fantasy_world, sys; from fantasy_world.pipeline import FantasyWorldPipeline as P\n"
        "p = P.from_pretrained('tiny', device='cpu')\n"
        "print(fantasy_world.__file__, p.loaded.trained)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    path, trained = out.stdout.split()
    assert Path(path).is_relative_to(site) and trained == "True"
    bench = subprocess.run(
        [sys.executable, "-m", "fantasy_world", "bench", "--small"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (
        bench.returncode == 2
        and "clone of the repository" in bench.stderr
        and "Traceback" not in bench.stderr
    )
