"""COLMAP text model: format, pose/intrinsics round trip, projection agreement, strict reader under fuzzing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.harness.synthetic_world import synthetic_world
from fantasy_world.errors import GeometryFormatError
from fantasy_world.geometry.colmap import (
    colmap_to_arrays,
    qvec_to_rotmat,
    read_cameras_text,
    read_colmap_text,
    read_images_text,
    read_points3d_text,
    rotmat_to_qvec,
    write_colmap_text,
)
from fantasy_world.geometry.images import frame_names
from fantasy_world.geometry.pointcloud import PointFilter, world_point_cloud
from fantasy_world.geometry.unproject import project_points


def _write(tmp_path: Path, shared: bool | None = None, per_frame_k: bool = False):
    world = synthetic_world(num_frames=4)
    k = world.intrinsics.astype(np.float64)
    if per_frame_k:
        k = k.copy()
        k[:, 0, 0] += np.arange(4) * 3.0
    cloud = world_point_cloud(world, PointFilter(max_points=300))
    names = frame_names(4)
    write_colmap_text(
        tmp_path, k, world.cam_c2w, world.width, world.height, names, cloud, shared_camera=shared
    )
    return world, k, cloud, names


def test_round_trip_poses_intrinsics_points(tmp_path: Path) -> None:
    world, k, cloud, names = _write(tmp_path, per_frame_k=True)
    model = read_colmap_text(tmp_path)
    assert len(model.cameras) == 4 and all(c.model == "PINHOLE" for c in model.cameras.values())
    got_names, got_k, got_c2w, sizes = colmap_to_arrays(model)
    assert got_names == names
    np.testing.assert_allclose(got_c2w, world.cam_c2w, atol=1e-6)
    np.testing.assert_allclose(got_k, k, atol=1e-9)
    np.testing.assert_array_equal(sizes, [[world.width, world.height]] * 4)
    np.testing.assert_array_equal(model.points.ids, np.arange(1, len(cloud) + 1))
    np.testing.assert_array_equal(model.points.xyz.astype(np.float32), cloud.points)
    np.testing.assert_array_equal(model.points.rgb, cloud.colors)
    assert all(t.shape == (0, 2) for t in model.points.tracks)
    assert all(img.xys.shape == (0, 2) for img in model.images.values())


def test_shared_camera_written_once(tmp_path: Path) -> None:
    _write(tmp_path)
    cams = read_cameras_text(tmp_path / "cameras.txt")
    images = read_images_text(tmp_path / "images.txt")
    assert list(cams) == [1] and {img.camera_id for img in images.values()} == {1}


def test_file_layout_is_colmap_text(tmp_path: Path) -> None:
    _write(tmp_path)
    lines = (tmp_path / "images.txt").read_text().split("\n")
    data = [ln for ln in lines if not ln.startswith("#")]
    # Two lines per image: the pose line (10 fields) and an empty POINTS2D line.
    assert [len(ln.split()) for ln in data[:8]] == [10, 0] * 4
    cam_line = next(ln for ln in (tmp_path / "cameras.txt").read_text().split("\n") if ln and ln[0] != "#")
    assert cam_line.split()[1:4] == ["PINHOLE", "48", "32"]
    pt_line = next(ln for ln in (tmp_path / "points3D.txt").read_text().split("\n") if ln and ln[0] != "#")
    assert len(pt_line.split()) == 8


def test_world_point_projects_to_same_pixel(tmp_path: Path) -> None:
    world, k, cloud, _ = _write(tmp_path)
    model = read_colmap_text(tmp_path)
    rng = np.random.default_rng(0)
    pts = cloud.points[rng.choice(len(cloud), 20, replace=False)].astype(np.float64)
    for img in model.images.values():
        i = int(img.name.split("_")[1].split(".")[0])
        cam = model.cameras[img.camera_id]
        fx, fy, cx, cy = cam.params
        x = pts @ qvec_to_rotmat(img.qvec).T + img.tvec  # COLMAP: X_cam = R X + t
        uv_colmap = np.stack([fx * x[:, 0] / x[:, 2] + cx, fy * x[:, 1] / x[:, 2] + cy], axis=-1)
        uv_ours, _ = project_points(pts, k[i], world.cam_c2w[i])
        # Same pixel; COLMAP measures from the pixel corner, we from its centre.
        np.testing.assert_allclose(uv_colmap - 0.5, uv_ours, atol=1e-6)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(rv=st.tuples(*[st.floats(-3, 3)] * 3))
def test_quaternion_round_trip(rv: tuple[float, float, float]) -> None:
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_rotvec(rv).as_matrix()
    q = rotmat_to_qvec(rot)
    assert q[0] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-12
    np.testing.assert_allclose(qvec_to_rotmat(q), rot, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("cameras.txt", "1 PINHOLE 48 32 1 2 3\n"),
        ("cameras.txt", "1 WEIRD 48 32 1 2 3 4\n"),
        ("cameras.txt", "1 PINHOLE 48 -3 1 2 3 4\n"),
        ("cameras.txt", "1 PINHOLE 48 32 1 2 nan 4\n"),
        ("images.txt", "1 1 0 0 0 0 0 0 1 a.png extra\n\n"),
        ("images.txt", "1 2 0 0 0 0 0 0 1 a.png\n\n"),
        ("images.txt", "1 1 0 0 0 0 0 0 1 a.png\n1.0 2.0\n"),
        ("images.txt", "1 1 0 0 0 0 0 0 1 a.png\n\n1 1 0 0 0 0 0 0 1 b.png\n\n"),
        ("points3D.txt", "1 0 0 0 255 255 256 0\n"),
        ("points3D.txt", "1 0 0 0 1 2 3 0 5\n"),
        ("points3D.txt", "1 0 0 x 1 2 3 0\n"),
    ],
)
def test_malformed_lines_rejected(tmp_path: Path, name: str, text: str) -> None:
    _write(tmp_path)
    (tmp_path / name).write_text(text)
    with pytest.raises(GeometryFormatError, match=name):
        read_colmap_text(tmp_path)


def test_undefined_camera_and_missing_file(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 7 a.png\n\n")
    with pytest.raises(GeometryFormatError, match="CAMERA_ID 7"):
        read_colmap_text(tmp_path)
    (tmp_path / "points3D.txt").unlink()
    with pytest.raises(GeometryFormatError, match="points3D.txt"):
        read_points3d_text(tmp_path / "points3D.txt")


_FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
_READERS = {
    "cameras.txt": read_cameras_text,
    "images.txt": read_images_text,
    "points3D.txt": read_points3d_text,
}


@_FUZZ
@given(name=st.sampled_from(sorted(_READERS)), data=st.binary(max_size=300))
def test_fuzz_random_bytes(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    try:
        _READERS[name](path)
    except GeometryFormatError:
        pass


@pytest.fixture(scope="module")
def valid_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("colmap")
    _write(d)
    return d


@_FUZZ
@given(
    name=st.sampled_from(sorted(_READERS)),
    cut=st.integers(0, 50_000),
    edits=st.lists(
        st.tuples(st.integers(0, 50_000), st.sampled_from(b" \n#-.0123456789eEaxn\x00\xff")), max_size=5
    ),
)
def test_fuzz_truncated_and_mutated(
    tmp_path: Path, valid_model: Path, name: str, cut: int, edits: list
) -> None:
    data = bytearray((valid_model / name).read_bytes()[:4000])
    for pos, val in edits:
        data[pos % len(data)] = val
    data = data[: cut % (len(data) + 1)]
    model_dir = tmp_path / "m"
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(valid_model, model_dir)
    (model_dir / name).write_bytes(bytes(data))
    try:
        model = read_colmap_text(model_dir)
    except GeometryFormatError:
        return
    try:
        colmap_to_arrays(model)
    except GeometryFormatError:
        pass
