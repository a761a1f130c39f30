"""FantasyWorld on Wan2.2-Fun-A14B end to end on CPU: a reduced-width release synthesised on disk with the real
key names (two experts, base shards, reward LoRAs, umT5, VAE), loaded through ``model_folder``, generating
over a schedule that crosses the expert switch; plus the CLI, the studio picker and the point filter."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fantasy_world import model_folder
from fantasy_world.errors import InputError
from fantasy_world.geometry import PointFilter, build_point_cloud
from fantasy_world.models.fantasy.config import fantasy_world_config, reduced
from fantasy_world.models.fantasy.official_wan22 import BASE_DIRNAME
from fantasy_world.models.wan.umt5 import UMT5_PRESETS, UMT5_TOKENIZER_DIR, UMT5_WEIGHT_FILE, UMT5Encoder
from fantasy_world.models.wan.vae import WanVAE, wan_vae_config
from fantasy_world.pipeline import FantasyWorldPipeline, StepInfo
from fantasy_world.sampling import flow_match_schedule
from tests.test_text_encoders import write_tokenizer
from tests.test_wan22_loading import FIXTURE, write_release

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS = 4  # at shift 5: t = 1000, 937.5, 833.3, 625 -> high, high, low, low
SIZE = {"frames": 5, "height": 32, "width": 48}


def _sizes() -> model_folder.Wan22Sizes:
    cfg = reduced(fantasy_world_config("wan2.2-fun-a14b"), context_dim=64)
    text = dataclasses.replace(UMT5_PRESETS["umt5-test"], text_len=cfg.dit.text_len)
    return model_folder.Wan22Sizes(cfg, text, wan_vae_config("tiny"))


@pytest.fixture(scope="module")
def wan22_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wan22")
    keys = {k: tuple(v) for k, v in json.loads(FIXTURE.read_text())["keys"].items()}
    sizes = _sizes()
    write_release(root, keys, cfg=sizes.model)
    base = root / BASE_DIRNAME
    torch.manual_seed(7)
    torch.save(WanVAE(sizes.vae).state_dict(), base / "Wan2.1_VAE.pth")
    torch.save(UMT5Encoder(sizes.text).state_dict(), base / UMT5_WEIGHT_FILE)
    (base / UMT5_TOKENIZER_DIR / "tokenizer.json").unlink(missing_ok=True)
    (base / UMT5_TOKENIZER_DIR).rmdir()
    write_tokenizer(base / UMT5_TOKENIZER_DIR)
    return root


@pytest.fixture(scope="module")
def pipe(wan22_folder: Path) -> FantasyWorldPipeline:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_folder, "wan22_sizes", _sizes)
        pipe = FantasyWorldPipeline.from_pretrained(wan22_folder, device="cpu", dtype="fp32")
    # on CPU, "on the device" is the same memory as the host copy; a clone makes residency observable
    pipe.loaded.experts._upload = lambda host: host.clone()
    return pipe


def _images() -> tuple[Image.Image, Image.Image]:
    rng = np.random.default_rng(0)
    first = Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    end = Image.fromarray(rng.integers(0, 256, (32, 48, 4), dtype=np.uint8), mode="RGBA")
    return first, end


def test_loaded_through_model_folder_with_the_wan22_defaults(pipe: FantasyWorldPipeline) -> None:
    assert pipe.name == "wan2.2-fun-a14b"
    assert pipe.is_image_model and pipe.accepts_end_image and pipe.image_encoder is None
    d = pipe.defaults
    assert (d.height, d.width, d.frames, d.steps, d.guidance, d.shift) == (480, 832, 81, 50, 5.0, 5.0)
    assert d.negative_prompt == "" and d.point_conf_above == 1.5
    residency = pipe.loaded.experts
    assert set(residency.experts) == {"high", "low"} and residency.active is None
    assert pipe.model is residency.experts["low"]
    assert residency.experts["high"] is not residency.experts["low"]
    # the official rule on the default schedule: 18 high steps of 50
    assert residency.table.plan(flow_match_schedule(50, shift=5.0).timesteps).count("high") == 18


def test_generation_crosses_the_switch(pipe: FantasyWorldPipeline, tmp_path: Path) -> None:
    residency = pipe.loaded.experts
    assert residency.table.plan(flow_match_schedule(STEPS, shift=5.0).timesteps) == ["high"] * 2 + ["low"] * 2
    heads = {name: [] for name in residency.experts}
    hooks = [
        model.depth_head.register_forward_hook(lambda *_, n=name: heads[n].append(1))
        for name, model in residency.experts.items()
    ]
    steps: list[StepInfo] = []
    placement: list[tuple[str, bool, bool]] = []

    def on_step(info: StepInfo) -> None:
        steps.append(info)
        other = "low" if info.expert == "high" else "high"
        placement.append((residency.active, residency.on_host(info.expert), residency.on_host(other)))

    first, end = _images()
    switches_before = len(residency.switches)
    try:
        world = pipe(
            "a room", image=first, end_image=end, steps=STEPS, preview_every=1, on_step=on_step, **SIZE
        )
    finally:
        for hook in hooks:
            hook.remove()
    # expert per step, the active one on the device, the other only in host memory
    assert [s.expert for s in steps] == ["high", "high", "low", "low"]
    assert placement == [("high", False, True)] * 2 + [("low", False, True)] * 2
    moves = residency.switches[switches_before:]
    assert [(m.offloaded, m.loaded) for m in moves] == [(None, "high"), ("high", "low")]  # one switch
    assert residency.active is None  # released after denoising
    # geometry (previews and the final read-out) only from the low expert
    assert heads == {"high": [], "low": [1, 1]}
    assert [s.step for s in steps if s.preview is not None] == [3]
    meta = world.meta
    assert meta["experts"] == ["high", "high", "low", "low"] and meta["geometry_expert"] == "low"
    assert meta["negative_prompt"] == "" and meta["end_image"] is True
    assert [(s["from"], s["to"]) for s in meta["expert_switches"]] == [(None, "high"), ("high", "low")]
    files = world.save(tmp_path / "bundle", max_points=None)
    saved = json.loads(files["meta.json"].read_text())
    assert saved["experts"] == ["high", "high", "low", "low"]
    assert saved["point_filter"]["conf_above"] == 1.5
    assert world.images.shape == (5, 32, 48, 3)


def test_end_image_changes_the_output_and_is_read_as_rgb(pipe: FantasyWorldPipeline) -> None:
    first, end = _images()
    kw = {"steps": 2, "guidance": 1.0, "seed": 3, **SIZE}
    plain = pipe("a room", image=first, **kw)
    with_end = pipe("a room", image=first, end_image=end, **kw)
    same_rgb = pipe("a room", image=first, end_image=end.convert("RGB"), **kw)
    assert np.abs(plain.images.astype(int) - with_end.images.astype(int)).max() > 0
    np.testing.assert_array_equal(with_end.images, same_rgb.images)  # RGBA end image == its RGB
    assert plain.meta["end_image"] is False and plain.meta["experts"] == ["high", "low"]
    with pytest.raises(InputError, match="start image"):
        pipe("a room", end_image=end, **kw)


def test_step_window_runs_only_the_asked_steps(pipe: FantasyWorldPipeline) -> None:
    first, _ = _images()
    # 50 steps at shift 5: steps 16, 17 are high (t 908, 906.59 -> bf16 908), step 18 is 900.0 -> low
    world = pipe("a room", image=first, steps=50, guidance=1.0, step_window=(16, 19), **SIZE)
    assert world.meta["experts"] == ["high", "high", "low"] and world.meta["step_window"] == [16, 19]
    with pytest.raises(InputError, match="step_window"):
        pipe("a room", image=first, steps=4, step_window=(3, 5), **SIZE)


def test_tiny_refuses_an_end_image_and_the_cli_passes_it(tmp_path: Path, capsys) -> None:
    from fantasy_world.cli import build_parser, main

    args = build_parser().parse_args(
        ["generate", "--prompt", "x", "--image", "a.png", "--end-image", "b.png", "--out", "o"]
    )
    assert args.end_image == "b.png"
    img = tmp_path / "end.png"
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(img)
    code = main(
        [
            "generate",
            "--prompt",
            "a ball",
            "--end-image",
            str(img),
            "--frames",
            "5",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "takes no end image" in capsys.readouterr().err


def test_studio_lists_a_wan22_folder_with_an_end_image_box(wan22_folder: Path, monkeypatch) -> None:
    from app.models import ENV_DIRS, model_choices, model_info

    monkeypatch.setenv(ENV_DIRS, str(wan22_folder))
    assert str(wan22_folder) in model_choices(root=wan22_folder / "nothing-here")
    info = model_info(str(wan22_folder))
    assert info.image_input and info.end_image and "Wan2.2" in info.label
    assert (info.defaults.height, info.defaults.width) == (480, 832)
    assert not model_info("tiny").end_image


def test_point_filter_keeps_conf_strictly_above() -> None:
    pts = np.zeros((1, 1, 3, 3), np.float32)
    colors = np.zeros((1, 1, 3, 3), np.uint8)
    conf = np.array([[[1.0, 1.5, 1.6]]], np.float32)
    strict = build_point_cloud(pts, colors, conf, None, PointFilter(conf_above=1.5, flying_threshold=None))
    at_least = build_point_cloud(
        pts, colors, conf, None, PointFilter(conf_threshold=1.5, flying_threshold=None)
    )
    assert strict.confidence.tolist() == pytest.approx([1.6])
    assert at_least.confidence.tolist() == pytest.approx([1.5, 1.6])


def test_studio_page_wires_the_end_image_box(tmp_path: Path, wan22_folder: Path, monkeypatch) -> None:
    from gradio import helpers

    from app.callbacks import Studio
    from app.models import ENV_DIRS
    from app.sessions import SessionRegistry
    from app.ui import build_ui

    monkeypatch.setenv(ENV_DIRS, str(wan22_folder))
    studio = Studio(SessionRegistry(tmp_path / "sessions", max_sessions=2), upload_roots=[tmp_path])
    try:
        demo = build_ui(studio)
        fns = {fn.api_name or fn.name: fn for fn in demo.fns.values()}
        gen = fns["generate"]
        assert gen.inputs[-1].elem_id == "fw-end-image" and len(gen.inputs) == 13
        args, *_ = helpers.special_args(gen.fn, list(range(13)), request="the request")
        assert args == [*range(13), "the request"]  # the end image is the last value, the request after it
        toggle = fns["on_model_end_image"]
        assert toggle.fn("tiny")["visible"] is False and toggle.fn("tiny")["value"] is None
        assert toggle.fn(str(wan22_folder))["visible"] is True
    finally:
        studio.registry.close_all()
