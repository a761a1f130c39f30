"""Depth → points: reprojection to the source pixels, known-plane geometry, torch/numpy agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from fantasy_world.camera.conventions import intrinsics_matrix
from fantasy_world.errors import InputError
from fantasy_world.geometry.unproject import (
    camera_to_world,
    depth_to_camera_points,
    depth_to_world_points,
    project_points,
)


def _random_pose(rng: np.random.Generator) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
    pose[:3, 3] = rng.normal(size=3) * 2
    return pose


def test_points_reproject_to_their_pixels() -> None:
    rng = np.random.default_rng(0)
    n, h, w = 3, 12, 17
    depth = rng.uniform(0.5, 10.0, size=(n, h, w))
    ks = np.stack([intrinsics_matrix(20 + 5 * i, 22 + 3 * i, 8.0 + i, 5.5 - i) for i in range(n)])
    poses = np.stack([_random_pose(rng) for _ in range(n)])
    world = depth_to_world_points(depth, ks, poses)
    assert world.shape == (n, h, w, 3)
    vv, uu = np.mgrid[0:h, 0:w]
    for i in range(n):
        uv, z = project_points(world[i].reshape(-1, 3), ks[i], poses[i])
        np.testing.assert_allclose(uv[:, 0], uu.reshape(-1), atol=1e-6)
        np.testing.assert_allclose(uv[:, 1], vv.reshape(-1), atol=1e-6)
        np.testing.assert_allclose(z, depth[i].reshape(-1), rtol=1e-9)


def test_plane_at_known_depth_under_known_pose() -> None:
    # Camera at (1, 2, 3) looking along world +x (yaw +90°): camera z → world x, camera x → world -z.
    h, w, d = 4, 6, 2.5
    k = intrinsics_matrix(10.0, 10.0, 2.5, 1.5)
    pose = np.eye(4)
    pose[:3, :3] = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]
    pose[:3, 3] = [1.0, 2.0, 3.0]
    world = depth_to_world_points(np.full((h, w), d), k, pose)
    vv, uu = np.mgrid[0:h, 0:w]
    x_cam = (uu - 2.5) / 10.0 * d
    y_cam = (vv - 1.5) / 10.0 * d
    np.testing.assert_allclose(world[..., 0], 1.0 + d, atol=1e-12)
    np.testing.assert_allclose(world[..., 1], 2.0 + y_cam, atol=1e-12)
    np.testing.assert_allclose(world[..., 2], 3.0 - x_cam, atol=1e-12)


def test_principal_pixel_lies_on_optical_axis() -> None:
    k = intrinsics_matrix(7.0, 9.0, 3.0, 2.0)
    cam = depth_to_camera_points(np.full((5, 7), 4.0), k)
    np.testing.assert_allclose(cam[2, 3], [0.0, 0.0, 4.0])
    np.testing.assert_allclose(cam[2, 4], [4.0 / 7.0, 0.0, 4.0])
    np.testing.assert_allclose(cam[3, 3], [0.0, 4.0 / 9.0, 4.0])


def test_torch_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 3, size=(2, 5, 8)).astype(np.float32)
    ks = np.stack([intrinsics_matrix(9, 11, 3.5, 2.0)] * 2).astype(np.float32)
    poses = np.stack([_random_pose(rng) for _ in range(2)]).astype(np.float32)
    ref = depth_to_world_points(depth, ks, poses)
    out = depth_to_world_points(torch.from_numpy(depth), torch.from_numpy(ks), torch.from_numpy(poses))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_shape_mismatches_raise_input_error() -> None:
    with pytest.raises(InputError, match="intrinsics"):
        depth_to_camera_points(np.ones((2, 4, 4)), np.eye(3)[None].repeat(3, axis=0))
    with pytest.raises(InputError, match="c2w"):
        camera_to_world(np.ones((2, 4, 4, 3)), np.eye(4)[None])
    with pytest.raises(InputError, match="points_world"):
        project_points(np.ones((4, 2)), np.eye(3), np.eye(4))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    fx=st.floats(5, 500),
    fy=st.floats(5, 500),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
)
def test_reprojection_property(seed: int, fx: float, fy: float, h: int, w: int) -> None:
    rng = np.random.default_rng(seed)
    k = intrinsics_matrix(fx, fy, rng.uniform(-2, w + 2), rng.uniform(-2, h + 2))
    pose = _random_pose(rng)
    depth = rng.uniform(0.1, 50, size=(h, w))
    world = depth_to_world_points(depth, k, pose)
    uv, z = project_points(world.reshape(-1, 3), k, pose)
    vv, uu = np.mgrid[0:h, 0:w]
    np.testing.assert_allclose(uv, np.stack([uu, vv], -1).reshape(-1, 2), atol=1e-6)
    np.testing.assert_allclose(z, depth.reshape(-1), rtol=1e-9)
