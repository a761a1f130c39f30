"""Smooth interpolation of keyframed cameras.

Positions and FoV use a non-uniform Kochanek–Bartels (cardinal) Hermite spline over the knot times,
so velocity is continuous in *time* even when keyframes are unevenly spaced; rotations use scipy's
``RotationSpline`` (C² in angular velocity, shortest arc between neighbours, so keyframes up to just
under 180° apart never flip). ``PoseSpline.reparameterise`` then maps a uniform parameter to equal
steps of travel so that frames do not bunch up near keyframes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation, RotationSpline

from fantasy_world.errors import CameraFormatError

_DENSE_SAMPLES_TOTAL = 40_000
_MIN_SEGMENT_SAMPLES = 16
_MAX_SEGMENT_SAMPLES = 512


def fill_times(times: Sequence[float | None]) -> np.ndarray | None:
    """Complete partially given keyframe times (linear by index between the given ones).

    Returns None when no keyframe has a time (the caller then spaces keyframes by distance).
    Raises when given times do not strictly increase.
    """
    known = [(i, t) for i, t in enumerate(times) if t is not None]
    if not known:
        return None
    for (i0, t0), (i1, t1) in zip(known, known[1:]):
        if not t1 > t0:
            raise CameraFormatError(
                f"keyframe {i1}: time {t1:g} is not after keyframe {i0}'s time {t0:g}; expected increasing times"
            )
    idx = np.array([i for i, _ in known], dtype=np.float64)
    val = np.array([t for _, t in known], dtype=np.float64)
    step = float(np.mean(np.diff(val) / np.diff(idx))) if len(known) > 1 else 1.0
    all_idx = np.arange(len(times), dtype=np.float64)
    out = np.interp(all_idx, idx, val)
    out[all_idx < idx[0]] = val[0] + (all_idx[all_idx < idx[0]] - idx[0]) * step
    out[all_idx > idx[-1]] = val[-1] + (all_idx[all_idx > idx[-1]] - idx[-1]) * step
    return out


def motion_between(
    p0: np.ndarray, p1: np.ndarray, r0: Rotation, r1: Rotation, f0: np.ndarray, f1: np.ndarray
) -> np.ndarray:
    """Travel between camera states: position distance, rotation angle and FoV change combined.

    Content sits about one scene unit away (the pipeline normalises scale so), so turning by one radian
    moves the picture about as much as travelling one unit; both count equally.
    """
    dp = np.linalg.norm(np.asarray(p1) - np.asarray(p0), axis=-1)
    dtheta = (r0.inv() * r1).magnitude()
    dfov = np.radians(np.abs(np.asarray(f1) - np.asarray(f0)))
    return np.sqrt(dp**2 + dtheta**2 + dfov**2)


def chord_knots(positions: np.ndarray, rotations: Rotation, fovs: np.ndarray, loop: bool) -> np.ndarray:
    """Knot times from the travel between consecutive keyframes (plus the closing segment if looping)."""
    n = len(positions)
    idx_next = np.r_[np.arange(1, n), [0]] if loop else np.arange(1, n)
    idx_prev = np.arange(len(idx_next))
    d = motion_between(
        positions[idx_prev], positions[idx_next], rotations[idx_prev], rotations[idx_next],
        fovs[idx_prev], fovs[idx_next],
    )  # fmt: skip
    mean = float(np.mean(d)) if d.size else 0.0
    floor = 1e-3 * mean if mean > 0 else 1.0
    d = np.maximum(d, floor)
    return np.r_[0.0, np.cumsum(d)]


def _hermite_tangents(values: np.ndarray, knots: np.ndarray, tension: float, loop: bool) -> np.ndarray:
    """Kochanek–Bartels tangents (bias = continuity = 0) for non-uniform knots.

    For a loop, ``values``/``knots`` already end with the first keyframe repeated one period later.
    Open ends take the slope of the parabola through the last three keyframes (exact for circles to
    second order); two keyframes give a straight, constant-speed line.
    """
    m = len(values)
    tangents = np.zeros_like(values)
    if loop:
        period = knots[-1] - knots[0]
        prev_v = np.concatenate([values[-2:-1], values[:-1]])
        prev_t = np.r_[knots[-2] - period, knots[:-1]]
        next_v = np.concatenate([values[1:], values[1:2]])
        next_t = np.r_[knots[1:], knots[1] + period]
        tangents = (next_v - prev_v) / (next_t - prev_t).reshape(-1, *([1] * (values.ndim - 1)))
    elif m == 2:
        slope = (values[1] - values[0]) / (knots[1] - knots[0])
        tangents[:] = slope
    else:
        shape = (-1, *([1] * (values.ndim - 1)))
        tangents[1:-1] = (values[2:] - values[:-2]) / (knots[2:] - knots[:-2]).reshape(shape)
        tangents[0] = _parabola_end_slope(values[:3], knots[:3])
        tangents[-1] = -_parabola_end_slope(values[::-1][:3], -knots[::-1][:3])
    return (1.0 - tension) * tangents


def _parabola_end_slope(values: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Derivative at ``knots[0]`` of the parabola through three (value, knot) pairs."""
    h0, h1 = knots[1] - knots[0], knots[2] - knots[1]
    return (
        -(2 * h0 + h1) / (h0 * (h0 + h1)) * values[0]
        + (h0 + h1) / (h0 * h1) * values[1]
        - h0 / (h1 * (h0 + h1)) * values[2]
    )


def _hermite_eval(values: np.ndarray, tangents: np.ndarray, knots: np.ndarray, t: np.ndarray) -> np.ndarray:
    j = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, len(knots) - 2)
    h = knots[j + 1] - knots[j]
    u = (t - knots[j]) / h
    u2, u3 = u * u, u * u * u
    shape = (-1, *([1] * (values.ndim - 1)))
    b00 = (2 * u3 - 3 * u2 + 1).reshape(shape)
    b10 = ((u3 - 2 * u2 + u) * h).reshape(shape)
    b01 = (-2 * u3 + 3 * u2).reshape(shape)
    b11 = ((u3 - u2) * h).reshape(shape)
    return b00 * values[j] + b10 * tangents[j] + b01 * values[j + 1] + b11 * tangents[j + 1]


@dataclass
class PoseSpline:
    """Interpolates poses and FoV over knot times ``knots[0] .. knots[-1]``.

    For a loop the last knot closes the path back onto the first keyframe.
    """

    knots: np.ndarray
    positions: np.ndarray
    pos_tangents: np.ndarray
    fovs: np.ndarray
    fov_tangents: np.ndarray
    fov_range: tuple[float, float]
    rotation_spline: RotationSpline

    @classmethod
    def build(
        cls, c2w: np.ndarray, fovs: np.ndarray, knots: np.ndarray, tension: float, loop: bool
    ) -> PoseSpline:
        """``c2w`` [K,4,4] and ``fovs`` [K] keyframes; ``knots`` K (open) or K+1 (loop) increasing times."""
        pos = c2w[:, :3, 3]
        rots = Rotation.from_matrix(c2w[:, :3, :3])
        if loop:
            pos = np.concatenate([pos, pos[:1]])
            fovs = np.r_[fovs, fovs[:1]]
            period = knots[-1] - knots[0]
            # Pad by one keyframe on each side so the rotation spline is smooth across the seam.
            rot_knots = np.r_[knots[-2] - period, knots, knots[1] + period]
            quats = rots.as_quat()
            rot_pad = Rotation.from_quat(np.concatenate([quats[-1:], quats, quats[:1], quats[1:2]]))
        else:
            rot_knots, rot_pad = knots, rots
        return cls(
            knots=knots,
            positions=pos,
            pos_tangents=_hermite_tangents(pos, knots, tension, loop),
            fovs=fovs,
            fov_tangents=_hermite_tangents(fovs, knots, tension, loop),
            fov_range=(float(np.min(fovs)), float(np.max(fovs))),
            rotation_spline=RotationSpline(rot_knots, rot_pad),
        )

    @property
    def t_start(self) -> float:
        return float(self.knots[0])

    @property
    def t_end(self) -> float:
        return float(self.knots[-1])

    def evaluate(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poses [M,4,4] (OpenCV c2w) and vertical FoV [M] (degrees) at knot times ``t``."""
        t = np.clip(np.asarray(t, dtype=np.float64).reshape(-1), self.t_start, self.t_end)
        pos = _hermite_eval(self.positions, self.pos_tangents, self.knots, t)
        # Monotone clamp: a cardinal spline may overshoot slightly between very different FoVs.
        fov = np.clip(_hermite_eval(self.fovs, self.fov_tangents, self.knots, t), *self.fov_range)
        out = np.tile(np.eye(4), (len(t), 1, 1))
        out[:, :3, :3] = self.rotation_spline(t).as_matrix()
        out[:, :3, 3] = pos
        return out, fov

    def travel_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense knot times and cumulative travel (see :func:`motion_between`) along the path."""
        segments = len(self.knots) - 1
        per_seg = int(
            np.clip(_DENSE_SAMPLES_TOTAL // max(segments, 1), _MIN_SEGMENT_SAMPLES, _MAX_SEGMENT_SAMPLES)
        )
        u = np.linspace(0.0, 1.0, per_seg, endpoint=False)
        t = (self.knots[:-1, None] + np.diff(self.knots)[:, None] * u[None]).reshape(-1)
        t = np.r_[t, self.knots[-1]]
        c2w, fov = self.evaluate(t)
        rots = Rotation.from_matrix(c2w[:, :3, :3])
        steps = motion_between(c2w[:-1, :3, 3], c2w[1:, :3, 3], rots[:-1], rots[1:], fov[:-1], fov[1:])
        return t, np.r_[0.0, np.cumsum(steps)]
