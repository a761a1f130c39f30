"""Framing the 3-D view (issue 13): "Frame scene" puts the whole path and the result in view."""

from __future__ import annotations

import math

import numpy as np

from app.framing import VIEW_FOV_DEG, bounding_sphere, frame_scene
from fantasy_world.camera import CameraPath


def _in_view(framing, pts: np.ndarray, fov_deg: float = VIEW_FOV_DEG) -> float:
    fwd = framing.target - framing.eye
    fwd /= np.linalg.norm(fwd)
    rel = pts - framing.eye
    along = rel @ fwd
    off = np.linalg.norm(rel - along[:, None] * fwd, axis=1)
    return float(np.mean((along > 0) & (off <= along * math.tan(math.radians(fov_deg) / 2.0))))


def test_a_path_beside_a_large_result_is_framed_with_it():
    rng = np.random.default_rng(0)
    world = rng.normal(size=(20_000, 3)) * [2.0, 0.5, 2.0] + [0.0, 0.0, 6.0]  # the previous result
    path = CameraPath.preset("orbit", num_frames=17, radius=0.5).sample().c2w
    path[:, :3, 3] += [-6.0, 0.0, -3.0]  # a new path drawn off to one side
    framing = frame_scene(path, world)
    assert _in_view(framing, path[:, :3, 3]) == 1.0
    assert _in_view(framing, world) > 0.9


def test_bounding_sphere_holds_content_and_every_camera():
    content = np.random.default_rng(1).normal(size=(1000, 3))
    cams = np.array([[8.0, 0.0, 0.0], [9.0, 1.0, 0.0]])
    centre, radius = bounding_sphere(content, cams)
    assert np.all(np.linalg.norm(cams - centre, axis=1) <= radius + 1e-9)
    inner_c, inner_r = bounding_sphere(content, np.zeros((1, 3)))  # a camera inside: the content's sphere
    assert np.linalg.norm(cams[0] - inner_c) > inner_r


def test_a_path_alone_fills_most_of_the_view():
    path = CameraPath.preset("orbit", num_frames=17).sample().c2w
    framing = frame_scene(path)
    assert _in_view(framing, path[:, :3, 3]) == 1.0
    assert _in_view(framing, path[:, :3, 3], fov_deg=0.6 * VIEW_FOV_DEG) < 1.0  # not a speck in the middle
