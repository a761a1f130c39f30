"""Closest-hit and shadow queries of a whole scene for a batch of rays (scene frame, torch, any device).

Hit codes: 0 = nothing (sky), 1 = ground or terrain, 2 = wall, 3 + k = object k of ``scene.objects``.
Objects are looped over in Python (a scene has at most a dozen); all rays are processed at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fantasy_world.data import primitives as prim
from fantasy_world.data.environment import TerrainTensors, ground_plane, terrain, terrain_blocks, walls
from fantasy_world.data.scene import Scene, SceneObject

CODE_SKY, CODE_GROUND, CODE_WALL, CODE_FIRST_OBJECT = 0, 1, 2, 3


@dataclass
class TraceConfig:
    """Accuracy knobs; defaults give depth exact to float precision for analytic shapes."""

    far: float = 60.0  # hits farther than this (along the ray, metres) count as sky
    terrain_samples: int = 20
    shadow_terrain_samples: int = 8
    bisections: int = 8
    torus_steps: int = 48


@dataclass
class Hit:
    t: torch.Tensor  # [P] ray parameter (+inf on a miss)
    normal: torch.Tensor  # [P, 3] unit normal in the scene frame, facing the ray
    code: torch.Tensor  # [P] int32 hit code


class SceneTracer:
    """A scene's geometry moved to a device, ready for batched ray queries."""

    def __init__(
        self, scene: Scene, device: torch.device | str, dtype: torch.dtype, cfg: TraceConfig
    ) -> None:
        self.scene = scene
        self.device = torch.device(device)
        self.dtype = dtype
        self.cfg = cfg
        env = scene.environment
        self.terrain = None
        if len(env.bumps):
            self.terrain = TerrainTensors.build(env.bumps)
        self.rotations = [self._yaw(obj.yaw) for obj in scene.objects]
        self.offsets = [torch.tensor(obj.position, dtype=dtype, device=self.device) for obj in scene.objects]
        self.centres = [torch.as_tensor(obj.centre, dtype=dtype, device=self.device) for obj in scene.objects]

    def _yaw(self, yaw: float) -> torch.Tensor:
        c, s = math.cos(yaw), math.sin(yaw)
        return torch.tensor(
            [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=self.dtype, device=self.device
        )

    def to_local(self, k: int, p: torch.Tensor) -> torch.Tensor:
        """Scene-frame points [P, 3] → object k's local frame."""
        return (p - self.offsets[k]) @ self.rotations[k]

    def _object(self, k: int, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact hit of object k, computed only for rays that pass through its bounding sphere."""
        obj: SceneObject = self.scene.objects[k]
        t_out = torch.full_like(o[:, 0], prim.INF)
        n_out = torch.zeros_like(o)
        oc = o - self.centres[k]
        a = (d * d).sum(dim=-1)
        b = (oc * d).sum(dim=-1)
        c = (oc * oc).sum(dim=-1) - (obj.bounding_radius * 1.01 + 1e-3) ** 2
        near = (b * b - a * c >= 0) & ((b <= 0) | (c <= 0))
        idx = torch.nonzero(near).squeeze(1)
        if idx.numel() == 0:
            return t_out, n_out
        rot = self.rotations[k]
        ol, dl = (o[idx] - self.offsets[k]) @ rot, d[idx] @ rot
        if obj.shape == "sphere":
            t, n = prim.sphere(ol, dl, obj.radius)
        elif obj.shape == "box":
            t, n = prim.box(ol, dl, obj.radius, obj.minor, obj.height)
        elif obj.shape == "cylinder":
            t, n = prim.cylinder(ol, dl, obj.radius, obj.height)
        elif obj.shape == "cone":
            t, n = prim.cone(ol, dl, obj.radius, obj.height)
        elif obj.shape == "torus":
            t, n = prim.torus(ol, dl, obj.radius, obj.minor, steps=self.cfg.torus_steps)
        elif obj.shape == "capsule":
            t, n = prim.capsule(ol, dl, obj.radius, obj.height)
        else:
            raise ValueError(f"scene object {k}: unknown shape {obj.shape!r}")
        t_out[idx] = t
        n_out[idx] = n @ rot.T
        return t_out, n_out

    def _candidates(self, o: torch.Tensor, d: torch.Tensor):
        env = self.scene.environment
        if self.terrain is not None:
            yield (
                CODE_GROUND,
                terrain(o, d, self.terrain, self.cfg.far * 2, self.cfg.terrain_samples, self.cfg.bisections),
            )
        else:
            yield CODE_GROUND, ground_plane(o, d)
        if env.walls is not None:
            yield CODE_WALL, walls(o, d, *env.walls)
        for k in range(len(self.scene.objects)):
            yield CODE_FIRST_OBJECT + k, self._object(k, o, d)

    def closest(self, o: torch.Tensor, d: torch.Tensor) -> Hit:
        """Nearest surface along each ray; normals flipped to face the incoming ray."""
        best = torch.full_like(o[:, 0], prim.INF)
        normal = torch.zeros_like(o)
        code = torch.zeros(o.shape[0], dtype=torch.int32, device=o.device)
        for c, (t, n) in self._candidates(o, d):
            closer = t < best
            best = torch.where(closer, t, best)
            normal = torch.where(closer[:, None], n, normal)
            code = torch.where(closer, torch.full_like(code, c), code)
        facing = (normal * d).sum(dim=-1) > 0
        normal = torch.where(facing[:, None], -normal, normal)
        return Hit(best, normal, code)

    def occluded(self, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """[P] bool: something lies along the (shadow) ray before ``far``."""
        env = self.scene.environment
        if self.terrain is not None:
            blocked = terrain_blocks(o, d, self.terrain, self.cfg.far, self.cfg.shadow_terrain_samples)
        else:
            blocked = torch.zeros(o.shape[0], dtype=torch.bool, device=o.device)
        if env.walls is not None:
            blocked = blocked | (walls(o, d, *env.walls)[0] < self.cfg.far)
        for k in range(len(self.scene.objects)):
            blocked = blocked | (self._object(k, o, d)[0] < self.cfg.far)
        return blocked
