"""Camera file formats: round trips, conventions (same pixel through every format), real files, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_camera_support import (
    REPO,
    WORLDSCORE_EXAMPLE_NAME,
    point_in_front,
    project,
    trajectories,
    worldscore_example_path,
)

from bench.camera_examples import EXAMPLES, example_path
from fantasy_world.camera import (
    CameraPath,
    CameraTrajectory,
    detect_format,
    load_camera_file,
    save_camera_file,
)
from fantasy_world.camera.formats import dumps_camera, parse_camera_text
from fantasy_world.errors import CameraFormatError

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ASSETS = REPO / "assets" / "cameras"


def _roundtrip(traj: CameraTrajectory, fmt: str, tmp_path: Path, suffix: str) -> CameraTrajectory:
    out = save_camera_file(traj, tmp_path / f"cams_{fmt}{suffix}", format=fmt)
    assert detect_format(out.read_text(), str(out)) == fmt
    return load_camera_file(out)


# ------------------------------------------------------------------------------------- round trips
@FAST
@given(traj=trajectories())
def test_worldscore_roundtrip_is_exact(traj: CameraTrajectory, tmp_path: Path) -> None:
    back = _roundtrip(traj, "worldscore", tmp_path, ".json")
    np.testing.assert_allclose(back.c2w, traj.c2w, atol=1e-12, rtol=0)
    assert np.array_equal(back.intrinsics, traj.intrinsics)
    assert (back.width, back.height, back.fps) == (traj.width, traj.height, traj.fps)


@FAST
@given(traj=trajectories())
def test_re10k_roundtrip(traj: CameraTrajectory, tmp_path: Path) -> None:
    back = _roundtrip(traj, "re10k", tmp_path, ".txt")
    np.testing.assert_allclose(back.c2w, traj.c2w, atol=1e-6, rtol=0)
    # normalised intrinsics times the recorded width / height give the pixels back to rounding
    np.testing.assert_allclose(back.intrinsics, traj.intrinsics, rtol=1e-14, atol=1e-12)
    assert (back.width, back.height) == (traj.width, traj.height)
    assert back.fps == traj.fps


@FAST
@given(traj=trajectories(centred_square=True))
def test_nerfstudio_roundtrip(traj: CameraTrajectory, tmp_path: Path) -> None:
    back = _roundtrip(traj, "nerfstudio", tmp_path, ".json")
    np.testing.assert_allclose(back.c2w, traj.c2w, atol=1e-9, rtol=0)
    np.testing.assert_allclose(back.intrinsics, traj.intrinsics, rtol=1e-10, atol=1e-9)
    assert (back.width, back.height) == (traj.width, traj.height)


@FAST
@given(traj=trajectories(centred_square=True))
def test_native_roundtrip_through_keyframes(traj: CameraTrajectory, tmp_path: Path) -> None:
    out = save_camera_file(traj, tmp_path / "path.json", format="native")
    path = CameraPath.load(out)
    assert len(path) == len(traj)
    back = path.sample(len(traj))
    np.testing.assert_allclose(back.c2w, traj.c2w, atol=1e-6, rtol=0)
    np.testing.assert_allclose(back.intrinsics, traj.intrinsics, rtol=1e-10, atol=1e-9)


def test_native_path_roundtrip_keeps_keyframes_settings_and_preset(tmp_path: Path) -> None:
    path = CameraPath.preset("arc", num_frames=21, angle=75.0, radius=1.5)
    path.settings.tension = 0.25
    path.settings.loop = True
    path.settings.fps = 24.0
    out = path.save(tmp_path / "arc.json")
    back = CameraPath.load(out)
    assert back.preset_name == "arc" and back.preset_params["angle"] == 75.0
    assert back.settings.num_frames == 21 and back.settings.loop and back.settings.tension == 0.25
    assert back.settings.fps == 24.0
    for a, b in zip(path.keyframes, back.keyframes):
        assert np.array_equal(a.c2w, b.c2w) and a.fov_y_deg == b.fov_y_deg and a.time == b.time
    np.testing.assert_allclose(back.sample().c2w, path.sample().c2w, atol=1e-12)


# ------------------------------------------------------------------------- conventions per format
def _raw_pixels(fmt: str, text: str, point: np.ndarray, i: int) -> np.ndarray:
    """Project through the file's own numbers with the format's documented convention."""
    if fmt == "re10k":
        line = [ln for ln in text.splitlines() if ln and not ln.startswith("#")][i]
        vals = np.array([float(v) for v in line.split()])
        header = dict(kv.split("=") for kv in text.splitlines()[0].split() if "=" in kv)
        w, h = float(header["width"]), float(header["height"])
        w2c = vals[7:].reshape(3, 4)
        cam = w2c[:, :3] @ point + w2c[:, 3]
        return np.array(
            [vals[1] * w * cam[0] / cam[2] + vals[3] * w, vals[2] * h * cam[1] / cam[2] + vals[4] * h]
        )
    data = json.loads(text)
    if fmt == "worldscore":
        return project(np.array(data["cameras_interp"][i]), np.array(data["intrinsics"][i]), point)
    if fmt == "nerfstudio":
        entry = data["camera_path"][i]
        c2w_gl = np.array(entry["camera_to_world"]).reshape(4, 4)
        cam = c2w_gl[:3, :3].T @ (point - c2w_gl[:3, 3])  # x right, y up, z backward
        h, w = data["render_height"], data["render_width"]
        f = 0.5 * h / math.tan(math.radians(entry["fov"]) / 2)
        # nerfstudio's pixel grid has centres at +0.5, ours at integers
        return np.array([w / 2 + f * cam[0] / -cam[2] - 0.5, h / 2 - f * cam[1] / -cam[2] - 0.5])
    kf = data["keyframes"][i]
    h, w = data["settings"]["height"], data["settings"]["width"]
    f = 0.5 * h / math.tan(math.radians(kf["fov_y_deg"]) / 2)
    k = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    return project(np.array(kf["c2w"]), k, point)


@FAST
@given(traj=trajectories(centred_square=True), seed=st.integers(0, 2**31 - 1))
def test_world_point_lands_on_same_pixel_in_every_format(traj: CameraTrajectory, seed: int) -> None:
    rng = np.random.default_rng(seed)
    i = int(rng.integers(len(traj)))
    point = point_in_front(traj.c2w[i], rng)
    expected = project(traj.c2w[i], traj.intrinsics[i], point)
    for fmt in ("worldscore", "re10k", "nerfstudio", "native"):
        text = dumps_camera(traj, fmt)
        np.testing.assert_allclose(_raw_pixels(fmt, text, point, i), expected, atol=1e-5, err_msg=fmt)
        back = parse_camera_text(text, f"x.{fmt}")
        back = back.sample(len(traj)) if isinstance(back, CameraPath) else back
        np.testing.assert_allclose(project(back.c2w[i], back.intrinsics[i], point), expected, atol=1e-5)


# ---------------------------------------------------------------------------------- real files
def test_worldscore_reference_example_is_forward_dolly() -> None:
    traj = load_camera_file(worldscore_example_path())
    assert len(traj) == 81
    np.testing.assert_allclose(traj.c2w[-1, :3, 3], [0.0, 0.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(traj.c2w[:, :3, :3], np.broadcast_to(np.eye(3), (81, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(np.diff(traj.c2w[:, 2, 3]), 0.0125, atol=1e-6)  # file holds float32 values
    # official reading: focal 500 px, principal point (W-1)/2, (H-1)/2 at 592x336
    np.testing.assert_allclose(traj.intrinsics[0], [[500, 0, 295.5], [0, 500, 167.5], [0, 0, 1]])
    other = load_camera_file(worldscore_example_path(), width=832, height=480)
    assert other.intrinsics[0, 0, 2] == 415.5 and other.intrinsics[0, 0, 0] == 500


def test_bundled_example_copy_matches_reference() -> None:
    bundled = ASSETS / "worldscore_dolly_example.json"
    reference = REPO / "tests" / "fixtures" / WORLDSCORE_EXAMPLE_NAME  # the official WorldScore example
    assert json.loads(bundled.read_text()) == json.loads(reference.read_text())


@pytest.mark.parametrize("file_name", sorted(EXAMPLES))
def test_assets_match_generator(file_name: str) -> None:
    _, _, fmt = EXAMPLES[file_name]
    text = (ASSETS / file_name).read_text()
    assert detect_format(text, file_name) == fmt
    fresh = example_path(file_name).sample()
    loaded = load_camera_file(ASSETS / file_name)
    assert len(loaded) == len(fresh)
    np.testing.assert_allclose(loaded.c2w, fresh.c2w, atol=1e-9)
    np.testing.assert_allclose(loaded.intrinsics, fresh.intrinsics, rtol=1e-9)


def test_raw_re10k_with_url_line_and_no_header(tmp_path: Path) -> None:
    lines = ["https://www.youtube.com/watch?v=abcdefghijk"]
    for i, z in enumerate([0.0, -0.1, -0.2]):
        lines.append(f"{i * 33366} 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 {z}")
    f = tmp_path / "clip.txt"
    f.write_text("\n".join(lines) + "\n")
    traj = load_camera_file(f, width=640, height=360)
    assert len(traj) == 3
    np.testing.assert_allclose(traj.c2w[:, 2, 3], [0.0, 0.1, 0.2])  # w2c t_z=-z  ->  camera at +z
    np.testing.assert_allclose(traj.intrinsics[0], [[320, 0, 320], [0, 324, 180], [0, 0, 1]])
    np.testing.assert_allclose(traj.timestamps, [0, 33366, 66732])


# -------------------------------------------------------------------------------------- errors
def _write(tmp_path: Path, name: str, text: str) -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


def _ws(poses: list, **extra: object) -> str:
    return json.dumps({"focal_length": 500, "cameras_interp": poses, **extra})


EYE = np.eye(4).tolist()


@pytest.mark.parametrize(
    ("name", "text", "needles"),
    [
        ("bad.json", '{"cameras_interp": [\n  [1, 2,]\n]}', ["line 2", "invalid JSON"]),
        ("nan.json", '{"cameras_interp": [[[NaN, 0, 0, 0]]]}', ["NaN", "finite"]),
        ("short.json", _ws([EYE, [[1, 0, 0], [0, 1, 0], [0, 0, 1]]]), ["cameras_interp[1]", "4x4"]),
        ("scaled.json", _ws([EYE, (np.diag([1.1, 1, 1, 1])).tolist()]), ["cameras_interp[1]", "orthonormal"]),
        ("mirror.json", _ws([EYE, (np.diag([-1.0, 1, 1, 1])).tolist()]), ["cameras_interp[1]", "determinant"]),
        ("row.json", _ws([EYE, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]]), ["bottom row"]),
        ("focal.json", _ws([EYE, EYE], focal_length=-3), ["focal_length", "positive"]),
        ("string.json", _ws([EYE, [["1", 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]]), ["'1'"]),
        ("keys.json", '{"poses": []}', ["match no camera format"]),
        ("list.json", "[1, 2]", ["expected a JSON object"]),
        ("empty.txt", "  \n", ["empty"]),
        ("count.txt", "0 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1\n", ["line 1", "18 values", "19"]),
        ("word.txt", "# c\n0 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 x 0\n", ["line 2", "'x'"]),
        ("inf.txt", "0 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 inf\n", ["line 1", "finite"]),
        ("neg.txt", "0 -0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n", ["line 1", "positive"]),
        ("rot.txt", "0 0.5 0.9 0.5 0.5 0 0 2 0 0 0 0 1 0 0 0 0 1 0\n", ["line 1", "orthonormal"]),
        ("ns.json", json.dumps({"camera_path": [{"camera_to_world": [1] * 12, "fov": 50}]}), ["camera_path[0]", "16"]),
        ("fov.json", json.dumps({"camera_path": [{"camera_to_world": np.eye(4).ravel().tolist(), "fov": 0}]}), ["fov"]),
        ("ver.json", json.dumps({"format": "fantasyworld-camera-path", "version": 2, "keyframes": []}), ["newer", "2"]),
        ("one.json", json.dumps({"format": "fantasyworld-camera-path", "version": 1, "keyframes": [{"c2w": EYE}]}),
         ["1 keyframes", "2 to"]),
        ("fmt.json", json.dumps({"format": "something-else"}), ["format=", "fantasyworld-camera-path"]),
    ],
)  # fmt: skip
def test_bad_files_raise_one_line_camera_format_error(
    tmp_path: Path, name: str, text: str, needles: list
) -> None:
    f = _write(tmp_path, name, text)
    with pytest.raises(CameraFormatError) as info:
        load_camera_file(f)
    msg = str(info.value)
    assert "\n" not in msg and name in msg
    for needle in needles:
        assert needle in msg, msg


def test_re10k_pixel_intrinsics_are_refused_clearly(tmp_path: Path) -> None:
    """The seed's docs wrote pixel intrinsics into 19-value files; that must not load silently."""
    f = _write(tmp_path, "pix.txt", "0 500.0 500.0 320.0 240.0 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n" * 2)
    with pytest.raises(CameraFormatError, match="look like pixels"):
        load_camera_file(f)


def test_worldscore_bundle_layout_with_image_size(tmp_path: Path) -> None:
    """cameras.json as the output bundle writes it: image_size object, per-frame intrinsics."""
    k = [[[400.0, 0, 100.0], [0, 410.0, 60.0], [0, 0, 1]]] * 2
    doc = {"focal_length": 400.0, "scale": 1, "convention": "opencv_c2w", "cameras": [EYE, EYE],
           "cameras_interp": [EYE, EYE], "intrinsics": k, "image_size": {"width": 208, "height": 120}}  # fmt: skip
    traj = load_camera_file(_write(tmp_path, "cameras.json", json.dumps(doc)))
    assert (traj.width, traj.height) == (208, 120)
    np.testing.assert_array_equal(traj.intrinsics[1], k[1])
    resized = load_camera_file(tmp_path / "cameras.json", width=416, height=240)
    np.testing.assert_allclose(resized.intrinsics[0], [[800, 0, 200.5], [0, 820, 120.5], [0, 0, 1]])


def test_single_frame_needs_permission(tmp_path: Path) -> None:
    f = _write(tmp_path, "one.json", _ws([EYE]))
    with pytest.raises(CameraFormatError, match="expected at least 2"):
        load_camera_file(f)
    assert len(load_camera_file(f, allow_single_frame=True)) == 1


def test_too_many_frames_and_too_large_files(tmp_path: Path) -> None:
    line = "0 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n"
    with pytest.raises(CameraFormatError, match="more than 10000 cameras"):
        load_camera_file(_write(tmp_path, "many.txt", line * 10_001))
    big = tmp_path / "big.json"
    with big.open("wb") as fh:
        fh.truncate(21 * 1024 * 1024)
    with pytest.raises(CameraFormatError, match="at most 20 MiB"):
        load_camera_file(big)
    with pytest.raises(CameraFormatError, match="cannot be read"):
        load_camera_file(tmp_path / "missing.json")


def test_non_utf8_and_binary_rejected(tmp_path: Path) -> None:
    f = tmp_path / "bin.txt"
    f.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(CameraFormatError, match="not UTF-8"):
        load_camera_file(f)


def test_save_infers_format_from_suffix(tmp_path: Path) -> None:
    path = CameraPath.preset("dolly_in", num_frames=9)
    assert detect_format(save_camera_file(path, tmp_path / "a.json").read_text(), "a.json") == "native"
    assert (
        detect_format(save_camera_file(path.sample(), tmp_path / "b.json").read_text(), "b.json")
        == "worldscore"
    )
    assert detect_format(save_camera_file(path, tmp_path / "c.txt").read_text(), "c.txt") == "re10k"
    with pytest.raises(CameraFormatError, match="cannot tell the format"):
        save_camera_file(path, tmp_path / "d.cam")
    with pytest.raises(CameraFormatError, match="unknown"):
        save_camera_file(path, tmp_path / "e.json", format="colmap")
