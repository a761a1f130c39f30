"""Metric functions (numpy, float64): depth, relative camera poses, trajectory adherence, PSNR.

Conventions: cameras are OpenCV camera-to-world 4×4; depth is z-depth. Definitions follow the usual
benchmarks (VGGT / PoseDiffusion for camera pairs):

* depth: per clip, prediction × s with s = median(gt) / median(pred) over valid pixels; AbsRel =
  mean |s·d − d*| / d*, δ<1.25 = share of pixels with max(s·d/d*, d*/(s·d)) < 1.25.
* relative poses over all frame pairs i < j: RRE = angle of R_ij,pred⁻¹ R_ij,gt; RTA = angle between the
  relative translation directions, taking min(θ, 180° − θ) (the direction's sign is ambiguous up to
  the scene's scale sign conventions, as in VGGT). Pairs whose ground-truth baseline is shorter than
  ``min_baseline`` (ground-truth units) have no direction — pure rotations, static shots: their RTA is
  NaN and they are left out of RTA statistics and AUC.
* AUC@30: mean over thresholds 1..30° of the share of pairs with max(RRE, RTA) below the threshold.
"""

from __future__ import annotations

import math

import numpy as np


def _valid_depth(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return valid & np.isfinite(pred) & (pred > 0) & np.isfinite(gt) & (gt > 0)


def depth_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """AbsRel and δ<1.25 after median scale alignment over the whole clip ([T, H, W] arrays)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    m = _valid_depth(pred, gt, np.asarray(valid, bool))
    if not m.any():
        return {"abs_rel": math.nan, "delta1": math.nan, "scale": math.nan, "pixels": 0}
    p, g = pred[m], gt[m]
    scale = float(np.median(g) / np.median(p))
    p = p * scale
    ratio = np.maximum(p / g, g / p)
    return {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "delta1": float(np.mean(ratio < 1.25)),
        "scale": scale,
        "pixels": int(m.sum()),
    }


def rotation_angle_deg(r_a: np.ndarray, r_b: np.ndarray) -> np.ndarray:
    """Angle in degrees of ``r_a^T r_b`` for [..., 3, 3] rotations.

    atan2(sin, cos) with 2·sin θ = ‖axis part of R − Rᵀ‖ and 2·cos θ = tr R − 1: accurate to float64
    rounding at every angle. ``arccos`` of the trace alone loses half the digits near 0° (an identity
    reads as ~1e-6°) and near 180°.
    """
    rel = np.swapaxes(r_a, -1, -2) @ r_b
    skew = np.stack(
        [rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0], rel[..., 1, 0] - rel[..., 0, 1]],
        axis=-1,
    )
    sin2 = np.linalg.norm(skew, axis=-1)
    cos2 = np.trace(rel, axis1=-2, axis2=-1) - 1.0
    return np.degrees(np.arctan2(sin2, cos2))


def _angle_between_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between [..., 3] vectors: atan2(‖a × b‖, a · b), stable near 0° and 180°.

    A (near) zero vector has no direction and reads as 90°, the worst direction error after RTA's
    min(θ, 180° − θ).
    """
    theta = np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1)))
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.where(norms > 1e-12, theta, 90.0)


def relative_pose_errors(
    pred_c2w: np.ndarray, gt_c2w: np.ndarray, min_baseline: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """RRE and RTA (degrees) for every pair i < j of [N, 4, 4] poses (RTA NaN for no-baseline pairs)."""
    pred_c2w, gt_c2w = np.asarray(pred_c2w, np.float64), np.asarray(gt_c2w, np.float64)
    n = pred_c2w.shape[0]
    i, j = np.triu_indices(n, k=1)

    def relative(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w2c = np.linalg.inv(c2w)
        rel = w2c[j] @ c2w[i]  # camera i expressed in camera j's frame
        return rel[:, :3, :3], rel[:, :3, 3]

    r_p, t_p = relative(pred_c2w)
    r_g, t_g = relative(gt_c2w)
    rre = rotation_angle_deg(r_p, r_g)
    theta = _angle_between_deg(t_p, t_g)
    rta = np.minimum(theta, 180.0 - theta)
    baseline = np.linalg.norm(t_g, axis=-1)
    rta = np.where(baseline > min_baseline, rta, np.nan)
    return rre, rta


def pose_auc(rre: np.ndarray, rta: np.ndarray, max_threshold: int = 30) -> float:
    """AUC of max(RRE, RTA) over thresholds 1..max_threshold degrees (pairs with NaN RTA left out)."""
    keep = np.isfinite(rta)
    if not keep.any():
        return math.nan
    err = np.maximum(rre[keep], rta[keep])
    thresholds = np.arange(1, max_threshold + 1)
    return float(np.mean([(err < t).mean() for t in thresholds]))


def path_length(c2w: np.ndarray) -> float:
    """Sum of the distances between consecutive camera centres."""
    centres = np.asarray(c2w, np.float64)[:, :3, 3]
    return float(np.linalg.norm(np.diff(centres, axis=0), axis=-1).sum())


def rotation_procrustes(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The rotation R minimising Σ‖R·src_k − dst_k‖_F for [K, 3, 3] orientations (chordal mean)."""
    m = np.einsum("kij,klj->il", np.asarray(dst, np.float64), np.asarray(src, np.float64))
    u, _, vt = np.linalg.svd(m)
    sign = np.eye(3)
    sign[2, 2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    return u @ sign @ vt


def trajectory_adherence(
    pred_c2w: np.ndarray, req_c2w: np.ndarray, min_path: float = 1e-3
) -> dict[str, float]:
    """Predicted vs requested path after a similarity alignment (s, R, t) of the predicted poses.

    R comes from the orientations (the rotation that best maps every predicted orientation onto the
    requested one), not from the camera centres: for a straight dolly, truck or pedestal path the
    centres leave the rotation about the line free, and a centres-only fit then reports arbitrary
    orientation errors. Given R, the scale and translation fit the centres by least squares.
    Rotation error: per frame, the angle between R·R_pred and the requested orientation; median.
    Translation error: mean distance of the aligned centres to the requested ones over the requested
    path length. A path shorter than ``min_path`` (rotation only: pan, tilt, zoom, static) has no
    translation error (NaN).
    """
    pred_c2w, req_c2w = np.asarray(pred_c2w, np.float64), np.asarray(req_c2w, np.float64)
    length = path_length(req_c2w)
    rot = rotation_procrustes(pred_c2w[:, :3, :3], req_c2w[:, :3, :3])
    s = 1.0
    if length > min_path:
        src = pred_c2w[:, :3, 3] @ rot.T
        dst = req_c2w[:, :3, 3]
        xs, xd = src - src.mean(0), dst - dst.mean(0)
        var = float((xs**2).sum())
        s = max(float((xs * xd).sum()) / var, 0.0) if var > 1e-12 else 0.0
        centres = s * src + (dst.mean(0) - s * src.mean(0))
        trans_err = float(np.linalg.norm(centres - dst, axis=-1).mean() / length)
    else:
        trans_err = math.nan
    rot_err = rotation_angle_deg(rot @ pred_c2w[:, :3, :3], req_c2w[:, :3, :3])
    return {
        "rot_median_deg": float(np.median(rot_err)),
        "trans_err_ratio": trans_err,
        "path_length": length,
        "align_scale": float(s),
    }


PSNR_CAP_DB = 100.0


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB of two arrays in [0, peak], capped at 100 dB (identical inputs)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, 10.0 * math.log10(peak**2 / mse))
