"""Issue 13 without a browser: honest ranges, frames from loaded paths, no clamping, the model picker,
"already generating", and example prompts the bundled model can draw."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from app.callbacks import Studio
from app.models import TINY_CAN_DRAW, model_info
from app.page import Page, nearest_valid_frames
from app.path_editor import path_summary
from app.sessions import SessionRegistry
from app.ui import example_prompts
from fantasy_world.camera import PRESETS, CameraPath, save_camera_file
from fantasy_world.data.captions import _ROOM_LIGHT, _SETTING_PHRASES, _SKY_PHRASES, SHAPE_WORDS
from fantasy_world.data.palette import COLOUR_NAMES
from fantasy_world.model_folder import CONFIG_FILE, FOLDER_FORMAT, FOLDER_VERSION

REPO = Path(__file__).resolve().parents[1]


def req(name: str = "a") -> SimpleNamespace:
    return SimpleNamespace(session_hash=name)


def _our_folder(root: Path, name: str, image_input: bool) -> Path:
    folder = root / name
    folder.mkdir()
    meta = {
        "format": FOLDER_FORMAT,
        "version": FOLDER_VERSION,
        "name": name,
        "model": {"dit": {"image_input": image_input}},
        "vae": {},
        "defaults": {"frames": 33, "height": 64, "width": 96, "steps": 4, "guidance": 3.0},
    }
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    return folder


@pytest.fixture()
def studio(tmp_path):
    i2v = _our_folder(tmp_path, "my-i2v", image_input=True)
    t2v = _our_folder(tmp_path, "my-t2v", image_input=False)
    st = Studio(
        SessionRegistry(tmp_path / "sessions", max_sessions=3),
        models=["tiny", str(i2v), str(t2v)],
        upload_roots=[tmp_path],
    )
    yield st
    st.registry.close_all()


def test_model_picker_says_what_each_model_is(studio):
    tiny = model_info("tiny")
    assert "synthetic" in tiny.label and not tiny.image_input
    assert tiny.note == TINY_CAN_DRAW and "README" in tiny.note and "\n" not in tiny.note
    for shape in ("balls", "boxes", "cylinders", "cones"):
        assert shape in tiny.note
    i2v = model_info(studio.models[1])
    assert i2v.image_input and "image-to-world" in i2v.label and i2v.defaults.frames == 33
    assert not model_info(studio.models[2]).image_input
    official_dir = Path(studio.models[1]).parent / "official"
    official_dir.mkdir()
    (official_dir / "model.pth").write_bytes(b"")  # the official layout: listed, described, not loaded
    official = model_info(str(official_dir))
    assert official.image_input and "I2V" in official.label


def test_ranges_come_from_the_model_and_device():
    tiny = model_info("tiny")
    cap = tiny.limits.max_pixels
    assert cap in (tiny.defaults.max_pixels_cpu, tiny.defaults.max_pixels_cuda)
    assert f"{cap:,}" in tiny.ranges()["size"]
    assert tiny.max_side * tiny.limits.min_side <= cap  # the widest offered size fits the cap


def test_model_change_shows_the_image_box_only_for_image_models_and_says_what_changed(studio):
    page = Page(studio)
    out = page.on_model_change(studio.models[1], None, request=req())
    image, note, frames, *_, status = out
    assert image["visible"] is True and "image-to-world" in note
    assert frames["value"] == 33 and "33 frames" in status and "fw-error" not in status
    assert studio.registry.get("a").editor.path.settings.num_frames == 33
    out = page.on_model_change("tiny", "/tmp/some.png", request=req())
    assert out[0]["visible"] is False and out[0]["value"] is None
    assert "start image removed" in out[-1]
    bad = page.on_model_change("/etc", None, request=req())
    assert "fw-error" in bad[-1] and "not offered" in bad[-1]


def test_loaded_path_sets_frames_and_says_so(studio, tmp_path):
    page = Page(studio)
    file81 = save_camera_file(
        CameraPath.preset("arc", num_frames=81).sample(81), tmp_path / "long.txt", "re10k"
    )
    status, frames, _box = page.on_path_upload(str(file81), "tiny", request=req())
    assert frames["value"] == 81 and "Frames set to 81" in status and "81 frames" in status
    assert studio.registry.get("a").editor.path.settings.num_frames == 81
    file30 = save_camera_file(
        CameraPath.preset("arc", num_frames=30).sample(30), tmp_path / "odd.txt", "re10k"
    )
    status, frames, _box = page.on_path_upload(str(file30), "tiny", request=req())
    assert frames["value"] == 29 and "fw-warn" in status and "resampled to 29" in status
    assert studio.registry.get("a").editor.path.settings.num_frames == 29
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    status, frames, _box = page.on_path_upload(str(bad), "tiny", request=req())
    assert "fw-error" in status and frames == {"__type__": "update"}


def test_nearest_valid_frames():
    assert [nearest_valid_frames(n, 81) for n in (1, 4, 5, 30, 81, 1000)] == [1, 1, 5, 29, 81, 81]


@pytest.mark.parametrize("value", [1000, 6, 0, 5.5, -3])
def test_out_of_range_frames_are_refused_not_clamped(studio, value):
    page = Page(studio)
    before = studio.registry.open("a").editor.path.settings.num_frames
    status = page.on_frames(value, "tiny", request=req())
    assert "fw-error" in status and "frames" in status
    assert studio.registry.get("a").editor.path.settings.num_frames == before


@pytest.mark.parametrize(
    ("index", "value", "match"),
    [
        (6, 100_000, "size"),
        (5, 720, "size"),
        (7, 0, "steps"),
        (9, 1.5, "seed"),
        (4, 1000, "frames"),
        (8, 60.0, "guidance"),
        (11, 0, "max_points"),
    ],
)
def test_generate_refuses_instead_of_clamping(studio, index, value, match):
    args = ["a ball", "", None, "tiny", 5, 32, 48, 1, 1.0, 0, 0, 10_000]
    args[index] = value
    if index == 5:
        args[6] = 1280  # 720x1280: the old slider's corner, refused on this device's cap
    out = list(studio.generate(*args, req(), None))
    assert len(out) == 1 and "fw-error" in out[0][0] and match in out[0][0], out[0][0]
    if match == "size":
        assert str(model_info("tiny").limits.max_pixels) in out[0][0]


def test_a_preset_rebuilds_for_fewer_frames_so_it_never_has_more_keyframes(studio):
    page = Page(studio)
    studio.apply_preset("orbit", 33, request=req())
    assert len(studio.registry.get("a").editor.path) == 8
    assert "fw-error" not in page.on_frames(5, "tiny", request=req())
    path = studio.registry.get("a").editor.path
    assert path.preset_name == "orbit" and len(path) <= 5 and path.settings.num_frames == 5


def test_second_generate_during_a_run_says_already_generating(studio):
    first = studio.generate("a ball", "", None, "tiny", 5, 32, 48, 1, 1.0, 0, 0, 10_000, req(), None)
    next(first)  # running now (holding its place in the queue)
    second = list(studio.generate("a ball", "", None, "tiny", 5, 32, 48, 1, 1.0, 0, 0, 10_000, req(), None))
    assert len(second) == 1 and "Already generating" in second[0][0]
    first.close()  # the first run's cleanup frees the session
    assert not studio.is_generating(req())
    assert "Nothing is generating" in studio.cancel(request=req())


def test_path_tick_reports_viewer_edits(studio):
    page = Page(studio)
    s = studio.registry.open("a")
    summary, version = page.path_tick(-1, request=req())
    assert path_summary(s.editor.path) in summary and version == s.editor.version
    assert page.path_tick(version, request=req())[0] == {"__type__": "update"}  # nothing new
    s.editor.add_keyframe_from_view(np.eye(4))  # an edit made in the 3-D view
    summary, version2 = page.path_tick(version, request=req())
    assert version2 == s.editor.version and f"{len(s.editor.path)} keyframes" in summary
    assert path_summary(s.editor.path) in s.editor.gui_summary.content


def test_example_prompts_use_only_what_tiny_can_draw():
    words = {w for group in SHAPE_WORDS.values() for w in group} | set(COLOUR_NAMES)
    words |= {w + "s" for w in words} | {"boxes", "tori"}
    for phrases in (*_SETTING_PHRASES.values(), *_SKY_PHRASES.values(), *_ROOM_LIGHT.values()):
        for phrase in phrases:
            words |= set(re.findall(r"[a-z]+", phrase))
    words |= {"a", "an", "and", "two", "three", "four", "small", "medium", "large", "tall", "beside", "next"}
    words |= {"to", "the", "left", "right", "of", "on", "top", "in", "front", "behind", "under", "walls"}
    examples = example_prompts()
    assert len(examples) >= 4
    for prompt, preset in examples:
        assert preset in PRESETS
        unknown = set(re.findall(r"[a-z]+", prompt.lower())) - words
        assert not unknown, f"{prompt!r}: {unknown} is not in the bundled model's vocabulary"


def test_one_spelling_of_preset_names_in_readme_and_cli():
    readme = (REPO / "README.md").read_text()
    cli = (REPO / "fantasy_world" / "cli.py").read_text()
    for name in PRESETS:
        assert f"`{name}`" in readme, name
        hyphen = name.replace("_", "-")
        if hyphen != name:
            assert f"{hyphen}," not in cli and f"{hyphen}/" not in readme
    assert CameraPath.preset("dolly-in").preset_name == "dolly_in"  # the other spelling is an alias


def test_a_typed_preset_value_out_of_range_is_refused_and_the_slider_put_back(studio):
    page = Page(studio)
    page.on_preset_change("orbit", 17, request=req())
    out = page.on_preset_param("orbit", 17, 99.0, 360.0, 0.0, 60.0, request=req())
    *sliders, status = out
    assert "fw-error" in status and "radius" in status and "99" in status
    assert sliders[0]["value"] == 1.0  # back to what the path has, not clamped to the slider's end
    assert studio.registry.get("a").editor.path.preset_params["radius"] == 1.0
    ok = page.on_preset_param("orbit", 17, 2.0, 360.0, 0.0, 60.0, request=req())
    assert "fw-error" not in ok[-1] and studio.registry.get("a").editor.path.preset_params["radius"] == 2.0
    bad_frames = page.on_preset_change("pan", None, request=req())
    assert "fw-error" in bad_frames[-1] and "frames" in bad_frames[-1]
