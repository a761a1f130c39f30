"""PLY: round trips through our reader and trimesh; malformed input fails with GeometryFormatError only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fantasy_world.errors import GeometryFormatError
from fantasy_world.geometry.ply import read_ply, write_ply
from fantasy_world.geometry.pointcloud import PointCloud


def _cloud(n: int, seed: int = 0, conf: bool = True) -> PointCloud:
    rng = np.random.default_rng(seed)
    return PointCloud(
        points=rng.normal(size=(n, 3)).astype(np.float32) * 10,
        colors=rng.integers(0, 256, size=(n, 3), dtype=np.uint8),
        confidence=rng.random(n).astype(np.float32) if conf else None,
    )


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("conf", [True, False])
def test_round_trip_our_reader(tmp_path: Path, binary: bool, conf: bool) -> None:
    cloud = _cloud(257, conf=conf)
    path = write_ply(tmp_path / "p.ply", cloud, binary=binary)
    back = read_ply(path)
    np.testing.assert_array_equal(back.points, cloud.points)
    np.testing.assert_array_equal(back.colors, cloud.colors)
    if conf:
        np.testing.assert_array_equal(back.confidence, cloud.confidence)
    else:
        assert back.confidence is None


def test_binary_header_is_little_endian_float_uchar(tmp_path: Path) -> None:
    path = write_ply(tmp_path / "p.ply", _cloud(3, conf=False))
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    assert "format binary_little_endian 1.0" in header
    for line in ("property float x", "property uchar red", "element vertex 3"):
        assert line in header
    assert path.stat().st_size == len(header) + len("end_header\n") + 3 * 15


@pytest.mark.parametrize("binary", [True, False])
def test_trimesh_reads_our_ply(tmp_path: Path, binary: bool) -> None:
    cloud = _cloud(100, seed=1)
    mesh = trimesh.load(write_ply(tmp_path / "p.ply", cloud, binary=binary))
    assert isinstance(mesh, trimesh.PointCloud)
    np.testing.assert_allclose(mesh.vertices, cloud.points, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(mesh.colors)[:, :3], cloud.colors)


def test_empty_cloud_round_trips(tmp_path: Path) -> None:
    back = read_ply(write_ply(tmp_path / "e.ply", _cloud(0)))
    assert len(back) == 0 and back.points.shape == (0, 3)


def test_reads_big_endian_and_skips_leading_element(tmp_path: Path) -> None:
    pts = np.array([[1.5, -2.0, 3.25], [0.0, 1.0, 2.0]], dtype=">f4")
    header = (
        "ply\nformat binary_big_endian 1.0\nelement camera 1\nproperty double fov\n"
        "element vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    )
    path = tmp_path / "be.ply"
    path.write_bytes(header.encode() + np.array([0.7], ">f8").tobytes() + pts.tobytes())
    back = read_ply(path)
    np.testing.assert_array_equal(back.points, pts.astype(np.float32))
    np.testing.assert_array_equal(back.colors, np.zeros((2, 3), np.uint8))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not a ply",
        b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\nend_header\n",
        b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
        b"property float z\nend_header\n" + b"\0" * 23,
        b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
        b"end_header\n1 2 3\n4 5\n",
        b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\n"
        b"property uchar red\nend_header\n1 2 3 999\n",
        b"ply\nformat ascii 2.0\nelement vertex 0\nend_header\n",
        b"ply\nformat binary_little_endian 1.0\nelement face 1\nproperty list uchar int vertex_indices\n"
        b"element vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n",
    ],
)
def test_malformed_files_rejected(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "bad.ply"
    path.write_bytes(body)
    with pytest.raises(GeometryFormatError, match="bad.ply"):
        read_ply(path)


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(GeometryFormatError, match="cannot read"):
        read_ply(tmp_path / "nope.ply")


def _assert_reads_or_rejects(path: Path) -> None:
    try:
        cloud = read_ply(path)
    except GeometryFormatError:
        return
    assert cloud.points.shape[1] == 3 and cloud.colors.dtype == np.uint8


_FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
_VALID = {}


def _valid_bytes(binary: bool) -> bytes:
    if binary not in _VALID:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            _VALID[binary] = write_ply(Path(d) / "v.ply", _cloud(6, seed=2), binary=binary).read_bytes()
    return _VALID[binary]


@_FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "f.ply"
    path.write_bytes(data)
    _assert_reads_or_rejects(path)


@_FUZZ
@given(
    binary=st.booleans(),
    cut=st.integers(0, 10_000),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
)
def test_fuzz_truncated_and_mutated(
    tmp_path: Path, binary: bool, cut: int, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(_valid_bytes(binary))
    for pos, val in edits:
        data[pos % len(data)] = val
    data = data[: cut % (len(data) + 1)]
    path = tmp_path / "m.ply"
    path.write_bytes(bytes(data))
    _assert_reads_or_rejects(path)
