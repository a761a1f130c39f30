"""Presets: N valid frames from the identity, moving the way their names say."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fantasy_world.camera import PRESETS, CameraPath, describe_presets
from fantasy_world.errors import InputError

N = 33


def _sample(name: str, **params: float):
    return CameraPath.preset(name, num_frames=N, **params).sample()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_valid_and_starts_at_identity(name: str) -> None:
    path = CameraPath.preset(name, num_frames=N)
    assert len(path) >= 2 and path.preset_name == name
    traj = path.sample()
    assert traj.c2w.shape == (N, 4, 4)
    rot = traj.c2w[:, :3, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (N, 3, 3)), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-9)
    np.testing.assert_allclose(traj.c2w[0], np.eye(4), atol=1e-9)
    assert traj.fov_y_deg[0] == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("name", "axis", "sign"),
    [
        ("dolly_in", 2, 1),
        ("dolly_out", 2, -1),
        ("truck_right", 0, 1),
        ("truck_left", 0, -1),
        ("pedestal_up", 1, -1),  # OpenCV: y points down
        ("pedestal_down", 1, 1),
    ],
)
def test_translation_presets_move_along_their_axis(name: str, axis: int, sign: int) -> None:
    traj = _sample(name, distance=0.8)
    pos = traj.positions
    assert pos[-1, axis] == pytest.approx(sign * 0.8)
    assert np.all(sign * np.diff(pos[:, axis]) > 0)
    np.testing.assert_allclose(np.delete(pos, axis, axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(traj.c2w[:, :3, :3], np.broadcast_to(np.eye(3), (N, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(traj.fov_y_deg, 60.0)


def _forward(traj) -> np.ndarray:
    return traj.c2w[:, :3, 2]  # OpenCV optical axis in world coordinates


@pytest.mark.parametrize(
    ("name", "axis_index", "look_index", "look_sign"), [("pan", 1, 0, 1), ("tilt", 0, 1, -1)]
)
def test_pan_and_tilt_rotate_about_one_axis_only(
    name: str, axis_index: int, look_index: int, look_sign: int
) -> None:
    traj = _sample(name, angle=25.0)
    rotvec = Rotation.from_matrix(traj.c2w[:, :3, :3]).as_rotvec()
    others = [i for i in range(3) if i != axis_index]
    np.testing.assert_allclose(rotvec[:, others], 0.0, atol=1e-9)
    assert np.degrees(rotvec[-1, axis_index]) == pytest.approx(25.0)
    np.testing.assert_allclose(traj.positions, 0.0, atol=1e-12)
    assert look_sign * _forward(traj)[-1, look_index] > 0.4  # pan right looks to +x, tilt up looks to -y
    left = _sample(name, angle=-25.0)
    assert look_sign * _forward(left)[-1, look_index] < -0.4


def test_zoom_changes_fov_only() -> None:
    traj = _sample("zoom", fov=70.0, end_fov=30.0)
    np.testing.assert_allclose(traj.c2w, np.broadcast_to(np.eye(4), (N, 4, 4)), atol=1e-12)
    assert traj.fov_y_deg[0] == pytest.approx(70.0) and traj.fov_y_deg[-1] == pytest.approx(30.0)
    assert np.all(np.diff(traj.fov_y_deg) < 0)


def _distance_to_axis(traj, target: np.ndarray) -> np.ndarray:
    rel = target[None] - traj.positions
    fwd = _forward(traj)
    return np.linalg.norm(rel - np.sum(rel * fwd, axis=1, keepdims=True) * fwd, axis=1)


def test_orbit_returns_to_start_and_faces_centre() -> None:
    traj = _sample("orbit", radius=1.5)
    np.testing.assert_allclose(traj.c2w[-1], traj.c2w[0], atol=1e-9)
    target = np.array([0.0, 0.0, 1.5])
    np.testing.assert_allclose(np.linalg.norm(traj.positions - target, axis=1), 1.5, rtol=2e-3)
    assert np.max(_distance_to_axis(traj, target)) < 0.01
    np.testing.assert_allclose(traj.positions[N // 2], [0.0, 0.0, 3.0], atol=1e-6)  # opposite side at 180°
    assert traj.positions[4, 0] > 0  # positive angle moves right first


def test_arc_ends_on_the_circle() -> None:
    traj = _sample("arc", radius=1.0, angle=-60.0, height=0.2)
    end = traj.positions[-1]
    np.testing.assert_allclose(end, [-np.sin(np.radians(60)), -0.2, 1 - np.cos(np.radians(60))], atol=1e-9)
    assert np.all(np.diff(traj.positions[:, 1]) < 0)  # rising (-y) throughout


def test_spiral_advances_and_circles() -> None:
    traj = _sample("spiral", radius=0.3, turns=1.0, distance=0.6)
    pos = traj.positions
    assert pos[-1, 2] == pytest.approx(0.6) and np.all(np.diff(pos[:, 2]) > 0)
    assert np.min(pos[:, 0]) == pytest.approx(-0.6, abs=0.02)  # circle of radius 0.3 through the start
    np.testing.assert_allclose(pos[-1, :2], 0.0, atol=1e-9)


def test_look_around_stays_put_and_comes_back() -> None:
    traj = _sample("look_around", yaw=30.0, pitch=12.0)
    np.testing.assert_allclose(traj.positions, 0.0, atol=1e-12)
    np.testing.assert_allclose(traj.c2w[-1], np.eye(4), atol=1e-9)
    fwd = _forward(traj)
    assert np.min(fwd[:, 0]) < -0.45 and np.max(fwd[:, 0]) > 0.45 and np.min(fwd[:, 1]) < -0.15


def test_static_never_moves() -> None:
    np.testing.assert_allclose(_sample("static").c2w, np.broadcast_to(np.eye(4), (N, 4, 4)))


def test_names_are_normalised_and_params_checked() -> None:
    a = CameraPath.preset("Dolly-In", num_frames=9).sample()
    b = CameraPath.preset("dolly in", num_frames=9).sample()
    np.testing.assert_array_equal(a.c2w, b.c2w)
    with pytest.raises(InputError, match="unknown; expected one of"):
        CameraPath.preset("barrel_roll")
    with pytest.raises(InputError, match="unknown parameter 'radius'"):
        CameraPath.preset("dolly_in", radius=2.0)
    with pytest.raises(InputError, match="expected a number from"):
        CameraPath.preset("orbit", radius=-1.0)
    with pytest.raises(InputError, match="num_frames"):
        CameraPath.preset("orbit", num_frames=0)


def test_registry_is_slider_ready() -> None:
    described = json.loads(json.dumps(describe_presets()))
    names = {d["name"] for d in described}
    required = {"orbit", "arc", "dolly_in", "dolly_out", "truck_left", "truck_right", "pedestal_up"}
    required |= {"pedestal_down", "pan", "tilt", "zoom", "spiral", "look_around", "static"}
    assert required <= names
    for d in described:
        assert d["description"]
        for p in d["params"]:
            assert p["min"] <= p["default"] <= p["max"] and p["description"]


@pytest.mark.parametrize("frames", [5, 9, 17, 33, 81])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_sparse_keyframes_never_more_than_frames(name: str, frames: int) -> None:
    path = CameraPath.preset(name, num_frames=frames)
    assert 2 <= len(path) <= max(2, frames)
    assert len(path) <= 8, f"{name}: {len(path)} keyframes; presets give a few handles, not every frame"


def test_full_orbit_has_four_to_eight_keyframes_and_three_turn_spiral_stays_sparse() -> None:
    assert 4 <= len(CameraPath.preset("orbit", num_frames=17)) <= 8
    assert len(CameraPath.preset("spiral", num_frames=33, turns=3.0)) <= 13
    assert len(CameraPath.preset("spiral", num_frames=9, turns=3.0)) <= 9


def test_sparse_preset_samples_its_exact_move_until_edited() -> None:
    path = CameraPath.preset("orbit", num_frames=N, radius=1.5)
    exact = path.sample()
    angles = np.radians(360.0 * np.linspace(0.0, 1.0, N))
    circle = np.stack([1.5 * np.sin(angles), np.zeros(N), 1.5 - 1.5 * np.cos(angles)], axis=1)
    np.testing.assert_allclose(exact.positions, circle, atol=1e-9)
    copied = path.copy().sample()
    np.testing.assert_array_equal(copied.c2w, exact.c2w)
    path.update_keyframe(2, fov_y_deg=50.0)  # an edit: the spline through the keyframes takes over
    assert path.exact is None and path.preset_name is None
    edited = path.sample()
    assert not np.allclose(edited.fov_y_deg, exact.fov_y_deg)
    # The spline through the sparse handles stays close to the circle it came from.
    np.testing.assert_allclose(np.linalg.norm(edited.positions - [0.0, 0.0, 1.5], axis=1), 1.5, rtol=0.03)


def test_saved_preset_reloads_as_its_exact_move(tmp_path) -> None:
    path = CameraPath.preset("spiral", num_frames=N, turns=2.0)
    loaded = CameraPath.load(path.save(tmp_path / "spiral.json"))
    assert loaded.preset_name == "spiral" and loaded.exact is not None
    np.testing.assert_allclose(loaded.sample().c2w, path.sample().c2w, atol=1e-9)
    loaded.settings.loop = True  # a setting presets are not built with: the spline again
    assert not np.allclose(loaded.sample().c2w, path.sample().c2w, atol=1e-3)


def test_a_preset_path_with_its_exact_move_pickles() -> None:
    import pickle

    path = CameraPath.preset("orbit", num_frames=9, angle=180.0)
    again = pickle.loads(pickle.dumps(path))
    assert again.exact is not None
    np.testing.assert_array_equal(again.sample().c2w, path.sample().c2w)
