"""Camera placement and random camera paths for synthetic clips.

Camera 0 is put at a random azimuth and elevation looking at the middle of the objects, far enough to
frame them; its pose in the scene frame becomes ``scene.anchor``, so the world frame of every output is
camera 0's OpenCV frame, exactly as for the presets of :mod:`fantasy_world.camera`. Paths are the
project's presets with randomised parameters (scaled to the distance to the target) or keyframed
"ground orbits" and random smooth walks; a path is kept only if every camera stays above the ground,
inside the walls and outside every object, otherwise it is resampled with smaller moves.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from fantasy_world.camera.conventions import invert_pose
from fantasy_world.camera.keyframes import Keyframe, PathSettings
from fantasy_world.camera.path import CameraPath
from fantasy_world.camera.presets import look_at
from fantasy_world.camera.trajectory import CameraTrajectory
from fantasy_world.data.scene import Scene

logger = logging.getLogger(__name__)

PRESET_KINDS: tuple[str, ...] = (
    "static", "dolly_in", "dolly_out", "truck_left", "truck_right", "pedestal_up", "pedestal_down",
    "pan", "tilt", "zoom", "orbit", "arc", "spiral", "look_around",
)  # fmt: skip
CUSTOM_KINDS: tuple[str, ...] = ("ground_orbit", "random_smooth")
_DOWN = (0.0, 0.0, -1.0)  # scene frame is z up, so image "down" is -z


@dataclass
class CameraConfig:
    """Ranges for the first camera and the moves (degrees, metres)."""

    fov_range: tuple[float, float] = (40.0, 75.0)
    elevation_range: tuple[float, float] = (8.0, 35.0)
    distance_range: tuple[float, float] = (2.5, 9.0)
    clearance: float = 0.3  # minimum camera height above the ground and distance from walls
    object_margin: float = 0.2  # minimum gap between a camera and an object's bounding sphere
    kinds: tuple[str, ...] = PRESET_KINDS + CUSTOM_KINDS
    kind_weights: dict[str, float] = field(
        default_factory=lambda: {"ground_orbit": 3.0, "random_smooth": 3.0, "arc": 2.0}
    )
    max_tries: int = 8


@dataclass
class CameraSample:
    """A sampled path: the world-frame trajectory plus how it was made (for logs and metadata)."""

    trajectory: CameraTrajectory
    kind: str
    params: dict[str, float]
    target_distance: float


def _target_and_extent(scene: Scene) -> tuple[np.ndarray, float]:
    if not scene.objects:
        return np.array([0.0, 0.0, 0.5]), 1.0
    centres = np.stack([o.centre for o in scene.objects])
    target = centres.mean(axis=0)
    target[2] = max(float(target[2]), 0.3)
    extent = max(
        float(np.linalg.norm(c - target)) + o.bounding_radius for c, o in zip(centres, scene.objects)
    )
    return target, extent


def camera_positions_ok(scene: Scene, positions: np.ndarray, cfg: CameraConfig) -> bool:
    """Every scene-frame camera position is above ground, inside walls and outside objects."""
    env = scene.environment
    ground = env.height_at(positions[:, 0], positions[:, 1])
    if np.any(positions[:, 2] - ground < cfg.clearance):
        return False
    if env.walls is not None:
        hx, hy, _ = env.walls
        if np.any(np.abs(positions[:, 0]) > hx - cfg.clearance) or np.any(
            np.abs(positions[:, 1]) > hy - cfg.clearance
        ):
            return False
    for obj in scene.objects:
        if np.any(np.linalg.norm(positions - obj.centre, axis=1) < obj.bounding_radius + cfg.object_margin):
            return False
    return True


def place_first_camera(rng: np.random.Generator, scene: Scene, fov_deg: float, cfg: CameraConfig) -> float:
    """Set ``scene.anchor`` (camera 0 in the scene frame) and ``scene.target``; returns the target distance."""
    target, extent = _target_and_extent(scene)
    frame = 1.1 * extent / math.tan(math.radians(0.5 * fov_deg))
    base = float(np.clip(frame, *cfg.distance_range))
    for attempt in range(64):
        d = base * float(rng.uniform(0.9, 1.15)) * (0.92**attempt)
        d = max(d, cfg.distance_range[0] * 0.7)
        az = float(rng.uniform(0.0, 2.0 * math.pi))
        el = math.radians(float(rng.uniform(*cfg.elevation_range)))
        pos = target + d * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        if camera_positions_ok(scene, pos[None], cfg):
            break
    else:  # nothing fitted (a crowded small room): look down from above the target
        d = 3.0
        pos = target + np.array([0.0, -0.5, d])
    scene.anchor = look_at(pos, target, down=_DOWN)
    scene.target = tuple(float(v) for v in target)  # type: ignore[assignment]
    return float(np.linalg.norm(pos - target))


def _preset_params(
    rng: np.random.Generator, kind: str, d: float, height: float, fov: float, s: float
) -> dict[str, float]:
    """Random parameters for a preset; ``s`` in (0, 1] shrinks the move after a failed try."""

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    sign = 1.0 if rng.random() < 0.5 else -1.0
    p: dict[str, float] = {"fov": fov}
    if kind in ("dolly_in", "dolly_out", "truck_left", "truck_right"):
        p["distance"] = min(10.0, u(0.15, 0.5) * d * s)
    elif kind == "pedestal_up":
        p["distance"] = min(10.0, u(0.1, 0.4) * d * s)
    elif kind == "pedestal_down":
        p["distance"] = min(10.0, u(0.1, 0.5) * max(height - 0.5, 0.0) * s)
    elif kind == "pan":
        p["angle"] = sign * u(10.0, 40.0) * s
    elif kind == "tilt":
        p["angle"] = sign * u(4.0, 12.0) * s
    elif kind == "zoom":
        p["end_fov"] = float(np.clip(fov + sign * u(8.0, 20.0) * s, 25.0, 90.0))
    elif kind in ("orbit", "arc"):
        p["radius"] = min(10.0, d)
        p["angle"] = sign * u(20.0, 90.0 if kind == "orbit" else 60.0) * s
        p["height"] = u(-0.15, 0.15) * d * s
    elif kind == "spiral":
        p["radius"] = u(0.02, 0.1) * s  # the preset aims one unit past its end, so keep the circle small
        p["turns"] = u(0.5, 1.5)
        p["distance"] = min(10.0, u(0.05, 0.3) * d * s)
    elif kind == "look_around":
        p["yaw"], p["pitch"] = u(8.0, 25.0) * s, u(3.0, 10.0) * s
    return p


def _custom_keyframes(
    rng: np.random.Generator, scene: Scene, kind: str, s: float
) -> tuple[list[np.ndarray], dict[str, float]]:
    """Scene-frame keyframe poses (first = camera 0) of a ground orbit or a random smooth walk."""
    pos0 = scene.anchor[:3, 3]
    target = np.asarray(scene.target)
    d = float(np.linalg.norm(pos0 - target))
    poses = [scene.anchor.copy()]
    if kind == "ground_orbit":
        angle = (1.0 if rng.random() < 0.5 else -1.0) * float(rng.uniform(30.0, 200.0)) * s
        rise = float(rng.uniform(-0.1, 0.2)) * d * s
        n = max(1, math.ceil(abs(angle) / 30.0))
        for k in range(1, n + 1):
            phi = math.radians(angle * k / n)
            rel = pos0 - target
            rot = np.array(
                [[math.cos(phi), -math.sin(phi), 0.0], [math.sin(phi), math.cos(phi), 0.0], [0.0, 0.0, 1.0]]
            )
            pos = target + rot @ rel + np.array([0.0, 0.0, rise * k / n])
            poses.append(look_at(pos, target, down=_DOWN))
        return poses, {"angle": angle, "rise": rise}
    pos, aim = pos0.copy(), target.copy()
    for _ in range(int(rng.integers(2, 4))):
        step = rng.normal(size=3) * np.array([1.0, 1.0, 0.3])
        pos = pos + step / max(np.linalg.norm(step), 1e-9) * float(rng.uniform(0.15, 0.35)) * d * s
        aim = target + rng.normal(size=3) * 0.25 * s
        poses.append(look_at(pos, aim, down=_DOWN))
    return poses, {"keyframes": float(len(poses))}


def sample_camera_path(
    rng: np.random.Generator,
    scene: Scene,
    num_frames: int,
    width: int,
    height: int,
    cfg: CameraConfig | None = None,
) -> CameraSample:
    """Place camera 0 (sets ``scene.anchor``) and sample a valid moving path of ``num_frames`` cameras."""
    cfg = cfg or CameraConfig()
    fov = float(rng.uniform(*cfg.fov_range))
    d = place_first_camera(rng, scene, fov, cfg)
    cam_height = float(
        scene.anchor[2, 3] - scene.environment.height_at(scene.anchor[0, 3], scene.anchor[1, 3])
    )
    weights = np.array([cfg.kind_weights.get(k, 1.0) for k in cfg.kinds])
    kind = cfg.kinds[int(rng.choice(len(cfg.kinds), p=weights / weights.sum()))]
    world_from_scene = invert_pose(scene.anchor)
    for attempt in range(cfg.max_tries):
        s = 0.7**attempt
        if kind in CUSTOM_KINDS:
            poses, params = _custom_keyframes(rng, scene, kind, s)
            kfs = [Keyframe(np.eye(4), fov)] + [Keyframe(world_from_scene @ p, fov) for p in poses[1:]]
            path = CameraPath(kfs, PathSettings(num_frames=num_frames, width=width, height=height))
        else:
            params = _preset_params(rng, kind, d, cam_height, fov, s)
            path = CameraPath.preset(kind, num_frames=num_frames, **params)
        traj = path.sample(num_frames, width, height)
        positions = (scene.anchor[None] @ traj.c2w)[:, :3, 3]
        if camera_positions_ok(scene, positions, cfg):
            return CameraSample(traj, kind, params, d)
        logger.debug(
            "seed %d: %s path attempt %d leaves the free space; shrinking", scene.seed, kind, attempt
        )
    traj = CameraPath.preset("static", num_frames=num_frames, fov=fov).sample(num_frames, width, height)
    return CameraSample(traj, "static", {"fov": fov}, d)
