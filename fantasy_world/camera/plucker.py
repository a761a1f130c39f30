"""Per-pixel Plücker ray maps (o × d, d) that condition the video model on the camera path.

Two variants:

* correct (default): pixel (i, j) has its centre at (i, j) — the same integer-centre convention as
  ``conventions.default_principal_point`` — so the centre pixel's ray is the optical axis and rays
  span the image.
* ``official_double_scaled=True`` reproduces the official FantasyWorld builder (the official
  ``get_plucker_embedding_direct_from_cam_params``). Our reading of that chain: the pose encoding is
  decoded to pixel intrinsics with the focal lengths preserved (FoV round trip) and the principal
  point at (W/2, H/2); those pixel values are then treated as normalised and multiplied by W (fx, cx)
  and H (fy, cy) again; the CameraCtrl-style grid samples pixel centres at i + 0.5. Every ray then
  nearly equals the correct build's top-left corner ray (variation ≈ 1/f per component), so the map
  carries the pose but almost no per-pixel geometry. Use it only to match the official weights.
"""

from __future__ import annotations

import numpy as np
import torch

from fantasy_world.errors import InputError


def _as_tensor(x: np.ndarray | torch.Tensor, name: str, device: torch.device | None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device if device is not None else x.device, dtype=torch.float64)
    try:
        return torch.as_tensor(np.array(x, dtype=np.float64), device=device)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a numeric array") from None


def _rigid_inverse(pose: torch.Tensor) -> torch.Tensor:
    rot_t = pose[..., :3, :3].transpose(-1, -2)
    out = torch.zeros_like(pose)
    out[..., :3, :3] = rot_t
    out[..., :3, 3:] = -rot_t @ pose[..., :3, 3:]
    out[..., 3, 3] = 1.0
    return out


def plucker_rays(
    c2w: np.ndarray | torch.Tensor,
    intrinsics: np.ndarray | torch.Tensor,
    height: int,
    width: int,
    relative_to_first: bool = True,
    official_double_scaled: bool = False,
    pixel_offset: float | None = None,
) -> torch.Tensor:
    """[N, H, W, 6] float32 ray maps (moment o × d first, then unit direction d).

    ``c2w`` [N,4,4] OpenCV camera-to-world; ``intrinsics`` [N,3,3] or [3,3] in pixels. With
    ``relative_to_first`` the rays are expressed in the first camera's frame (frame 0 = identity, so
    its moments are zero). ``pixel_offset`` overrides where pixel centres sit (default 0 for the correct
    variant, 0.5 for the official one). Computed in float64, on the input tensor's device.
    """
    device = c2w.device if isinstance(c2w, torch.Tensor) else None
    poses = _as_tensor(c2w, "c2w", device)
    k = _as_tensor(intrinsics, "intrinsics", poses.device)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or poses.shape[0] < 1:
        raise InputError(f"c2w: shape {tuple(poses.shape)}; expected [N, 4, 4]")
    n = poses.shape[0]
    if k.shape == (3, 3):
        k = k.expand(n, 3, 3)
    if k.shape != (n, 3, 3):
        raise InputError(f"intrinsics: shape {tuple(k.shape)}; expected [{n}, 3, 3] or [3, 3]")
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16_384:
            raise InputError(f"{name}={value!r}: expected an integer from 1 to 16384")
    if not bool(torch.isfinite(poses).all()) or not bool(torch.isfinite(k).all()):
        raise InputError("c2w / intrinsics: contain NaN or infinity; expected finite values")
    fx, fy = k[:, 0, 0].clone(), k[:, 1, 1].clone()
    if bool((fx <= 0).any()) or bool((fy <= 0).any()):
        raise InputError("intrinsics: expected positive focal lengths")
    cx, cy = k[:, 0, 2].clone(), k[:, 1, 2].clone()
    if official_double_scaled:
        cx = torch.full_like(cx, width / 2.0)
        cy = torch.full_like(cy, height / 2.0)
        fx, cx = fx * width, cx * width
        fy, cy = fy * height, cy * height
    offset = (0.5 if official_double_scaled else 0.0) if pixel_offset is None else float(pixel_offset)
    if relative_to_first:
        poses = _rigid_inverse(poses[0]).unsqueeze(0) @ poses

    u = torch.arange(width, dtype=torch.float64, device=poses.device) + offset
    v = torch.arange(height, dtype=torch.float64, device=poses.device) + offset
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    rot = poses[:, :3, :3]
    # (o × d, d) is linear in the camera-frame direction: d = R d_cam and o × d = [o]× R d_cam, so one
    # [3, 6] matrix per frame maps unit camera rays to the whole Plücker vector.
    o = poses[:, :3, 3]
    skew = torch.zeros((n, 3, 3), dtype=torch.float64, device=poses.device)
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -o[:, 2], o[:, 1], -o[:, 0]
    skew = skew - skew.transpose(1, 2)
    maps = torch.cat([skew @ rot, rot], dim=1).transpose(1, 2)  # [N, 3, 6]
    maps = maps.to(torch.float32)
    out = torch.empty((n, height * width, 6), dtype=torch.float32, device=poses.device)
    start = 0
    while start < n:  # frames sharing intrinsics share one grid of camera rays
        stop = start + 1
        while stop < n and _same_intrinsics(fx, fy, cx, cy, stop):
            stop += 1
        d_cam = torch.stack(
            [(uu - cx[start]) / fx[start], (vv - cy[start]) / fy[start], torch.ones_like(uu)], -1
        )
        d_cam = (d_cam / torch.linalg.norm(d_cam, dim=-1, keepdim=True)).reshape(1, -1, 3).to(torch.float32)
        torch.matmul(d_cam, maps[start:stop], out=out[start:stop])
        start = stop
    return out.view(n, height, width, 6)


def _same_intrinsics(fx: torch.Tensor, fy: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, i: int) -> bool:
    return bool(fx[i] == fx[i - 1] and fy[i] == fy[i - 1] and cx[i] == cx[i - 1] and cy[i] == cy[i - 1])
