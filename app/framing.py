"""Where the 3-D view looks and how big things are drawn, from the path and the generated points.

Pure numpy. Our world is OpenCV (y down), so "up" is -y and the ground is the largest y. Scenes
come in any scale (presets are in scene units, real models predict their own), so every size
here is relative to a robust measure of the scene, never an absolute number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

UP = np.array([0.0, -1.0, 0.0])  # OpenCV world: y points down
CONTENT_AHEAD = 1.0  # presets are in scene units: 1 ≈ distance of what the first frame sees
VIEW_FOV_DEG = 50.0  # vertical FoV we assume for the person's camera when fitting the scene
FIT_MARGIN = 1.25  # the framed sphere fills about 80% of the view height: the path is not drawn tiny


@dataclass(frozen=True)
class Framing:
    """A client-camera pose (eye, target, up) plus the scene's robust centre and radius."""

    eye: np.ndarray
    target: np.ndarray
    up: np.ndarray
    radius: float


@dataclass(frozen=True)
class Ground:
    """A ground grid: its centre (on the plane), side length and cell size, all in scene units."""

    centre: np.ndarray
    size: float
    cell: float


def _finite_rows(a: np.ndarray | None) -> np.ndarray:
    if a is None:
        return np.zeros((0, 3))
    a = np.asarray(a, np.float64).reshape(-1, 3)
    return a[np.all(np.isfinite(a), axis=1)]


def nice_step(x: float) -> float:
    """The 1-2-5 number nearest below ``x`` (grid cells that read well at any scale)."""
    if not math.isfinite(x) or x <= 0:
        return 1.0
    exp = math.floor(math.log10(x))
    base = 10.0**exp
    for m in (5.0, 2.0, 1.0):
        if m * base <= x:
            return m * base
    return base


def content_points(c2w: np.ndarray, points: np.ndarray | None) -> np.ndarray:
    """What the scene shows: the generated points, or (no world yet) the spots the cameras look at."""
    pts = _finite_rows(points)
    if len(pts) >= 16:
        return pts
    c2w = np.asarray(c2w, np.float64).reshape(-1, 4, 4)
    return c2w[:, :3, 3] + CONTENT_AHEAD * c2w[:, :3, 2]


def robust_centre_radius(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Median centre and 90th-percentile radius: a few flying points must not decide the view."""
    pts = _finite_rows(points)
    if len(pts) == 0:
        return np.zeros(3), 1.0
    centre = np.median(pts, axis=0)
    radius = float(np.percentile(np.linalg.norm(pts - centre, axis=1), 90)) if len(pts) > 1 else 0.0
    return centre, max(radius, 0.25)


def bounding_sphere(content: np.ndarray, cams: np.ndarray) -> tuple[np.ndarray, float]:
    """One sphere around the content's robust sphere and every camera of the path.

    Many generated points must not outvote a few path cameras: a new path drawn beside the previous
    result is framed together with it, not left at the edge of the view."""
    centre, radius = robust_centre_radius(np.concatenate([content, cams]))
    cams = _finite_rows(cams)
    if len(cams) == 0:
        return centre, radius
    lo, hi = cams.min(axis=0), cams.max(axis=0)
    cam_centre, cam_radius = (lo + hi) / 2.0, float(np.linalg.norm(hi - lo)) / 2.0
    gap = float(np.linalg.norm(cam_centre - centre))
    if gap + cam_radius <= radius:  # the path already sits inside the content's sphere
        return centre, radius
    if gap + radius <= cam_radius:
        return cam_centre, max(cam_radius, 0.25)
    new_radius = (gap + radius + cam_radius) / 2.0
    new_centre = centre + (cam_centre - centre) / gap * (new_radius - radius)
    return new_centre, new_radius


def frame_scene(c2w: np.ndarray, points: np.ndarray | None = None, fov_deg: float = VIEW_FOV_DEG) -> Framing:
    """Behind and above the first camera, looking at the content's robust centre, everything in view."""
    c2w = np.asarray(c2w, np.float64).reshape(-1, 4, 4)
    content = content_points(c2w, points)
    cams = c2w[:, :3, 3]
    target, radius = bounding_sphere(content, cams)
    first, forward = cams[0], c2w[0, :3, 2]
    # Horizontal forward of the first camera (the "behind" direction ignores its tilt).
    flat = forward - UP * float(forward @ UP)
    flat = flat / np.linalg.norm(flat) if np.linalg.norm(flat) > 1e-6 else np.array([0.0, 0.0, 1.0])
    eye = first - 0.6 * radius * flat + 0.5 * radius * UP
    need = FIT_MARGIN * radius / math.tan(math.radians(fov_deg) / 2.0)  # distance at which the sphere fits
    offset = eye - target
    dist = float(np.linalg.norm(offset))
    if dist < 1e-6:
        offset, dist = -flat + 0.5 * UP, float(np.linalg.norm(-flat + 0.5 * UP))
    if dist < need:
        eye = target + offset / dist * need
    return Framing(eye=eye, target=target, up=UP.copy(), radius=radius)


def ground_plane(c2w: np.ndarray, points: np.ndarray | None = None) -> Ground:
    """A grid under everything: at the lowest content (98th percentile of y), or below the cameras."""
    c2w = np.asarray(c2w, np.float64).reshape(-1, 4, 4)
    cams = c2w[:, :3, 3]
    pts = _finite_rows(points)
    centre, radius = robust_centre_radius(np.concatenate([content_points(c2w, points), cams]))
    if len(pts) >= 16:
        level = max(float(np.percentile(pts[:, 1], 98)), float(cams[:, 1].max()))
    else:
        level = float(cams[:, 1].max()) + max(0.5, 0.5 * radius)
    cell = nice_step(radius / 4.0)
    size = cell * max(8, math.ceil(6.0 * radius / cell))
    return Ground(centre=np.array([centre[0], level, centre[2]]), size=size, cell=cell)


def point_size(extent: float, points_per_frame: int) -> float:
    """Points about as wide as their spacing in one frame, so a sparse cloud still reads as a surface."""
    n = max(1, int(points_per_frame))
    size = 1.5 * extent / math.sqrt(n)
    return float(min(max(size, extent / 2000.0), extent / 40.0))
