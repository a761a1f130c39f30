"""write_bundle writes every file of DESIGN §3 consistently; load_bundle reads the world back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from bench.harness.synthetic_world import synthetic_world
from fantasy_world.errors import GeometryFormatError, InputError
from fantasy_world.geometry.bundle import load_bundle, write_bundle
from fantasy_world.geometry.colmap import colmap_to_arrays, read_colmap_text
from fantasy_world.geometry.nerfstudio import read_transforms
from fantasy_world.geometry.ply import read_ply
from fantasy_world.geometry.video import read_video
from fantasy_world.geometry.world_data import WorldData

BUNDLE_FILES = [
    "video.mp4",
    "depth.mp4",
    "world.npz",
    "points.ply",
    "scene.glb",
    "cameras.json",
    "transforms.json",
    "meta.json",
    "colmap/sparse/0/cameras.txt",
    "colmap/sparse/0/images.txt",
    "colmap/sparse/0/points3D.txt",
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[WorldData, Path, dict[str, Path]]:
    world = synthetic_world(num_frames=5, height=32, width=48)
    out = tmp_path_factory.mktemp("bundle")
    files = write_bundle(
        world,
        out,
        max_points=2000,
        conf_percentile=20.0,
        meta={"prompt": "a card", "timings": {"sample": 1.5}},
    )
    return world, out, files


def test_every_file_written(bundle) -> None:
    _, out, files = bundle
    for name in BUNDLE_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
        assert files[name] == out / name
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"frame_{i:05d}.png" for i in range(5)]
    assert sorted(p.name for p in (out / "colmap" / "images").iterdir()) == [
        f"frame_{i:05d}.png" for i in range(5)
    ]


def test_load_bundle_round_trip(bundle) -> None:
    world, out, _ = bundle
    for source in (out, out / "world.npz"):
        back = load_bundle(source)
        for attr in (
            "images",
            "depths",
            "depth_conf",
            "points",
            "points_conf",
            "intrinsics",
            "cam_c2w",
            "requested_c2w",
        ):
            np.testing.assert_array_equal(getattr(back, attr), getattr(world, attr), err_msg=attr)
    back = load_bundle(out)
    assert back.fps == 16.0 and back.meta["prompt"] == "a card" and back.meta["seed"] == 0
    with pytest.raises(GeometryFormatError, match="bundle folder"):
        load_bundle(out / "nothing_here")


def test_videos_have_all_frames(bundle) -> None:
    world, out, _ = bundle
    for name in ("video.mp4", "depth.mp4"):
        video, fps = read_video(out / name)
        assert video.shape == (world.num_frames, world.height, world.width, 3) and fps == pytest.approx(16.0)


def test_point_exports_agree_and_are_capped(bundle) -> None:
    _, out, _ = bundle
    cloud = read_ply(out / "points.ply")
    assert 0 < len(cloud) <= 2000
    model = read_colmap_text(out / "colmap" / "sparse" / "0")
    np.testing.assert_array_equal(model.points.xyz.astype(np.float32), cloud.points)
    np.testing.assert_array_equal(model.points.rgb, cloud.colors)
    scene = trimesh.load(out / "scene.glb")
    pc = next(g for g in scene.geometry.values() if isinstance(g, trimesh.PointCloud))
    assert len(pc.vertices) == len(cloud)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["num_points"] == len(cloud) and meta["frames"] == 5 and meta["width"] == 48
    assert meta["timings"]["sample"] == 1.5 and meta["timings"]["export"] >= 0
    assert "numpy" in meta["versions"]


def test_camera_exports_agree(bundle) -> None:
    world, out, _ = bundle
    cams = json.loads((out / "cameras.json").read_text())
    assert set(cams) >= {"focal_length", "cameras", "cameras_interp", "intrinsics", "image_size"}
    assert cams["image_size"] == {"width": 48, "height": 32}
    assert cams["focal_length"] == pytest.approx(world.intrinsics[0, 0, 0])
    np.testing.assert_allclose(cams["cameras_interp"], world.cam_c2w, atol=1e-7)
    np.testing.assert_allclose(cams["cameras"], world.requested_c2w, atol=1e-7)
    np.testing.assert_allclose(cams["intrinsics"], world.intrinsics, atol=1e-6)
    names, k, c2w, _ = colmap_to_arrays(read_colmap_text(out / "colmap" / "sparse" / "0"))
    np.testing.assert_allclose(c2w, world.cam_c2w, atol=1e-6)
    np.testing.assert_allclose(k, world.intrinsics, atol=1e-5)
    assert all((out / "colmap" / "images" / n).is_file() for n in names)
    frames = read_transforms(out / "transforms.json")
    np.testing.assert_allclose(frames.c2w, world.cam_c2w, atol=1e-6)
    assert all((out / p).is_file() for p in frames.file_paths)
    assert (out / frames.ply_file_path).is_file()


def test_filter_options_change_the_cloud(tmp_path: Path) -> None:
    world = synthetic_world(num_frames=2)
    a = write_bundle(world, tmp_path / "a", max_points=None, flying_threshold=None)
    b = write_bundle(world, tmp_path / "b", max_points=None, flying_threshold=None, stride=2)
    c = write_bundle(world, tmp_path / "c", max_points=None, flying_threshold=None, conf_percentile=50)
    n_a, n_b, n_c = (len(read_ply(f["points.ply"])) for f in (a, b, c))
    assert n_a == 2 * 32 * 48 and n_b == 2 * 16 * 24 and n_c == n_a // 2
    with pytest.raises(InputError, match="stride"):
        write_bundle(world, tmp_path / "d", stride=0)
    assert not (tmp_path / "d" / "video.mp4").exists()


def test_world_data_validates_on_construction() -> None:
    world = synthetic_world(num_frames=2)
    fields = {
        k: getattr(world, k)
        for k in (
            "images",
            "depths",
            "depth_conf",
            "points",
            "points_conf",
            "intrinsics",
            "cam_c2w",
            "requested_c2w",
        )
    }
    with pytest.raises(InputError, match="images: expected dtype uint8"):
        WorldData(**(fields | {"images": world.images.astype(np.float32)}))
    with pytest.raises(InputError, match="depths: expected shape"):
        WorldData(**(fields | {"depths": world.depths[:, :-1]}))
    with pytest.raises(InputError, match="cam_c2w: expected shape"):
        WorldData(**(fields | {"cam_c2w": world.cam_c2w[:1]}))
    bad_pose = world.cam_c2w.copy()
    bad_pose[0, 3, 0] = 1.0
    with pytest.raises(InputError, match="last row"):
        WorldData(**(fields | {"cam_c2w": bad_pose}))
    bad_k = world.intrinsics.copy()
    bad_k[1, 0, 0] = 0.0
    with pytest.raises(InputError, match="focal"):
        WorldData(**(fields | {"intrinsics": bad_k}))
    with pytest.raises(InputError, match="fps"):
        WorldData(**fields, fps=0.0)
    ok = WorldData(**(fields | {"depths": world.depths.astype(np.float64)}))
    assert ok.depths.dtype == np.float32 and ok.num_frames == 2 and (ok.height, ok.width) == (32, 48)
