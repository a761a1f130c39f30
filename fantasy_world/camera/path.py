"""Editable keyframed camera path, sampled to per-frame cameras for generation.

The app's 3-D editor adds, moves, deletes and reorders keyframes; the pipeline calls :meth:`sample`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fantasy_world.camera.checks import as_positive_int
from fantasy_world.camera.conventions import intrinsics_from_vfov
from fantasy_world.camera.interpolation import PoseSpline, chord_knots, fill_times
from fantasy_world.camera.keyframes import Keyframe, PathSettings
from fantasy_world.camera.trajectory import CameraTrajectory
from fantasy_world.errors import CameraFormatError
from fantasy_world.limits import MAX_CAMERA_FRAMES

logger = logging.getLogger(__name__)


@dataclass
class CameraPath:
    """Keyframes (OpenCV c2w, vertical FoV, optional time) plus settings; at least two to sample."""

    keyframes: list[Keyframe] = field(default_factory=list)
    settings: PathSettings = field(default_factory=PathSettings)
    preset_name: str | None = None
    preset_params: dict[str, float] = field(default_factory=dict)
    # The exact move of an unedited preset (path parameters u -> c2w [M,4,4], FoV [M]): its keyframes
    # are sparse handles, so frames come from the move itself until a keyframe is edited.
    exact: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = field(
        default=None, repr=False, compare=False
    )

    # ----------------------------------------------------------------------------------- building
    @classmethod
    def preset(cls, name: str, num_frames: int = 33, **params: Any) -> CameraPath:
        """A named preset (orbit, dolly_in, ...; hyphens accepted) with its parameters; see ``PRESETS``."""
        from fantasy_world.camera.presets import build_preset

        return build_preset(name, num_frames=num_frames, **params)

    @classmethod
    def load(cls, path: str | Path, width: int | None = None, height: int | None = None) -> CameraPath:
        """Read any supported camera file; per-frame formats become one keyframe per frame, timed."""
        from fantasy_world.camera.formats import read_camera_file

        loaded = read_camera_file(path, width=width, height=height)
        return loaded if isinstance(loaded, CameraPath) else cls.from_trajectory(loaded)

    def save(self, path: str | Path, format: str | None = None) -> Path:
        """Write to ``path``; ``format`` is native (default for .json), worldscore, re10k or nerfstudio."""
        from fantasy_world.camera.formats import save_camera_file

        return save_camera_file(self, path, format=format)

    @classmethod
    def from_trajectory(cls, traj: CameraTrajectory) -> CameraPath:
        """Every frame becomes a keyframe at time i / fps, so sampling the same count reproduces it."""
        if len(traj) < 2:
            raise CameraFormatError(f"{traj.source}: {len(traj)} camera; expected at least 2 to make a path")
        fps = traj.fps if traj.fps else PathSettings().fps
        fovs = traj.fov_y_deg
        k = traj.intrinsics
        centre = np.array([(traj.width - 1) / 2, (traj.height - 1) / 2])
        if np.any(np.abs(k[:, 0, 0] - k[:, 1, 1]) > 1e-6 * k[:, 1, 1]) or np.any(
            np.abs(k[:, :2, 2] - centre) > 1e-6
        ):
            logger.warning(
                "%s: keyframes keep only the vertical FoV; fx != fy and off-centre principal points are dropped",
                traj.source,
            )
        kfs = [Keyframe(traj.c2w[i], float(fovs[i]), time=i / fps) for i in range(len(traj))]
        settings = PathSettings(num_frames=len(traj), fps=fps, width=traj.width, height=traj.height)
        return cls(kfs, settings)

    def copy(self) -> CameraPath:
        return CameraPath(
            [k.copy() for k in self.keyframes],
            PathSettings(**self.settings.__dict__),
            self.preset_name,
            dict(self.preset_params),
            self.exact,
        )

    # ------------------------------------------------------------------------------------ editing
    def __len__(self) -> int:
        return len(self.keyframes)

    def add_keyframe(self, c2w: np.ndarray, fov_y_deg: float | None = None, time: float | None = None) -> int:
        """Append a keyframe (FoV defaults to the last keyframe's); returns its index."""
        return self.insert_keyframe(len(self.keyframes), c2w, fov_y_deg, time)

    def insert_keyframe(
        self, index: int, c2w: np.ndarray, fov_y_deg: float | None = None, time: float | None = None
    ) -> int:
        if not isinstance(index, int) or not 0 <= index <= len(self.keyframes):
            raise CameraFormatError(f"insert at {index!r}: expected an index from 0 to {len(self.keyframes)}")
        if len(self.keyframes) >= MAX_CAMERA_FRAMES:
            raise CameraFormatError(
                f"camera path: already {MAX_CAMERA_FRAMES} keyframes; expected at most that many"
            )
        if fov_y_deg is None:
            fov_y_deg = (
                self.keyframes[min(index, len(self.keyframes) - 1)].fov_y_deg if self.keyframes else 60.0
            )
        kf = Keyframe.checked(c2w, fov_y_deg, time, f"keyframe {index}")
        self.keyframes.insert(index, kf)
        self._edited()
        return index

    def update_keyframe(
        self,
        index: int,
        c2w: np.ndarray | None = None,
        fov_y_deg: float | None = None,
        time: float | None = None,
    ) -> None:
        """Move / re-aim a keyframe or change its FoV or time (None leaves a field unchanged)."""
        old = self.keyframes[self._check_index(index)]
        new = Keyframe.checked(
            old.c2w if c2w is None else c2w,
            old.fov_y_deg if fov_y_deg is None else fov_y_deg,
            old.time if time is None else time,
            f"keyframe {index}",
        )
        self.keyframes[index] = new
        self._edited()

    def remove_keyframe(self, index: int) -> Keyframe:
        kf = self.keyframes.pop(self._check_index(index))
        self._edited()
        return kf

    def move_keyframe(self, index: int, new_index: int) -> None:
        """Change a keyframe's position in the order (the others shift)."""
        kf = self.keyframes.pop(self._check_index(index))
        if not isinstance(new_index, int) or not 0 <= new_index <= len(self.keyframes):
            self.keyframes.insert(index, kf)
            raise CameraFormatError(
                f"move to {new_index!r}: expected an index from 0 to {len(self.keyframes) - 1}"
            )
        self.keyframes.insert(new_index, kf)
        self._edited()

    def reorder(self, order: Sequence[int]) -> None:
        """Put keyframes in ``order`` (a permutation of their indices)."""
        order = list(order)
        if sorted(order) != list(range(len(self.keyframes))):
            raise CameraFormatError(
                f"reorder {order}: expected a permutation of 0..{len(self.keyframes) - 1}"
            )
        self.keyframes = [self.keyframes[i] for i in order]
        self._edited()

    def _check_index(self, index: int) -> int:
        if not isinstance(index, int) or not -len(self.keyframes) <= index < len(self.keyframes):
            raise CameraFormatError(f"keyframe {index!r}: expected an index below {len(self.keyframes)}")
        return index % len(self.keyframes)

    def _edited(self) -> None:
        # A hand-edited path is no longer the preset it came from: the spline through its keyframes rules.
        self.preset_name = None
        self.preset_params = {}
        self.exact = None

    def _exact_applies(self) -> bool:
        """The exact move holds only with the settings presets are built with (no loop, no tension)."""
        s = self.settings
        return self.exact is not None and not s.loop and s.tension == 0.0 and s.constant_speed

    # ------------------------------------------------------------------------------ interpolation
    def _spline(self) -> tuple[PoseSpline, np.ndarray, bool]:
        """The pose spline, the knot time of each keyframe, and whether frames follow explicit times."""
        if len(self.keyframes) < 2:
            raise CameraFormatError(
                f"camera path: {len(self.keyframes)} keyframe(s); expected at least 2 to interpolate"
            )
        for i, kf in enumerate(self.keyframes):
            kf.validate(f"keyframe {i}")
        s = self.settings
        c2w = np.stack([k.c2w for k in self.keyframes])
        fovs = np.array([k.fov_y_deg for k in self.keyframes])
        times = fill_times([k.time for k in self.keyframes])
        if times is not None:
            knots = times
            if s.loop:
                knots = np.r_[times, times[-1] + (times[-1] - times[0]) / (len(times) - 1)]
        else:
            from scipy.spatial.transform import Rotation

            knots = chord_knots(c2w[:, :3, 3], Rotation.from_matrix(c2w[:, :3, :3]), fovs, s.loop)
        spline = PoseSpline.build(c2w, fovs, knots, s.tension, s.loop)
        return spline, knots[: len(self.keyframes)], times is not None

    def keyframe_params(self) -> np.ndarray:
        """Where each keyframe sits on the normalised path parameter in [0, 1] used by :meth:`evaluate`."""
        spline, key_t, timed = self._spline()
        return self._time_to_param(spline, key_t, timed)

    def evaluate(self, params: Iterable[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poses [M,4,4] (OpenCV c2w) and FoV [M] (deg) at normalised path parameters in [0, 1]."""
        spline, _, timed = self._spline()
        u = np.clip(
            np.asarray(list(params) if not isinstance(params, np.ndarray) else params, float), 0.0, 1.0
        )
        if self._exact_applies() and self.exact is not None:
            return self.exact(u.reshape(-1))
        return spline.evaluate(self._param_to_knot_time(spline, u.reshape(-1), timed))

    def _param_to_knot_time(self, spline: PoseSpline, params: np.ndarray, timed: bool) -> np.ndarray:
        if timed or not self.settings.constant_speed:
            return spline.t_start + params * (spline.t_end - spline.t_start)
        t_dense, travel = spline.travel_table()
        if travel[-1] <= 0:
            return spline.t_start + params * (spline.t_end - spline.t_start)
        return np.interp(params * travel[-1], travel, t_dense)

    def _time_to_param(self, spline: PoseSpline, t: np.ndarray, timed: bool) -> np.ndarray:
        if timed or not self.settings.constant_speed:
            return (t - spline.t_start) / (spline.t_end - spline.t_start)
        t_dense, travel = spline.travel_table()
        if travel[-1] <= 0:
            return (t - spline.t_start) / (spline.t_end - spline.t_start)
        return np.interp(t, t_dense, travel) / travel[-1]

    def frame_params(self, num_frames: int) -> np.ndarray:
        """Normalised parameters of the frames: both ends included, or the end left out for a loop."""
        n = as_positive_int(num_frames, "num_frames", MAX_CAMERA_FRAMES)
        if n == 1:
            return np.zeros(1)
        return np.arange(n) / n if self.settings.loop else np.linspace(0.0, 1.0, n)

    def sample(
        self, num_frames: int | None = None, width: int | None = None, height: int | None = None
    ) -> CameraTrajectory:
        """Per-frame cameras (defaults from the settings), intrinsics from each frame's vertical FoV."""
        s = self.settings
        n = s.num_frames if num_frames is None else num_frames
        w = s.width if width is None else width
        h = s.height if height is None else height
        c2w, fov = self.evaluate(self.frame_params(n))
        k = np.stack([intrinsics_from_vfov(float(f), int(w), int(h)) for f in fov])
        return CameraTrajectory(c2w, k, w, h, fps=s.fps, source="camera path")
