"""Plücker ray maps (correct and official double-scaled) and scene-scale normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from test_camera_support import rigid_poses

from fantasy_world.camera import (
    CameraPath,
    CameraTrajectory,
    normalize_trajectory,
    plucker_rays,
    relative_to_first,
    scene_scale_from_depth,
)
from fantasy_world.camera.conventions import intrinsics_matrix
from fantasy_world.errors import InputError

H, W = 336, 592  # the official default size
K_OFFICIAL_JSON = intrinsics_matrix(500.0, 500.0, (W - 1) / 2, (H - 1) / 2)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@settings(max_examples=15, deadline=None)
@given(p0=rigid_poses(3.0), p1=rigid_poses(3.0), p2=rigid_poses(3.0))
def test_rays_are_unit_with_orthogonal_moments_in_first_frame(p0, p1, p2) -> None:
    c2w = np.stack([p0, p1, p2])
    k = intrinsics_matrix(40.0, 35.0, 15.5, 11.5)
    rays = plucker_rays(c2w, k, 24, 32)
    assert rays.shape == (3, 24, 32, 6) and rays.dtype == torch.float32
    m, d = rays[..., :3].double(), rays[..., 3:].double()
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(3, 24, 32, dtype=torch.float64), atol=1e-6, rtol=0)
    assert (m * d).sum(-1).abs().max() < 1e-5
    assert rays[0, ..., :3].abs().max() < 1e-6  # first camera sits at the origin of its own frame
    rel = relative_to_first(c2w)
    for i, (y, x) in [(1, (0, 0)), (2, (23, 31)), (1, (10, 20))]:
        d_ref = _unit(rel[i, :3, :3] @ np.array([(x - 15.5) / 40.0, (y - 11.5) / 35.0, 1.0]))
        m_ref = np.cross(rel[i, :3, 3], d_ref)
        np.testing.assert_allclose(rays[i, y, x].numpy(), np.r_[m_ref, d_ref], atol=2e-5)


def test_correct_variant_spans_the_image() -> None:
    rays = plucker_rays(np.eye(4)[None], K_OFFICIAL_JSON, H, W)
    d = rays[0, ..., 3:].numpy()
    # the figures quoted in the official report (§1.8) for a correct build at 336x592, focal 500
    np.testing.assert_allclose(d[0, 0], [-0.49, -0.28, 0.83], atol=0.01)
    np.testing.assert_allclose(d[-1, -1], [0.49, 0.28, 0.83], atol=0.01)
    # principal point at the pixel-grid centre: the centre of the image looks straight ahead
    centre = (d[H // 2 - 1, W // 2 - 1] + d[H // 2, W // 2]) / 2
    np.testing.assert_allclose(_unit(centre), [0.0, 0.0, 1.0], atol=1e-6)


def test_official_variant_is_nearly_constant_and_matches_its_formula() -> None:
    path = CameraPath.preset("orbit", num_frames=5)
    traj = path.sample(5, W, H)
    k = np.broadcast_to(K_OFFICIAL_JSON, (5, 3, 3))
    rays = plucker_rays(traj.c2w, k, H, W, official_double_scaled=True)
    d = rays[..., 3:].numpy()
    spread = np.max(np.abs(d - d[:, :1, :1]), axis=(1, 2))
    assert np.all(spread < 3e-3)  # every ray ≈ the top-left corner ray (§1.8)
    np.testing.assert_allclose(d[0, 0, 0], [-0.49, -0.28, 0.83], atol=0.01)
    # exact reproduction: pixel values treated as normalised, principal point W/2, H/2, centres at +0.5
    for y, x in [(0, 0), (200, 100), (H - 1, W - 1)]:
        ref = _unit(np.array([(x + 0.5 - W / 2 * W) / (500.0 * W), (y + 0.5 - H / 2 * H) / (500.0 * H), 1.0]))
        np.testing.assert_allclose(d[0, y, x], ref, atol=1e-6)
    correct = plucker_rays(traj.c2w, k, H, W)[..., 3:].numpy()
    assert np.max(np.abs(correct - correct[:, :1, :1])) > 0.9  # the correct variant really differs


def test_accepts_torch_and_numpy_alike_and_absolute_mode() -> None:
    traj = CameraPath.preset("arc", num_frames=4).sample(4, 20, 12)
    c2w = traj.c2w.copy()
    c2w[:, :3, 3] += [1.0, 2.0, 3.0]
    a = plucker_rays(c2w, traj.intrinsics, 12, 20, relative_to_first=False)
    b = plucker_rays(torch.from_numpy(c2w).float(), torch.from_numpy(traj.intrinsics).float(), 12, 20, False)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert a[0, ..., :3].abs().max() > 0.5  # absolute frame: camera 0 is not at the origin
    rel = plucker_rays(c2w, traj.intrinsics, 12, 20)
    torch.testing.assert_close(rel, plucker_rays(traj.c2w, traj.intrinsics, 12, 20), atol=1e-5, rtol=1e-5)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match=r"\[N, 4, 4\]"):
        plucker_rays(np.eye(4), K_OFFICIAL_JSON, 8, 8)
    with pytest.raises(InputError, match="intrinsics"):
        plucker_rays(np.eye(4)[None], np.eye(3)[None].repeat(2, 0), 8, 8)
    with pytest.raises(InputError, match="height"):
        plucker_rays(np.eye(4)[None], K_OFFICIAL_JSON, 0, 8)
    with pytest.raises(InputError, match="positive focal"):
        plucker_rays(np.eye(4)[None], np.diag([-1.0, 1.0, 1.0]), 8, 8)


# ---------------------------------------------------------------------------------- normalisation
def _equidistant_depth(distance: float, k: np.ndarray, h: int, w: int) -> np.ndarray:
    v, u = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    norm = np.sqrt(((u - k[0, 2]) / k[0, 0]) ** 2 + ((v - k[1, 2]) / k[1, 1]) ** 2 + 1.0)
    return distance / norm


def test_scene_scale_is_mean_distance_after_dropping_far_points() -> None:
    k = intrinsics_matrix(50.0, 50.0, 31.5, 23.5)
    depth = _equidistant_depth(2.5, k, 48, 64)
    assert scene_scale_from_depth(depth, k) == pytest.approx(2.5, rel=1e-12)
    rng = np.random.default_rng(0)
    far = rng.random(depth.shape) < 0.03
    depth[far] = 1e4  # sky / outliers beyond the 95% quantile are dropped
    assert scene_scale_from_depth(depth, k) == pytest.approx(2.5, rel=1e-12)
    assert scene_scale_from_depth(torch.from_numpy(depth)[None], torch.from_numpy(k)) == pytest.approx(2.5)
    # with no quantile cut the outliers count
    assert scene_scale_from_depth(depth, k, quantile=1.0) > 100
    # distinct distances: the result is the mean of the analytic distances up to their 95% quantile
    dist = 1.0 + 10.0 * rng.random((48, 64))
    graded = _equidistant_depth(1.0, k, 48, 64) * dist
    expected = np.mean(dist[dist <= np.quantile(dist, 0.95)])
    assert scene_scale_from_depth(graded, k) == pytest.approx(expected, rel=1e-12)
    assert expected < np.mean(dist)


def test_scene_scale_clamps_and_rejects_empty() -> None:
    k = intrinsics_matrix(10.0, 10.0, 3.5, 3.5)
    assert scene_scale_from_depth(np.full((8, 8), 1e-9), k) == 1e-6
    with pytest.raises(InputError, match="no finite positive"):
        scene_scale_from_depth(np.zeros((8, 8)), k)
    with pytest.raises(InputError, match="depth"):
        scene_scale_from_depth(np.zeros((2, 8, 8)), k)


def test_normalize_trajectory_is_relative_and_scaled() -> None:
    c2w = np.stack([np.eye(4), np.eye(4), np.eye(4)])
    c2w[:, :3, 3] = [[1.0, 1.0, 1.0], [1.0, 1.0, 3.0], [3.0, 1.0, 1.0]]
    traj = CameraTrajectory(c2w, intrinsics_matrix(10, 10, 4, 4), 9, 9)
    norm = normalize_trajectory(traj, 2.0)
    np.testing.assert_allclose(norm.positions, [[0, 0, 0], [0, 0, 1], [1, 0, 0]])
    with pytest.raises(InputError, match="scale"):
        normalize_trajectory(traj, 0.0)
