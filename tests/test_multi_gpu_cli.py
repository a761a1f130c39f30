"""``generate --gpus N``: argument checks, and the re-launched 2-process run (gloo on the CPU) equals one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fantasy_world.accel import launch
from fantasy_world.accel.launch import ENV_GLOO_CPU, check_gpus
from fantasy_world.cli import main
from fantasy_world.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--prompt", "a red ball on a floor", "--frames", "5", "--height", "32", "--width", "48"]
TINY_ARGS += ["--steps", "2", "--seed", "3", "--device", "cpu", "--max-points", "2000"]


@pytest.fixture(autouse=True)
def _no_torchrun(monkeypatch):
    for key in ("LOCAL_RANK", "WORLD_SIZE", "RANK", ENV_GLOO_CPU, launch.ENV_STATUS):
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize(
    ("gpus", "kw", "match"),
    [
        (0, {}, "at least 1"),
        (True, {}, "whole number"),
        (3, {"max_ranks": 8}, "power of 2"),
        (6, {"max_ranks": 8}, "power of 2"),
        (16, {"device": "cuda", "visible": 16}, "at most 8 GPUs"),
        (2, {"device": "cpu"}, "needs CUDA GPUs"),
        (2, {"device": "cuda:1"}, "cuda:LOCAL_RANK"),
        (4, {"device": "cuda", "visible": 2, "max_ranks": 8}, "only 2 CUDA GPU"),
        (2, {"device": "cuda", "visible": 1}, "only 1 CUDA GPU"),
    ],
)
def test_gpus_argument_errors(gpus, kw, match):
    with pytest.raises(InputError, match=match):
        check_gpus(gpus, **kw)


def test_gpus_accepted(monkeypatch):
    check_gpus(1, "cpu")  # one process: nothing to check
    check_gpus(2, "cuda", visible=2)
    check_gpus(8, "cuda", visible=8)
    monkeypatch.setenv(ENV_GLOO_CPU, "1")
    check_gpus(2, "cpu")  # the test/debug path: gloo on the CPU


def test_cli_prints_one_line_for_bad_gpus(tmp_path, capsys):
    assert main(["generate", *TINY_ARGS, "--out", str(tmp_path / "o"), "--gpus", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --gpus 3: expected a power of 2 (2, 4, 8): ranks are split in halves"]
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_torchrun_world_of_another_size(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV_GLOO_CPU, "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert main(["generate", *TINY_ARGS, "--out", str(tmp_path / "o"), "--gpus", "2"]) == 2
    assert "torchrun started 4 processes; expected 2" in capsys.readouterr().err


def _generate(out: Path, extra: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env_extra}
    for key in ("LOCAL_RANK", "WORLD_SIZE", "RANK"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "fantasy_world", "generate", *TINY_ARGS, "--out", str(out), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.mark.parametrize("gpus", [2, 4])
def test_gloo_processes_write_the_bundle_of_one_process(tmp_path, gpus):
    one = _generate(tmp_path / "one", [], {})
    assert one.returncode == 0, one.stderr[-2000:]
    two = _generate(tmp_path / "two", ["--gpus", str(gpus)], {ENV_GLOO_CPU: "1"})
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("wrote ") == 1  # rank 0 alone prints and writes
    a, b = np.load(tmp_path / "one" / "world.npz"), np.load(tmp_path / "two" / "world.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        x, y = a[key].astype(np.float64), b[key].astype(np.float64)
        assert x.shape == y.shape, key
        if key == "images":  # uint8: a value on a rounding boundary may move by one level
            assert np.abs(x - y).max() <= 1, key
            assert np.mean(x != y) < 0.01, key
        else:
            np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(x).max()), err_msg=key)
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted(
        p.name for p in (tmp_path / "two").iterdir()
    )


def test_a_user_error_on_every_rank_prints_one_line(tmp_path):
    res = _generate(tmp_path / "o", ["--gpus", "2", "--guidance", "0.5"], {ENV_GLOO_CPU: "1"})
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "guidance" in errors[0], res.stderr[-2000:]
    assert "ChildFailedError" not in res.stderr
