"""CameraPath: interpolation through keyframes, smoothness, no flips, constant speed, editing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation
from test_camera_support import rigid_poses

from fantasy_world.camera import CameraPath, CameraTrajectory, Keyframe, PathSettings
from fantasy_world.errors import CameraFormatError


def _pose(rot: np.ndarray | None = None, pos: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    out = np.eye(4)
    if rot is not None:
        out[:3, :3] = rot
    out[:3, 3] = pos
    return out


def _rot_y(deg: float) -> np.ndarray:
    return Rotation.from_euler("y", deg, degrees=True).as_matrix()


def _random_path(seed: int, count: int, timed: bool, loop: bool, tension: float) -> CameraPath:
    rng = np.random.default_rng(seed)
    kfs = []
    pos = np.zeros(3)
    clock = 0.0
    for _ in range(count):
        pos = pos + rng.normal(size=3) * rng.uniform(0.2, 2.0)
        rot = Rotation.from_rotvec(rng.normal(size=3) * 0.6).as_matrix()
        clock += float(rng.uniform(0.3, 2.0))
        time = clock if timed else None
        kfs.append(Keyframe(_pose(rot, tuple(pos)), float(rng.uniform(30, 90)), time))
    return CameraPath(kfs, PathSettings(num_frames=33, loop=loop, tension=tension))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    count=st.integers(2, 7),
    timed=st.booleans(),
    loop=st.booleans(),
    tension=st.sampled_from([0.0, 0.3, 0.8]),
)
def test_path_passes_through_every_keyframe(
    seed: int, count: int, timed: bool, loop: bool, tension: float
) -> None:
    path = _random_path(seed, count, timed, loop, tension)
    params = path.keyframe_params()
    assert params[0] == pytest.approx(0.0) and np.all(np.diff(params) > 0)
    c2w, fov = path.evaluate(params)
    for i, kf in enumerate(path.keyframes):
        np.testing.assert_allclose(c2w[i], kf.c2w, atol=1e-6)
        assert fov[i] == pytest.approx(kf.fov_y_deg, abs=1e-6)


def test_explicit_times_are_honoured() -> None:
    kfs = [
        Keyframe(_pose(), 60.0, time=0.0),
        Keyframe(_pose(_rot_y(20), (1.0, 0.0, 0.5)), 50.0, time=1.0),
        Keyframe(_pose(_rot_y(-10), (2.0, 0.5, 0.0)), 40.0, time=3.0),
    ]
    traj = CameraPath(kfs).sample(31)  # frames every 0.1 time units
    np.testing.assert_allclose(traj.c2w[10], kfs[1].c2w, atol=1e-9)
    np.testing.assert_allclose(traj.c2w[30], kfs[2].c2w, atol=1e-9)
    assert traj.fov_y_deg[10] == pytest.approx(50.0) and traj.fov_y_deg[30] == pytest.approx(40.0)


@pytest.mark.parametrize("timed", [False, True])
def test_position_is_c1_across_keyframes(timed: bool) -> None:
    path = _random_path(7, 6, timed=timed, loop=False, tension=0.0)
    params = path.keyframe_params()
    h = 1e-4
    for u in params[1:-1]:
        p = path.evaluate([u - h, u, u + h])[0][:, :3, 3]
        v_left, v_right = (p[1] - p[0]) / h, (p[2] - p[1]) / h
        assert np.linalg.norm(v_left - v_right) < 2e-2 * np.linalg.norm(v_left) + 1e-6


def test_linear_tension_would_be_caught_by_c1_check() -> None:
    """Sanity check of the check above: a corner (tension 1 keeps only straight segments) fails it."""
    kfs = [Keyframe(_pose(pos=(0, 0, 0))), Keyframe(_pose(pos=(1, 0, 0))), Keyframe(_pose(pos=(1, 0, 1)))]
    path = CameraPath(kfs, PathSettings(tension=1.0, constant_speed=False))
    u = path.keyframe_params()[1]
    p = path.evaluate([u - 1e-2, u, u + 1e-2])[0][:, :3, 3]
    assert np.linalg.norm((p[1] - p[0]) - (p[2] - p[1])) > 1e-3


@pytest.mark.parametrize("angles", [(0.0, 179.0), (0.0, 179.0, 358.0), (0.0, -179.0, -358.0, -537.0)])
def test_no_rotation_flip_between_far_apart_keyframes(angles: tuple[float, ...]) -> None:
    kfs = [Keyframe(_pose(_rot_y(a), (0.0, 0.0, 0.01 * i))) for i, a in enumerate(angles)]
    traj = CameraPath(kfs).sample(121)
    rots = Rotation.from_matrix(traj.c2w[:, :3, :3])
    steps = (rots[:-1].inv() * rots[1:]).as_rotvec()
    sign = np.sign(angles[-1] - angles[0])
    total = np.radians(abs(angles[-1] - angles[0]))
    # every step turns the same way about +y, and no step is a jump
    assert np.all(sign * steps[:, 1] > 0)
    assert np.max(np.abs(steps[:, [0, 2]])) < 1e-6
    assert np.max(np.linalg.norm(steps, axis=1)) < 2.0 * total / 120
    assert np.sum(np.linalg.norm(steps, axis=1)) == pytest.approx(total, rel=1e-6)


def test_constant_speed_gives_equal_steps() -> None:
    zs = [0.0, 0.1, 0.2, 1.5, 1.6, 3.0]
    straight = CameraPath([Keyframe(_pose(pos=(0.0, 0.0, z))) for z in zs])
    steps = np.linalg.norm(np.diff(straight.sample(61).positions, axis=0), axis=1)
    assert np.std(steps) / np.mean(steps) < 1e-3

    rng = np.random.default_rng(3)
    angles = np.sort(rng.uniform(0, 300, size=6))
    curve = [Keyframe(_pose(pos=(np.cos(np.radians(a)), 0.0, np.sin(np.radians(a))))) for a in [0.0, *angles]]
    even = CameraPath(curve).sample(101)
    steps = np.linalg.norm(np.diff(even.positions, axis=0), axis=1)
    assert np.std(steps) / np.mean(steps) < 1e-2
    uneven = CameraPath([k.copy() for k in curve], PathSettings(constant_speed=False)).sample(101)
    raw = np.linalg.norm(np.diff(uneven.positions, axis=0), axis=1)
    assert np.std(raw) / np.mean(raw) > 5 * np.std(steps) / np.mean(steps)


def test_pure_rotation_path_moves_evenly() -> None:
    path = CameraPath([Keyframe(_pose(_rot_y(a))) for a in (0.0, 5.0, 60.0)])
    rots = Rotation.from_matrix(path.sample(41).c2w[:, :3, :3])
    steps = (rots[:-1].inv() * rots[1:]).magnitude()
    assert np.std(steps) / np.mean(steps) < 1e-2


def test_loop_closes_without_repeating_the_start() -> None:
    kfs = [
        Keyframe(_pose(pos=(np.cos(a), 0.0, np.sin(a)))) for a in np.linspace(0, 2 * np.pi, 4, endpoint=False)
    ]
    path = CameraPath(kfs, PathSettings(loop=True, num_frames=40))
    pos = path.sample().positions
    assert not np.allclose(pos[-1], pos[0])
    steps = np.linalg.norm(np.diff(np.vstack([pos, pos[:1]]), axis=0), axis=1)  # wrap step included
    assert np.std(steps) / np.mean(steps) < 2e-2


def test_sample_builds_trajectory_from_fov() -> None:
    path = CameraPath([Keyframe(_pose(), 60.0), Keyframe(_pose(pos=(0, 0, 1)), 30.0)])
    traj = path.sample(5, width=64, height=48)
    assert isinstance(traj, CameraTrajectory)
    assert traj.c2w.shape == (5, 4, 4) and traj.intrinsics.shape == (5, 3, 3) and traj.c2w.dtype == np.float64
    assert traj.fov_y_deg[0] == pytest.approx(60.0) and traj.fov_y_deg[-1] == pytest.approx(30.0)
    assert traj.intrinsics[0, 1, 1] == pytest.approx(24.0 / np.tan(np.radians(30.0)))
    assert traj.intrinsics[0, 0, 2] == pytest.approx(31.5) and traj.intrinsics[0, 1, 2] == pytest.approx(23.5)
    np.testing.assert_allclose(traj.w2c @ traj.c2w, np.broadcast_to(np.eye(4), (5, 4, 4)), atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(first=rigid_poses(), second=rigid_poses())
def test_relative_to_first_makes_first_identity(first: np.ndarray, second: np.ndarray) -> None:
    traj = CameraTrajectory(np.stack([first, second]), np.diag([100.0, 100.0, 1.0]), 64, 64)
    rel = traj.relative_to_first()
    np.testing.assert_allclose(rel.c2w[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(rel.c2w[1], np.linalg.inv(first) @ second, atol=1e-9)


def test_editing_keyframes() -> None:
    path = CameraPath.preset("dolly_in", num_frames=9)
    assert path.preset_name == "dolly_in"
    idx = path.add_keyframe(_pose(pos=(0.0, 0.0, 1.0)), fov_y_deg=45.0)
    assert idx == 2 and len(path) == 3 and path.preset_name is None
    path.insert_keyframe(1, _pose(pos=(0.5, 0.0, 0.25)))
    assert path.keyframes[1].fov_y_deg == path.keyframes[2].fov_y_deg
    path.update_keyframe(1, c2w=_pose(pos=(-0.5, 0.0, 0.25)))
    assert path.keyframes[1].position[0] == -0.5
    path.update_keyframe(1, fov_y_deg=70.0)
    assert path.keyframes[1].fov_y_deg == 70.0 and path.keyframes[1].position[0] == -0.5
    path.move_keyframe(3, 0)
    assert path.keyframes[0].position[2] == 1.0
    path.reorder([1, 2, 3, 0])
    assert path.keyframes[-1].position[2] == 1.0
    removed = path.remove_keyframe(-1)
    assert removed.fov_y_deg == 45.0 and len(path) == 3
    assert path.sample(7).num_frames == 7

    with pytest.raises(CameraFormatError, match="index"):
        path.remove_keyframe(10)
    with pytest.raises(CameraFormatError, match="permutation"):
        path.reorder([0, 0, 1])
    with pytest.raises(CameraFormatError, match="orthonormal"):
        path.add_keyframe(np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(CameraFormatError, match="field of view"):
        path.update_keyframe(0, fov_y_deg=200.0)
    with pytest.raises(CameraFormatError, match="4x4"):
        path.add_keyframe([["a"]])
    assert len(path) == 3


def test_invalid_paths_and_frame_counts() -> None:
    with pytest.raises(CameraFormatError, match="at least 2"):
        CameraPath([Keyframe(_pose())]).sample(5)
    path = CameraPath.preset("pan")
    for bad in (0, 10_001, 2.5):
        with pytest.raises(CameraFormatError, match="num_frames"):
            path.sample(bad)
    with pytest.raises(CameraFormatError, match="increasing"):
        CameraPath([Keyframe(_pose(), time=1.0), Keyframe(_pose(pos=(1, 0, 0)), time=1.0)]).sample(3)
    with pytest.raises(CameraFormatError, match="tension"):
        PathSettings(tension=2.0)
    with pytest.raises(CameraFormatError, match="NaN"):
        Keyframe(np.full((4, 4), np.nan))


def test_duration_settings() -> None:
    s = PathSettings(num_frames=33, fps=16.0)
    assert s.duration == pytest.approx(33 / 16)
    s.set_duration(5.0)
    assert s.num_frames == 80
