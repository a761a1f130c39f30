"""Scene graph of a procedural world: primitives with named colours and materials, ground, walls, sky.

The scene lives in its own right-handed *scene frame*: z up, ground near z = 0, metres. Rendered
outputs (points, poses) are expressed in the *world frame* of the camera presets, i.e. the OpenCV frame
of camera 0; ``Scene.anchor`` maps world coordinates to scene coordinates (it is camera 0's pose in the
scene frame), so ``scene_point = anchor @ world_point``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SHAPES: tuple[str, ...] = ("sphere", "box", "cylinder", "cone", "torus", "capsule")
SIZES: tuple[str, ...] = ("small", "medium", "large", "tall")
PATTERNS: tuple[str, ...] = ("plain", "checker", "stripes", "noise")
SETTINGS: tuple[str, ...] = ("courtyard", "room", "meadow", "desert", "snowy field")
SKIES: tuple[str, ...] = ("sunny", "overcast", "dusk")

# Shape codes used by the renderer's object-id bookkeeping and the packed tensors.
SHAPE_CODE: dict[str, int] = {name: i for i, name in enumerate(SHAPES)}


@dataclass
class SceneObject:
    """One primitive standing on the ground (or on another object).

    Dimensions by shape (metres): sphere ``radius``; box half-widths ``radius`` (x) and ``minor`` (y)
    and full ``height``; cylinder / cone ``radius`` and ``height``; torus lying flat with ring radius
    ``radius`` and tube radius ``minor``; capsule ``radius`` and total ``height`` including both caps.
    ``position`` is the centre of the object's base in the scene frame; ``yaw`` turns it about z.
    """

    shape: str
    colour: str
    rgb: tuple[float, float, float]
    size: str
    position: tuple[float, float, float]
    radius: float
    height: float
    minor: float = 0.0
    yaw: float = 0.0
    pattern: str = "plain"
    glossy: bool = False
    support: int | None = None  # index of the object this one rests on, if any

    @property
    def name(self) -> str:
        """Colour + shape, e.g. ``"red sphere"``: the key the attribute checker reports."""
        return f"{self.colour} {self.shape}"

    @property
    def centre(self) -> np.ndarray:
        """Middle of the object's bounding box in the scene frame."""
        x, y, z = self.position
        return np.array([x, y, z + 0.5 * self.height])

    @property
    def footprint(self) -> float:
        """Radius of a circle on the ground that contains the object (for placement without overlap)."""
        if self.shape == "box":
            return float(np.hypot(self.radius, self.minor))
        if self.shape == "torus":
            return self.radius + self.minor
        return self.radius

    @property
    def bounding_radius(self) -> float:
        """Radius of a sphere around :attr:`centre` that contains the object."""
        return float(np.hypot(self.footprint, 0.5 * self.height))

    @property
    def top(self) -> float:
        return self.position[2] + self.height


@dataclass
class Environment:
    """Ground and walls. ``bumps`` rows are (x, y, amplitude, sigma) Gaussians of a smooth terrain.

    ``walls`` is (half_x, half_y, height) of an open-topped enclosure centred on the scene origin, or
    None for open ground.
    """

    setting: str
    ground_rgb: tuple[float, float, float]
    ground_rgb2: tuple[float, float, float]
    ground_pattern: str
    pattern_scale: float
    bumps: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    walls: tuple[float, float, float] | None = None
    wall_rgb: tuple[float, float, float] = (0.8, 0.8, 0.8)
    wall_colour: str | None = None

    def height_at(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Terrain height (numpy) at scene-frame (x, y); zero for flat ground."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        h = np.zeros(np.broadcast(x, y).shape)
        for bx, by, amp, sigma in self.bumps:
            h = h + amp * np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2.0 * sigma**2))
        return h


@dataclass
class Lighting:
    """Sun (direction towards the sun, scene frame), ambient light and the sky gradient."""

    sky: str
    sun_dir: tuple[float, float, float]
    sun_rgb: tuple[float, float, float]
    ambient_rgb: tuple[float, float, float]
    zenith_rgb: tuple[float, float, float]
    horizon_rgb: tuple[float, float, float]
    fog_distance: float = 80.0
    sun_disc: bool = True


@dataclass
class Scene:
    """Everything needed to render one world, plus where camera 0 sits (``anchor``)."""

    objects: list[SceneObject]
    environment: Environment
    lighting: Lighting
    seed: int
    anchor: np.ndarray = field(default_factory=lambda: np.eye(4))
    target: tuple[float, float, float] = (0.0, 0.0, 0.5)

    def world_from_scene(self) -> np.ndarray:
        """4×4 mapping scene coordinates to world (camera-0 OpenCV) coordinates."""
        rot = self.anchor[:3, :3]
        out = np.eye(4)
        out[:3, :3] = rot.T
        out[:3, 3] = -rot.T @ self.anchor[:3, 3]
        return out

    def object_world_position(self, index: int) -> np.ndarray:
        """Centre of object ``index`` in the world frame (x right, y down, z forward of camera 0)."""
        m = self.world_from_scene()
        return m[:3, :3] @ self.objects[index].centre + m[:3, 3]

    def describe(self) -> list[dict[str, object]]:
        """JSON-ready list of objects (name, colour, shape, size, positions in both frames)."""
        out = []
        for i, obj in enumerate(self.objects):
            out.append(
                {
                    "id": i + 1,
                    "name": obj.name,
                    "colour": obj.colour,
                    "shape": obj.shape,
                    "size": obj.size,
                    "pattern": obj.pattern,
                    "glossy": obj.glossy,
                    "position_scene": [float(v) for v in obj.position],
                    "centre_world": [float(v) for v in self.object_world_position(i)],
                    "support": None if obj.support is None else obj.support + 1,
                }
            )
        return out
