"""UI callbacks without a browser: presets, path files, exports, re-open, generation with the tiny model."""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from app.callbacks import EXPORT_FORMATS, MAX_PRESET_PARAMS, Studio
from app.sessions import SessionRegistry
from bench.harness.synthetic_world import synthetic_world
from fantasy_world.camera import PRESETS, CameraPath, read_camera_bytes
from fantasy_world.geometry import write_bundle

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "cameras"


@pytest.fixture()
def studio(tmp_path):
    # Uploads are only read from these folders (the real app: Gradio's upload cache and session folders).
    st = Studio(SessionRegistry(tmp_path / "sessions", max_sessions=3), upload_roots=[ASSETS, tmp_path])
    yield st
    st.registry.close_all()


def req(name: str = "a") -> SimpleNamespace:
    return SimpleNamespace(session_hash=name)


def test_load_gives_each_session_its_own_viewer_and_unload_cleans_up(studio):
    html_a, html_b = studio.on_load(req("a")), studio.on_load(req("b"))
    sa, sb = studio.registry.get("a"), studio.registry.get("b")
    assert sa.viewer_url in html_a and sb.viewer_url in html_b and sa.token != sb.token
    assert sa.port != sb.port and sa.workdir != sb.workdir
    workdir = sa.workdir
    studio.on_unload(req("a"))
    assert studio.registry.get("a") is None and not workdir.exists()
    studio.on_load(req("c"))
    studio.on_load(req("d"))
    assert "open sessions" in studio.on_load(req("e"))  # the cap of 3 holds


def test_preset_change_updates_sliders_and_path(studio):
    out = studio.on_preset_change("pan", 9, request=req())
    assert len(out) == MAX_PRESET_PARAMS + 1
    assert out[0]["visible"] and out[0]["value"] == PRESETS["pan"].params[0].default
    assert not out[-2]["visible"]
    path = studio.registry.get("a").editor.path
    assert path.preset_name == "pan" and path.settings.num_frames == 9
    status = studio.apply_preset("orbit", 13, 2.0, 90.0, 0.0, 50.0, request=req())
    path = studio.registry.get("a").editor.path
    assert "orbit" in status and path.preset_params["radius"] == 2.0 and path.preset_params["angle"] == 90.0
    bad = studio.apply_preset("orbit", 13, 99.0, 90.0, 0.0, 50.0, request=req())
    assert "fw-error" in bad and "radius" in bad
    assert studio.registry.get("a").editor.path.preset_params["radius"] == 2.0  # unchanged


@pytest.mark.parametrize("name", sorted(p.name for p in ASSETS.iterdir()))
def test_upload_every_example_camera_file(studio, name):
    status = studio.upload_path(str(ASSETS / name), request=req())
    assert "fw-error" not in status, status
    assert len(studio.registry.get("a").editor.path) >= 2


def test_malformed_path_file_gives_one_line_error_and_keeps_the_path(studio, tmp_path):
    before = studio.registry.open("a").editor.path
    bad = tmp_path / "broken.json"
    bad.write_text('{"keyframes": [{"c2w": "not a matrix"}]')
    status = studio.upload_path(str(bad), request=req())
    assert "fw-error" in status and "broken.json" in status
    assert studio.registry.get("a").editor.path is before


@pytest.mark.parametrize("fmt", list(EXPORT_FORMATS))
def test_export_path_round_trips(studio, fmt):
    studio.apply_preset("arc", 9, 1.0, 60.0, 0.0, 60.0, request=req())
    file, status = studio.export_path(fmt, request=req())
    assert file is not None and "fw-error" not in status
    loaded = read_camera_bytes(Path(file).read_bytes(), Path(file).name)
    want = studio.registry.get("a").editor.path.sample()
    got = loaded.sample() if isinstance(loaded, CameraPath) else loaded
    assert len(got) == len(want)
    np.testing.assert_allclose(got.c2w[:, :3, 3], want.c2w[:, :3, 3], atol=1e-3)


def _drain(gen):
    return list(gen)


def test_reopen_npz_and_zip_bundle_without_model(studio, tmp_path):
    world = synthetic_world(num_frames=5, height=32, width=48)
    files = write_bundle(world, tmp_path / "bundle")
    for upload in (files["world.npz"], tmp_path / "bundle.zip"):
        if upload.suffix == ".zip":
            with zipfile.ZipFile(upload, "w") as zf:
                for name in ("world.npz", "meta.json"):
                    zf.write(tmp_path / "bundle" / name, f"bundle/{name}")
        out = _drain(studio.reopen(str(upload), 50_000, request=req()))
        status, video, depth, downloads = out[-1]
        assert "fw-ok" in status, status
        assert Path(video).stat().st_size > 0 and Path(depth).stat().st_size > 0
        names = {Path(f).name for f in downloads}
        assert {"points.ply", "scene.glb", "cameras.json", "world.npz", "colmap.zip"} <= names
        assert any(n.startswith("bundle_") and n.endswith(".zip") for n in names), names
        s = studio.registry.get("a")
        assert s.viewer.world is not None and len(s.viewer._frames) == 5
        assert s.timing.to_first_cloud_s < 1.0


def test_reopen_rejects_other_files(studio, tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    status = _drain(studio.reopen(str(junk), 50_000, request=req()))[-1][0]
    assert "fw-error" in status and "junk.zip" in status


def test_model_not_offered_by_the_picker_is_refused(studio, tmp_path):
    for model in (str(tmp_path / "nope"), "../../etc", "/etc", "tiny/../../x"):
        out = _drain(studio.generate("a ball", "", None, model, 5, 32, 48, 1, 1.0, 0, 0, 10_000, req(), None))
        assert "fw-error" in out[-1][0] and "not offered" in out[-1][0], out[-1][0]
    assert studio.pipelines.loaded_name is None  # nothing was loaded from those paths


def test_offered_model_folder_missing_a_file_names_it(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "model.pth").write_bytes(b"")  # looks like an official folder, but the Wan files are missing
    st = Studio(SessionRegistry(tmp_path / "s"), models=["tiny", str(folder)], upload_roots=[tmp_path])
    try:
        out = _drain(
            st.generate("a ball", "", None, str(folder), 5, 32, 48, 1, 1.0, 0, 0, 10_000, req(), None)
        )
    finally:
        st.registry.close_all()
    status = out[-1][0]
    assert "fw-error" in status and "my-model" in status and "\n" not in status
    assert any(word in status for word in ("missing", "not found", "expected")), status


@pytest.mark.slow
def test_generate_with_tiny_model_streams_steps_and_fills_outputs(studio):
    studio.on_preset_change("dolly_in", 5, request=req())
    out = _drain(
        studio.generate("a red ball", "", None, "tiny", 5, 32, 48, 2, 1.0, 0, 1, 20_000, req(), None)
    )
    statuses = [o[0] for o in out]
    assert any("step 1/2" in s for s in statuses) and any("step 2/2" in s for s in statuses)
    assert any("preview geometry" in s for s in statuses)
    status, video, depth, downloads = out[-1]
    assert "fw-ok" in status, status
    assert Path(video).name == "video.mp4" and Path(video).stat().st_size > 0
    assert Path(depth).name == "depth.mp4"
    assert any(Path(f).name == "bundle_a_red_ball_seed0.zip" for f in downloads), downloads
    s = studio.registry.get("a")
    assert len(s.viewer._frames) == 5 and s.viewer._preview is None


@pytest.mark.slow
def test_cancel_stops_generation(studio):
    gen = studio.generate("a red ball", "", None, "tiny", 5, 32, 48, 3, 1.0, 0, 0, 20_000, req(), None)
    next(gen)  # loading
    studio.cancel(request=req())  # set before the first step: the loop stops at step 1
    out = list(gen)
    assert "Cancelled" in out[-1][0]


@pytest.mark.parametrize(
    ("edit", "match"),
    [("time", "increasing times"), ("fov_y_deg", "field of view")],
)
def test_failed_path_file_keeps_the_previous_path(studio, tmp_path, edit, match):
    """Equal keyframe times or a 0.001° FoV: one-line refusal, no traceback, the old path stays usable."""
    import json

    from fantasy_world.camera import save_camera_file

    studio.apply_preset("pan", 9, request=req())
    before = studio.registry.get("a").editor.path
    source = tmp_path / "src.json"
    save_camera_file(CameraPath.preset("orbit", num_frames=9), source, format="native")
    data = json.loads(source.read_text())
    for kf in data["keyframes"]:
        kf[edit] = 0.5 if edit == "time" else 0.001
    bad = tmp_path / f"bad_{edit}.json"
    bad.write_text(json.dumps(data))
    status = studio.upload_path(str(bad), request=req())
    assert "fw-error" in status and match in status and str(tmp_path) not in status, status
    assert studio.registry.get("a").editor.path is before
    assert "fw-error" not in studio.set_frames(13, request=req())  # the old path still works


def test_end_image_is_refused_for_a_model_without_one(studio, tmp_path):
    from PIL import Image

    end = tmp_path / "end.png"
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(end)
    gen = studio.generate("a ball", "", None, "tiny", 5, 32, 48, 1, 1.0, 0, 0, 10_000, req(), None, str(end))
    out = _drain(gen)
    assert "fw-error" in out[-1][0] and "takes no end image" in out[-1][0], out[-1][0]
    assert studio.pipelines.loaded_name is None  # refused before any model loads
