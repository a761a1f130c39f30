"""Heads' output (torch, batch of one) → named numpy arrays, with the first predicted camera at the identity.

Why a module of its own: the pipeline reads geometry at the last step and at every preview step, and
reconstruction reads it once; each must get the same arrays, named, never a positional tuple.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fantasy_world.limits import PREDICTED_FOV_DEG
from fantasy_world.models.fantasy.model import GeometryOutput
from fantasy_world.models.fantasy.pose_encoding import pose_encoding_to_extri_intri
from fantasy_world.utils.host_copy import to_numpy


@dataclass
class PredictedGeometry:
    """Depth, points and cameras of one video as the heads predicted them (float32 numpy)."""

    depths: np.ndarray  # [N, H, W]
    depth_conf: np.ndarray  # [N, H, W]
    points: np.ndarray  # [N, H, W, 3] world (first predicted camera = identity)
    points_conf: np.ndarray  # [N, H, W]
    cam_c2w: np.ndarray  # [N, 4, 4]
    intrinsics: np.ndarray  # [N, 3, 3] pixels


def read_geometry(geometry: GeometryOutput, height: int, width: int) -> PredictedGeometry:
    """The heads' output for batch item 0, re-expressed in the first predicted camera's frame.

    The official exporter overwrites camera 0 with the identity; we instead re-express every camera
    and every point in camera 0's frame, which keeps the relative poses the model predicted.
    """
    pose_enc = torch.nan_to_num(geometry.pose_enc[0].float(), nan=0.0, posinf=0.0, neginf=0.0)
    # A FoV of 0 (ReLU output) would give an infinite focal length; keep decoded cameras physical.
    low, high = PREDICTED_FOV_DEG
    fov = pose_enc[..., 7:9].clamp(math.radians(low), math.radians(high))
    pose_enc = torch.cat([pose_enc[..., :7], fov], dim=-1)
    w2c, k = pose_encoding_to_extri_intri(pose_enc, (height, width))
    w2c44 = torch.eye(4, dtype=torch.float64).repeat(w2c.shape[0], 1, 1)
    w2c44[:, :3, :4] = w2c.double().cpu()
    c2w = torch.linalg.inv(w2c44)
    to_first = w2c44[0]
    c2w = to_first @ c2w
    return PredictedGeometry(
        depths=to_numpy(geometry.depth[0].float()),
        depth_conf=to_numpy(geometry.depth_conf[0].float()),
        points=_to_first_camera(geometry.world_points[0], to_first),
        points_conf=to_numpy(geometry.world_points_conf[0].float()),
        cam_c2w=c2w.float().numpy(),
        intrinsics=k.float().cpu().numpy(),
    )


def _to_first_camera(points: torch.Tensor, to_first: torch.Tensor, chunk: int = 16) -> np.ndarray:
    """``points`` [N, H, W, 3] mapped by the float64 rigid transform ``to_first`` into float32 numpy.

    Why on the points' own device, a few frames at a time: at 81×336×592 the float64 product on the host
    and the 386 MB float64 copy off the card took ~0.4 s on the H200 host; here the card does the float64
    arithmetic in bounded chunks and only the float32 result crosses, through pinned memory.
    """
    rot = to_first[:3, :3].T.to(points.device)
    shift = to_first[:3, 3].to(points.device)
    out = torch.empty(points.shape, dtype=torch.float32, device=points.device)
    for start in range(0, points.shape[0], chunk):
        out[start : start + chunk] = points[start : start + chunk].double() @ rot + shift
    return to_numpy(out)
