"""transforms.json: frames match written images; OpenGL transform; intrinsics round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.harness.synthetic_world import synthetic_world
from fantasy_world.errors import GeometryFormatError
from fantasy_world.geometry.images import frame_names, write_frames
from fantasy_world.geometry.nerfstudio import read_transforms, write_transforms


def test_frames_match_images_and_opengl_flip(tmp_path: Path) -> None:
    world = synthetic_world(num_frames=4)
    names = [f"images/{n}" for n in frame_names(4)]
    write_frames(world.images, tmp_path / "images")
    path = write_transforms(
        tmp_path / "transforms.json", world.intrinsics, world.cam_c2w, world.width, world.height, names
    )
    doc = json.loads(path.read_text())
    assert doc["ply_file_path"] == "points.ply" and len(doc["frames"]) == 4
    flip = np.diag([1.0, -1.0, -1.0, 1.0])
    for i, frame in enumerate(doc["frames"]):
        image = Image.open(tmp_path / frame["file_path"])
        assert image.size == (frame["w"], frame["h"]) == (world.width, world.height)
        np.testing.assert_array_equal(np.asarray(image), world.images[i])
        np.testing.assert_allclose(frame["transform_matrix"], world.cam_c2w[i] @ flip, atol=1e-7)
        k = world.intrinsics[i]
        assert frame["fl_x"] == pytest.approx(k[0, 0]) and frame["fl_y"] == pytest.approx(k[1, 1])
        assert frame["cx"] == pytest.approx(k[0, 2] + 0.5) and frame["cy"] == pytest.approx(k[1, 2] + 0.5)
    back = read_transforms(path)
    assert back.file_paths == names and back.ply_file_path == "points.ply"
    np.testing.assert_allclose(back.c2w, world.cam_c2w, atol=1e-6)
    np.testing.assert_allclose(back.intrinsics, world.intrinsics, atol=1e-5)
    np.testing.assert_array_equal(back.sizes, [[world.width, world.height]] * 4)


def test_camera_centre_and_view_direction_in_opengl() -> None:
    # An OpenGL camera looks down its -z axis: the flipped matrix must keep the centre and view ray.
    world = synthetic_world(num_frames=2)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = write_transforms(
            Path(d) / "t.json", world.intrinsics, world.cam_c2w, 48, 32, ["a.png", "b.png"]
        )
        frames = json.loads(path.read_text())["frames"]
    for i, frame in enumerate(frames):
        gl = np.array(frame["transform_matrix"])
        np.testing.assert_allclose(gl[:3, 3], world.cam_c2w[i, :3, 3], atol=1e-7)
        np.testing.assert_allclose(-gl[:3, 2], world.cam_c2w[i, :3, 2], atol=1e-7)


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        "[]",
        '{"frames": [{"file_path": "a.png"}]}',
        '{"frames": [{"file_path": "a.png", "transform_matrix": [[1, 0], [0, 1]]}]}',
        '{"fl_x": 1, "fl_y": 1, "cx": 1, "cy": 1, "w": 2, "h": 2, '
        '"frames": [{"file_path": "a.png", "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,"x"]]}]}',
        '{"frames": [{"file_path": "a.png", "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}',
    ],
)
def test_malformed_transforms_rejected(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "transforms.json"
    path.write_text(doc)
    with pytest.raises(GeometryFormatError, match="transforms.json"):
        read_transforms(path)
