"""Sampling a random scene graph from a numpy Generator (objects, setting, sky), deterministically.

Only the Generator passed in is used (never a global RNG), so the same seed gives the same scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fantasy_world.data.palette import COLOUR_NAMES, PALETTE
from fantasy_world.data.scene import SETTINGS, SHAPES, SKIES, Environment, Lighting, Scene, SceneObject

WALL_COLOURS: dict[str, tuple[float, float, float]] = {
    "white": (0.86, 0.86, 0.84),
    "beige": (0.82, 0.75, 0.62),
    "pale blue": (0.62, 0.72, 0.84),
    "pale green": (0.66, 0.78, 0.64),
    "terracotta": (0.76, 0.45, 0.32),
}


@dataclass
class SceneConfig:
    """Ranges of the scene sampler (metres, degrees)."""

    min_objects: int = 1
    max_objects: int = 6
    placement_radius: tuple[float, float] = (1.8, 3.2)
    duplicate_prob: float = 0.2  # repeat the previous object's colour and shape, so captions get counts
    stack_prob: float = 0.2  # put a small object on top of a box
    glossy_prob: float = 0.4
    settings: tuple[str, ...] = SETTINGS
    skies: tuple[str, ...] = SKIES


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def sample_lighting(rng: np.random.Generator, sky: str) -> Lighting:
    """Sun direction and sky colours for a sky type; the lit side of a surface reaches about 1.0."""
    azimuth = _uniform(rng, 0.0, 2.0 * math.pi)
    if sky == "sunny":
        elev = _uniform(rng, 30.0, 65.0)
        sun, amb = (0.66, 0.64, 0.60), (0.44, 0.46, 0.50)
        zenith, horizon, disc = (0.22, 0.42, 0.85), (0.68, 0.80, 0.95), True
    elif sky == "overcast":
        elev = _uniform(rng, 45.0, 80.0)
        sun, amb = (0.32, 0.32, 0.32), (0.66, 0.66, 0.68)
        zenith, horizon, disc = (0.60, 0.62, 0.66), (0.80, 0.81, 0.83), False
    else:  # dusk
        elev = _uniform(rng, 14.0, 26.0)
        sun, amb = (0.70, 0.64, 0.54), (0.42, 0.41, 0.46)
        zenith, horizon, disc = (0.20, 0.22, 0.46), (0.96, 0.62, 0.38), True
    e, a = math.radians(elev), azimuth
    sun_dir = (math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e))
    return Lighting(
        sky, sun_dir, sun, amb, zenith, horizon, fog_distance=_uniform(rng, 60.0, 120.0), sun_disc=disc
    )


def sample_environment(rng: np.random.Generator, setting: str) -> Environment:
    """Ground material, terrain bumps or walls for a named setting."""
    if setting == "courtyard":
        half = _uniform(rng, 7.0, 9.0)
        walls = (half, half * _uniform(rng, 0.85, 1.15), _uniform(rng, 1.0, 1.6))
        return Environment(
            setting,
            (0.64, 0.60, 0.54),
            (0.52, 0.49, 0.44),
            "checker",
            _uniform(rng, 0.8, 1.2),
            walls=walls,
            wall_rgb=(0.78, 0.70, 0.56),
            wall_colour="sandstone",
        )
    if setting == "room":
        half = _uniform(rng, 6.0, 7.5)
        walls = (half, half * _uniform(rng, 0.85, 1.15), _uniform(rng, 2.6, 3.4))
        name = list(WALL_COLOURS)[int(rng.integers(len(WALL_COLOURS)))]
        return Environment(
            setting,
            (0.56, 0.39, 0.23),
            (0.46, 0.30, 0.17),
            "stripes",
            _uniform(rng, 2.5, 3.5),
            walls=walls,
            wall_rgb=WALL_COLOURS[name],
            wall_colour=name,
        )
    amp_range = {"meadow": (0.2, 0.7), "desert": (0.4, 1.4), "snowy field": (0.2, 0.6)}[setting]
    colours = {
        "meadow": ((0.30, 0.52, 0.20), (0.22, 0.40, 0.14)),
        "desert": ((0.86, 0.74, 0.52), (0.78, 0.65, 0.43)),
        "snowy field": ((0.93, 0.94, 0.97), (0.84, 0.86, 0.91)),
    }[setting]
    n = int(rng.integers(3, 7))
    bumps = np.zeros((n, 4))
    for i in range(n):
        r, a = _uniform(rng, 3.0, 14.0), _uniform(rng, 0.0, 2.0 * math.pi)
        sign = 1.0 if rng.random() < 0.75 else -0.5
        bumps[i] = (
            r * math.cos(a),
            r * math.sin(a),
            sign * _uniform(rng, *amp_range),
            _uniform(rng, 2.5, 6.0),
        )
    return Environment(setting, colours[0], colours[1], "noise", _uniform(rng, 1.5, 3.0), bumps=bumps)


def _dimensions(rng: np.random.Generator, shape: str, size: str) -> tuple[float, float, float]:
    """(radius, height, minor) for a shape and size class; see :class:`SceneObject`."""
    s = {"small": (0.22, 0.34), "medium": (0.38, 0.55), "large": (0.65, 0.9), "tall": (0.28, 0.42)}[size]
    r = _uniform(rng, *s)
    tall = size == "tall"
    if shape == "sphere":
        return r, 2.0 * r, 0.0
    if shape == "box":
        hx, hy = r * _uniform(rng, 0.8, 1.2), r * _uniform(rng, 0.8, 1.2)
        return hx, (5.0 if tall else 2.0) * r * _uniform(rng, 0.85, 1.15), hy
    if shape == "cylinder":
        return 0.8 * r, (5.0 if tall else 2.0) * r, 0.0
    if shape == "cone":
        return r, (4.5 if tall else 2.2) * r, 0.0
    if shape == "torus":
        tube = 0.32 * r
        return 1.1 * r, 2.0 * tube, tube
    return 0.6 * r, (5.5 if tall else 3.0) * r, 0.0  # capsule


def _sample_size(rng: np.random.Generator, shape: str) -> str:
    sizes = ["small", "medium", "large"] + (
        ["tall"] if shape in ("box", "cylinder", "cone", "capsule") else []
    )
    return sizes[int(rng.integers(len(sizes)))]


def _sample_object(rng: np.random.Generator, cfg: SceneConfig, prev: SceneObject | None) -> SceneObject:
    if prev is not None and rng.random() < cfg.duplicate_prob:
        shape, colour = prev.shape, prev.colour
    else:
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
    size = _sample_size(rng, shape)
    radius, height, minor = _dimensions(rng, shape, size)
    base = np.asarray(PALETTE[colour])
    rgb = tuple(float(v) for v in np.clip(base + rng.uniform(-0.03, 0.03, 3), 0.0, 1.0))
    u = rng.random()
    pattern = "plain" if u < 0.5 else "checker" if u < 0.65 else "stripes" if u < 0.8 else "noise"
    return SceneObject(
        shape=shape,
        colour=colour,
        rgb=rgb,  # type: ignore[arg-type]
        size=size,
        position=(0.0, 0.0, 0.0),
        radius=radius,
        height=height,
        minor=minor,
        yaw=_uniform(rng, 0.0, 2.0 * math.pi),
        pattern=pattern,
        glossy=bool(rng.random() < cfg.glossy_prob),
    )


def _ground_base(env: Environment, x: float, y: float, footprint: float) -> float:
    """Lowest terrain height under the footprint, a little sunk so nothing floats on a slope."""
    ang = np.linspace(0.0, 2.0 * math.pi, 8, endpoint=False)
    xs = np.r_[x, x + footprint * np.cos(ang)]
    ys = np.r_[y, y + footprint * np.sin(ang)]
    return float(env.height_at(xs, ys).min()) - (0.02 if len(env.bumps) else 0.0)


def _try_stack(rng: np.random.Generator, obj: SceneObject, placed: list[SceneObject]) -> bool:
    """Rest ``obj`` on a box that is wide enough for it; True on success."""
    if obj.shape in ("torus",) or obj.size in ("large", "tall"):
        return False
    boxes = [i for i, o in enumerate(placed) if o.shape == "box" and o.support is None]
    boxes = [i for i in boxes if min(placed[i].radius, placed[i].minor) > obj.footprint * 0.9]
    if not boxes:
        return False
    i = boxes[int(rng.integers(len(boxes)))]
    if any(o.support == i for o in placed):
        return False
    box = placed[i]
    obj.position = (box.position[0], box.position[1], box.top)
    obj.support = i
    return True


def place_objects(
    rng: np.random.Generator, objs: list[SceneObject], env: Environment, cfg: SceneConfig
) -> list[SceneObject]:
    """Put objects on the ground without overlaps (or on top of boxes); drop any that do not fit."""
    placed: list[SceneObject] = []
    radius = _uniform(rng, *cfg.placement_radius)
    for obj in objs:
        if placed and rng.random() < cfg.stack_prob and _try_stack(rng, obj, placed):
            placed.append(obj)
            continue
        for _ in range(60):
            r = radius * math.sqrt(rng.random())
            a = _uniform(rng, 0.0, 2.0 * math.pi)
            x, y = r * math.cos(a), r * math.sin(a)
            if all(
                math.hypot(x - o.position[0], y - o.position[1]) > o.footprint + obj.footprint + 0.25
                for o in placed
            ):
                obj.position = (x, y, _ground_base(env, x, y, obj.footprint))
                placed.append(obj)
                break
    return placed


def sample_scene(rng: np.random.Generator, seed: int, cfg: SceneConfig | None = None) -> Scene:
    """A random scene: setting, sky, and 1–6 placed objects (``anchor`` is set by the camera sampler)."""
    cfg = cfg or SceneConfig()
    setting = cfg.settings[int(rng.integers(len(cfg.settings)))]
    sky = cfg.skies[int(rng.integers(len(cfg.skies)))]
    env = sample_environment(rng, setting)
    lighting = sample_lighting(rng, sky)
    count = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    objs: list[SceneObject] = []
    for _ in range(count):
        objs.append(_sample_object(rng, cfg, objs[-1] if objs else None))
    placed = place_objects(rng, objs, env, cfg)
    return Scene(objects=placed, environment=env, lighting=lighting, seed=int(seed))
