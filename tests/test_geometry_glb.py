"""scene.glb parses back as a trimesh Scene with the coloured cloud and one frustum per camera."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from bench.harness.synthetic_world import synthetic_world
from fantasy_world.geometry.glb import _FRUSTUM_EDGES, GLTF_FROM_WORLD, frustum_vertices, write_glb
from fantasy_world.geometry.pointcloud import PointFilter, world_point_cloud


def test_glb_has_points_and_frustums(tmp_path: Path) -> None:
    world = synthetic_world(num_frames=4)
    cloud = world_point_cloud(world, PointFilter(max_points=500))
    scale = 0.3
    path = write_glb(
        tmp_path / "scene.glb",
        cloud,
        world.intrinsics,
        world.cam_c2w,
        world.width,
        world.height,
        frustum_scale=scale,
    )
    scene = trimesh.load(path)
    assert isinstance(scene, trimesh.Scene)
    clouds = [g for g in scene.geometry.values() if isinstance(g, trimesh.PointCloud)]
    paths = {k: g for k, g in scene.geometry.items() if isinstance(g, trimesh.path.Path3D)}
    assert len(clouds) == 1 and len(paths) == world.num_frames
    pc = clouds[0]
    np.testing.assert_allclose(pc.vertices, cloud.points @ GLTF_FROM_WORLD[:3, :3].T, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(pc.colors)[:, :3], cloud.colors)
    for i in range(world.num_frames):
        frustum = paths[f"camera_{i:03d}"]
        # glTF LINES: vertex pairs, one per segment (trimesh re-reads them as one polyline entity).
        segments = np.asarray(frustum.vertices).reshape(-1, 2, 3)
        verts = frustum_vertices(world.intrinsics[i], world.cam_c2w[i], world.width, world.height, scale)
        expected = (verts @ GLTF_FROM_WORLD[:3, :3].T)[_FRUSTUM_EDGES]
        assert _segment_set(segments) == _segment_set(expected)  # order and direction may change


def _segment_set(segments: np.ndarray) -> set:
    """Unordered line segments as a comparable set (endpoints rounded to 1e-5)."""
    out = set()
    for a, b in np.round(segments, 5).tolist():
        out.add(tuple(sorted((tuple(a), tuple(b)))))
    return out


def test_frustum_corners_project_to_image_corners() -> None:
    world = synthetic_world(num_frames=1)
    k, pose = world.intrinsics[0], world.cam_c2w[0].astype(np.float64)
    verts = frustum_vertices(k, pose, world.width, world.height, scale=0.7)
    cam = (verts - pose[:3, 3]) @ pose[:3, :3]
    np.testing.assert_allclose(cam[0], 0, atol=1e-6)
    np.testing.assert_allclose(cam[1:5, 2], 0.7, atol=1e-6)
    uv = cam[1:5, :2] / cam[1:5, 2:] * [k[0, 0], k[1, 1]] + [k[0, 2], k[1, 2]]
    expected = [
        [-0.5, -0.5],
        [world.width - 0.5, -0.5],
        [world.width - 0.5, world.height - 0.5],
        [-0.5, world.height - 0.5],
    ]
    np.testing.assert_allclose(uv, expected, atol=1e-4)
    assert cam[5, 1] < cam[1, 1]  # the up-tip sits above the top edge (-y in OpenCV)


def test_y_up_false_keeps_world_frame(tmp_path: Path) -> None:
    world = synthetic_world(num_frames=2)
    cloud = world_point_cloud(world, PointFilter(max_points=50))
    path = write_glb(
        tmp_path / "s.glb", cloud, world.intrinsics, world.cam_c2w, world.width, world.height, y_up=False
    )
    pc = next(g for g in trimesh.load(path).geometry.values() if isinstance(g, trimesh.PointCloud))
    np.testing.assert_allclose(pc.vertices, cloud.points, atol=1e-6)
