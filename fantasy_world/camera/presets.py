"""Named camera moves with slider-ready parameters.

Every preset starts at the identity pose (first camera at the origin looking along +z, OpenCV:
x right, y down) and measures distances in scene units, where 1 ≈ the mean distance of what the first
frame sees (the pipeline normalises scale that way). Each returns ordinary editable keyframes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fantasy_world.camera.keyframes import DEFAULT_FOV_DEG, Keyframe, PathSettings
from fantasy_world.camera.path import CameraPath
from fantasy_world.errors import InputError

# Keyframe spacing of turning moves. Keyframes are handles to edit, not samples: a full orbit gets 8
# (7 arcs plus the closing one on the start) and a spiral 4 per turn. Until a keyframe is edited the
# path is sampled from the exact move (``CameraPath.exact``), so sparse handles cost no precision.
_MAX_KEY_TURN_DEG = 52.0
_MAX_SPIRAL_KEY_TURN_DEG = 90.0


@dataclass(frozen=True)
class PresetParam:
    """One slider: name, default, range and what it does."""

    name: str
    default: float
    minimum: float
    maximum: float
    description: str
    unit: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "default": self.default,
            "min": self.minimum,
            "max": self.maximum,
            "description": self.description,
            "unit": self.unit,
        }


@dataclass(frozen=True)
class PresetSpec:
    """``build`` gives the keyframes; turning moves also give ``at`` (the exact pose at path parameters
    u in [0, 1]) and ``turn`` (degrees turned), from which the keyframe count follows."""

    name: str
    description: str
    params: tuple[PresetParam, ...]
    build: Callable[[dict[str, float]], list[Keyframe]]
    at: Callable[[dict[str, float], np.ndarray], list[Keyframe]] | None = None
    turn: Callable[[dict[str, float]], float] | None = None
    key_turn_deg: float = _MAX_KEY_TURN_DEG

    def keyframes(self, values: dict[str, float], num_frames: int) -> list[Keyframe]:
        """Sparse keyframes: one per ``key_turn_deg`` of turning, never more than ``num_frames``."""
        if self.at is None or self.turn is None:
            return self.build(values)
        return self.at(
            values, np.linspace(0.0, 1.0, _segments(self.turn(values), self.key_turn_deg, num_frames) + 1)
        )

    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.params}

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "params": [p.as_dict() for p in self.params],
        }


# ---------------------------------------------------------------------------------------- geometry
def rot_y(deg: float) -> np.ndarray:
    """Turn about the camera's vertical axis; positive looks right (OpenCV, y down)."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_x(deg: float) -> np.ndarray:
    """Turn about the camera's horizontal axis; positive looks up (OpenCV, y down)."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def pose(
    rot: np.ndarray | None = None, pos: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 0.0)
) -> np.ndarray:
    out = np.eye(4)
    if rot is not None:
        out[:3, :3] = rot
    out[:3, 3] = pos
    return out


def look_at(
    position: np.ndarray, target: np.ndarray, down: tuple[float, float, float] = (0.0, 1.0, 0.0)
) -> np.ndarray:
    """OpenCV c2w at ``position`` looking at ``target`` with the image's y axis along world ``down``."""
    z = np.asarray(target, float) - np.asarray(position, float)
    z /= np.linalg.norm(z)
    x = np.cross(np.asarray(down, float), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return pose(np.stack([x, y, z], axis=1), position)


def _segments(turn_deg: float, key_turn_deg: float, num_frames: int) -> int:
    """Arcs between keyframes: at most ``key_turn_deg`` each, and at most ``num_frames - 1`` of them."""
    wanted = max(1, math.ceil(abs(turn_deg) / key_turn_deg - 1e-9))
    return max(1, min(wanted, num_frames - 1))


# ----------------------------------------------------------------------------------------- presets
def _static(p: dict[str, float]) -> list[Keyframe]:
    return [Keyframe(pose(), p["fov"]), Keyframe(pose(), p["fov"])]


def _translate(direction: tuple[float, float, float]) -> Callable[[dict[str, float]], list[Keyframe]]:
    def build(p: dict[str, float]) -> list[Keyframe]:
        end = np.asarray(direction, float) * p["distance"]
        return [Keyframe(pose(), p["fov"]), Keyframe(pose(pos=end), p["fov"])]

    return build


def _turn_at(axis: str) -> Callable[[dict[str, float], np.ndarray], list[Keyframe]]:
    rot = rot_y if axis == "y" else rot_x

    def at(p: dict[str, float], u: np.ndarray) -> list[Keyframe]:
        return [Keyframe(pose(rot(p["angle"] * float(t))), p["fov"]) for t in u]

    return at


def _zoom(p: dict[str, float]) -> list[Keyframe]:
    return [Keyframe(pose(), p["fov"]), Keyframe(pose(), p["end_fov"])]


def _orbit_at(p: dict[str, float], u: np.ndarray) -> list[Keyframe]:
    """Circle a target ``radius`` ahead; positive angles move the camera right, ``height`` raises it."""
    r, angle = p["radius"], p["angle"]
    target = np.array([0.0, 0.0, r])
    kfs = []
    for t in u:
        phi = math.radians(angle * float(t))
        pos = target + r * np.array([math.sin(phi), 0.0, -math.cos(phi)])
        pos[1] -= p["height"] * float(t)  # up is -y in OpenCV
        kfs.append(Keyframe(look_at(pos, target) if t > 0 else pose(), p["fov"]))
    return kfs


def _spiral_at(p: dict[str, float], u: np.ndarray) -> list[Keyframe]:
    """Circle of ``radius`` in the image plane through the start, advancing ``distance``, aimed ahead."""
    r, turns, dist = p["radius"], p["turns"], p["distance"]
    target = np.array([0.0, 0.0, dist + 1.0])
    kfs = []
    for t in u:
        theta = 2.0 * math.pi * turns * float(t)
        pos = np.array([r * (math.cos(theta) - 1.0), -r * math.sin(theta), dist * float(t)])
        kfs.append(Keyframe(look_at(pos, target) if t > 0 else pose(), p["fov"]))
    return kfs


def _turning(
    name: str,
    description: str,
    params: tuple[PresetParam, ...],
    at: Callable[[dict[str, float], np.ndarray], list[Keyframe]],
    turn: Callable[[dict[str, float]], float],
    key_turn_deg: float = _MAX_KEY_TURN_DEG,
) -> PresetSpec:
    """A preset whose keyframes are sparse samples of an exact move."""

    def build(p: dict[str, float]) -> list[Keyframe]:
        return at(p, np.linspace(0.0, 1.0, _segments(turn(p), key_turn_deg, 10**6) + 1))

    return PresetSpec(name, description, params, build, at, turn, key_turn_deg)


def _look_around(p: dict[str, float]) -> list[Keyframe]:
    """Stay in place and glance left, up, right, then back to the start."""
    yaw, pitch = p["yaw"], p["pitch"]
    views = [(0.0, 0.0), (-yaw, 0.0), (0.0, pitch), (yaw, 0.0), (0.0, 0.0)]
    return [Keyframe(pose(rot_y(a) @ rot_x(b)), p["fov"]) for a, b in views]


def _angle(p: dict[str, float]) -> float:
    return p["angle"]


def _fov_param(default: float = DEFAULT_FOV_DEG) -> PresetParam:
    return PresetParam("fov", default, 10.0, 120.0, "vertical field of view", "deg")


def _dist_param(default: float, what: str) -> PresetParam:
    return PresetParam("distance", default, 0.0, 10.0, what, "scene units")


PRESETS: dict[str, PresetSpec] = {
    spec.name: spec
    for spec in [
        PresetSpec("static", "camera does not move", (_fov_param(),), _static),
        PresetSpec("dolly_in", "move forward (+z)", (_dist_param(0.5, "how far to move forward"), _fov_param()), _translate((0, 0, 1))),
        PresetSpec("dolly_out", "move backward (-z)", (_dist_param(0.5, "how far to move back"), _fov_param()), _translate((0, 0, -1))),
        PresetSpec("truck_left", "slide left (-x)", (_dist_param(0.5, "how far to slide left"), _fov_param()), _translate((-1, 0, 0))),
        PresetSpec("truck_right", "slide right (+x)", (_dist_param(0.5, "how far to slide right"), _fov_param()), _translate((1, 0, 0))),
        PresetSpec("pedestal_up", "rise (-y, OpenCV y points down)", (_dist_param(0.3, "how far to rise"), _fov_param()), _translate((0, -1, 0))),
        PresetSpec("pedestal_down", "sink (+y)", (_dist_param(0.3, "how far to sink"), _fov_param()), _translate((0, 1, 0))),
        _turning(
            "pan", "turn left or right in place (about the camera's y axis)",
            (PresetParam("angle", 30.0, -360.0, 360.0, "turn angle, positive = right", "deg"), _fov_param()),
            _turn_at("y"), _angle,
        ),
        _turning(
            "tilt", "turn up or down in place (about the camera's x axis)",
            (PresetParam("angle", 15.0, -89.0, 89.0, "tilt angle, positive = up", "deg"), _fov_param()),
            _turn_at("x"), _angle,
        ),
        PresetSpec(
            "zoom", "change the field of view only (smaller end FoV zooms in)",
            (_fov_param(), PresetParam("end_fov", 35.0, 10.0, 120.0, "field of view at the end", "deg")),
            _zoom,
        ),
        _turning(
            "orbit", "circle around a point ahead, always facing it",
            (
                PresetParam("radius", 1.0, 0.05, 10.0, "distance to the orbit centre ahead", "scene units"),
                PresetParam("angle", 360.0, -720.0, 720.0, "orbit angle, positive moves right", "deg"),
                PresetParam("height", 0.0, -2.0, 2.0, "rise over the move (positive = up)", "scene units"),
                _fov_param(),
            ),
            _orbit_at, _angle,
        ),
        _turning(
            "arc", "partial orbit around a point ahead",
            (
                PresetParam("radius", 1.0, 0.05, 10.0, "distance to the arc centre ahead", "scene units"),
                PresetParam("angle", 60.0, -180.0, 180.0, "arc angle, positive moves right", "deg"),
                PresetParam("height", 0.0, -2.0, 2.0, "rise over the move (positive = up)", "scene units"),
                _fov_param(),
            ),
            _orbit_at, _angle,
        ),
        _turning(
            "spiral", "circle in the image plane while moving forward, aimed ahead",
            (
                PresetParam("radius", 0.2, 0.01, 2.0, "circle radius", "scene units"),
                PresetParam("turns", 1.0, 0.25, 5.0, "number of circles", ""),
                _dist_param(0.5, "how far to move forward"),
                _fov_param(),
            ),
            _spiral_at, lambda p: 360.0 * p["turns"], _MAX_SPIRAL_KEY_TURN_DEG,
        ),
        PresetSpec(
            "look_around", "stay in place and glance left, up, right and back",
            (
                PresetParam("yaw", 20.0, 0.0, 90.0, "how far to look left and right", "deg"),
                PresetParam("pitch", 10.0, 0.0, 60.0, "how far to look up", "deg"),
                _fov_param(),
            ),
            _look_around,
        ),
    ]
}  # fmt: skip


def normalize_preset_name(name: str) -> str:
    """'Dolly-In', 'dolly in' and 'dolly_in' all name the same preset."""
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def describe_presets() -> list[dict[str, object]]:
    """JSON-ready list of presets and their parameters (the app builds its sliders from it)."""
    return [spec.as_dict() for spec in PRESETS.values()]


def build_preset(name: str, num_frames: int = 33, **params: object) -> CameraPath:
    key = normalize_preset_name(name)
    spec = PRESETS.get(key)
    if spec is None:
        raise InputError(f"camera preset {name!r}: unknown; expected one of {', '.join(PRESETS)}")
    values = spec.defaults()
    ranges = {p.name: p for p in spec.params}
    for pname, value in params.items():
        if pname not in ranges:
            raise InputError(
                f"preset {key}: unknown parameter {pname!r}; expected one of {', '.join(ranges)}"
            )
        p = ranges[pname]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(
                f"preset {key}: {pname}={value!r}; expected a number from {p.minimum} to {p.maximum}"
            )
        if not p.minimum <= value <= p.maximum:
            raise InputError(
                f"preset {key}: {pname}={value!r}; expected a number from {p.minimum} to {p.maximum}"
            )
        values[pname] = float(value)
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise InputError(f"num_frames={num_frames!r}: expected a positive integer")
    path = CameraPath(spec.keyframes(values, num_frames), PathSettings(num_frames=num_frames))
    path.preset_name, path.preset_params = key, values
    if spec.at is not None:
        path.exact = ExactMove(key, tuple(sorted(values.items())))
    return path


@dataclass(frozen=True)
class ExactMove:
    """The exact poses of a turning preset at path parameters u in [0, 1]: c2w [M,4,4] and FoV [M].

    A plain class, not a closure, so paths that carry it still copy and pickle."""

    name: str
    values: tuple[tuple[str, float], ...]

    def __call__(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        at = PRESETS[self.name].at
        if at is None:
            raise InputError(f"camera preset {self.name!r}: has no exact move")
        kfs = at(dict(self.values), np.asarray(u, dtype=np.float64).reshape(-1))
        return np.stack([k.c2w for k in kfs]), np.array([k.fov_y_deg for k in kfs])
