"""VGGT's 9-d ``absT_quaR_FoV`` camera encoding and quaternion helpers (torch, batched).

Encoding = [T (3) | quaternion xyzw (4) | fov_h | fov_w] of a world-to-camera OpenCV extrinsic [R | T],
with fov_h = 2·atan(H / 2 / fy) and fov_w = 2·atan(W / 2 / fx). Decoding rebuilds a pinhole with the
principal point at (W/2, H/2), as VGGT does (the camera JSON reader uses (W−1)/2, (H−1)/2 instead; the
encoding does not carry the principal point).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def standardize_quaternion(quat: torch.Tensor) -> torch.Tensor:
    """Pick the sign with a non-negative real part (xyzw: the last component); q and −q are one rotation."""
    return torch.where(quat[..., 3:4] < 0, -quat, quat)


def quat_to_matrix(quat: torch.Tensor) -> torch.Tensor:
    """xyzw quaternions [..., 4] (any non-zero norm: normalised implicitly) → rotations [..., 3, 3]."""
    x, y, z, w = quat.unbind(-1)
    two_s = 2.0 / (quat * quat).sum(-1)
    rows = (
        1 - two_s * (y * y + z * z),
        two_s * (x * y - z * w),
        two_s * (x * z + y * w),
        two_s * (x * y + z * w),
        1 - two_s * (x * x + z * z),
        two_s * (y * z - x * w),
        two_s * (x * z - y * w),
        two_s * (y * z + x * w),
        1 - two_s * (x * x + y * y),
    )
    return torch.stack(rows, -1).reshape(quat.shape[:-1] + (3, 3))


def matrix_to_quat(matrix: torch.Tensor) -> torch.Tensor:
    """Rotations [..., 3, 3] → unit xyzw quaternions [..., 4] with w ≥ 0.

    Of the four algebraically equal candidates (each divided by one of 2|w|, 2|x|, 2|y|, 2|z|), the one
    with the largest denominator is taken, which stays accurate near 180° rotations.
    """
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"expected [..., 3, 3] rotations, got {tuple(matrix.shape)}")
    m = matrix.reshape(matrix.shape[:-2] + (9,)).unbind(-1)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m
    sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    # sqrt of the positive part, with a finite (zero) gradient where the argument is not positive
    q_abs = torch.where(sq > 0, torch.sqrt(sq.clamp(min=torch.finfo(sq.dtype).tiny)), torch.zeros_like(sq))
    # rows: candidates scaled by w, x, y, z; columns in (w, x, y, z) order
    cands = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], -1),
            torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], -1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], -1),
        ],
        -2,
    )
    cands = cands / (2.0 * q_abs[..., None].clamp(min=0.1))
    best = q_abs.argmax(-1)
    wxyz = torch.gather(cands, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    quat = F.normalize(wxyz[..., [1, 2, 3, 0]], dim=-1)
    return standardize_quaternion(quat)


def extri_intri_to_pose_encoding(
    extrinsics: torch.Tensor, intrinsics: torch.Tensor, image_hw: tuple[int, int]
) -> torch.Tensor:
    """w2c [..., 3, 4] (or 4×4) and pixel K [..., 3, 3] → [..., 9] ``absT_quaR_FoV`` (float32)."""
    h, w = image_hw
    rot = extrinsics[..., :3, :3]
    trans = extrinsics[..., :3, 3]
    fov_h = 2 * torch.atan((h / 2) / intrinsics[..., 1, 1])
    fov_w = 2 * torch.atan((w / 2) / intrinsics[..., 0, 0])
    return torch.cat([trans, matrix_to_quat(rot), fov_h[..., None], fov_w[..., None]], -1).float()


def pose_encoding_to_extri_intri(
    encoding: torch.Tensor, image_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., 9] → (w2c [..., 3, 4], K [..., 3, 3]) with the principal point at (W/2, H/2)."""
    h, w = image_hw
    rot = quat_to_matrix(encoding[..., 3:7])
    extrinsics = torch.cat([rot, encoding[..., :3, None]], dim=-1)
    fy = (h / 2.0) / torch.tan(encoding[..., 7] / 2.0)
    fx = (w / 2.0) / torch.tan(encoding[..., 8] / 2.0)
    intrinsics = torch.zeros(encoding.shape[:-1] + (3, 3), dtype=encoding.dtype, device=encoding.device)
    intrinsics[..., 0, 0] = fx
    intrinsics[..., 1, 1] = fy
    intrinsics[..., 0, 2] = w / 2
    intrinsics[..., 1, 2] = h / 2
    intrinsics[..., 2, 2] = 1.0
    return extrinsics, intrinsics
