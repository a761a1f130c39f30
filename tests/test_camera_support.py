"""Hypothesis strategies and helpers shared by the camera tests (no tests of its own)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from fantasy_world.camera import CameraTrajectory

REPO = Path(__file__).resolve().parents[1]
WORLDSCORE_EXAMPLE_NAME = "worldscore_camera_data_example.json"


def worldscore_example_path() -> Path:
    """The official WorldScore camera example (a copy in tests/fixtures)."""
    return REPO / "tests" / "fixtures" / WORLDSCORE_EXAMPLE_NAME


@st.composite
def rigid_poses(draw: st.DrawFn, max_translation: float = 10.0) -> np.ndarray:
    quat = draw(
        st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4).filter(
            lambda q: float(np.linalg.norm(q)) > 0.1
        )
    )
    trans = draw(st.lists(st.floats(-max_translation, max_translation), min_size=3, max_size=3))
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat(quat).as_matrix()
    out[:3, 3] = trans
    return out


@st.composite
def trajectories(draw: st.DrawFn, centred_square: bool = False, max_frames: int = 5) -> CameraTrajectory:
    """Random rigid poses and pinhole intrinsics; ``centred_square`` limits to fx = fy, centred."""
    n = draw(st.integers(2, max_frames))
    width = draw(st.integers(16, 2048))
    height = draw(st.integers(16, 2048))
    poses = np.stack([draw(rigid_poses()) for _ in range(n)])
    ks = []
    for _ in range(n):
        fy = draw(st.floats(0.2 * height, 5.0 * height))
        if centred_square:
            fx, cx, cy = fy, (width - 1) / 2.0, (height - 1) / 2.0
        else:
            fx = draw(st.floats(0.2 * width, 5.0 * width))
            cx = draw(st.floats(0.0, float(width)))
            cy = draw(st.floats(0.0, float(height)))
        ks.append(np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]))
    fps = draw(st.sampled_from([None, 8.0, 16.0, 24.0, 29.97]))
    return CameraTrajectory(poses, np.stack(ks), width, height, fps=fps)


def project(c2w: np.ndarray, k: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Pixel of a world point through an OpenCV c2w and pixel intrinsics."""
    cam = c2w[:3, :3].T @ (point - c2w[:3, 3])
    uvw = k @ cam
    return uvw[:2] / uvw[2]


def point_in_front(c2w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cam = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.5, 10.0)])
    return c2w[:3, :3] @ cam + c2w[:3, 3]
