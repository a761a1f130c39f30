"""Per-pixel keep-masks for turning dense depth/point maps into a clean, bounded point cloud.

All masks are boolean arrays over [..., H, W] with True meaning "keep", so they combine with ``&``.
Everything is deterministic: the same input always keeps the same pixels, so exports are reproducible.
"""

from __future__ import annotations

import numpy as np

from fantasy_world.errors import InputError


def valid_depth_mask(depth: np.ndarray) -> np.ndarray:
    """Pixels whose depth is finite and strictly positive (in front of the camera)."""
    depth = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth > 0)


def conf_threshold_mask(conf: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels with confidence ≥ ``threshold`` (an absolute value, as the official ``--conf_threshold``).

    NaN is never kept; +inf is (``1 + exp(x)`` confidences overflow for the surest pixels).
    """
    conf = np.asarray(conf)
    with np.errstate(invalid="ignore"):
        return conf >= threshold


def conf_percentile_mask(conf: np.ndarray, percentile: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Drop the lowest-confidence ``percentile`` % of the ``valid`` pixels; keep the top (100 - percentile) %.

    Ranks rather than thresholds, so ties (e.g. a constant confidence) still keep the requested fraction;
    ties are broken by pixel order, which keeps the result deterministic.
    """
    if not 0.0 <= percentile <= 100.0:
        raise InputError(f"conf_percentile: expected a value in [0, 100], got {percentile}")
    conf = np.asarray(conf)
    keep = ~np.isnan(conf) if valid is None else (np.asarray(valid, dtype=bool) & ~np.isnan(conf))
    idx = np.flatnonzero(keep)
    n_drop = int(np.floor(idx.size * percentile / 100.0))
    if n_drop == 0:
        return keep
    # Same result as a stable argsort (drop the n_drop smallest, ties in pixel order) in linear time:
    # everything below the n_drop-th smallest value goes, then the first ties at that value.
    vals = conf.reshape(-1)[idx]
    cut = np.partition(vals, n_drop - 1)[n_drop - 1]
    drop = vals < cut
    ties = np.flatnonzero(vals == cut)
    drop[ties[: n_drop - int(drop.sum())]] = True
    out = keep.reshape(-1).copy()
    out[idx[drop]] = False
    return out.reshape(conf.shape)


def flying_pixel_mask(depth: np.ndarray, rel_threshold: float = 0.05) -> np.ndarray:
    """Keep pixels whose depth differs from every valid 4-neighbour by at most ``rel_threshold`` × own depth.

    Pixels on either side of a depth discontinuity interpolate between foreground and background in
    predicted depth ("flying pixels"); unprojected they smear into streaks, so both sides are dropped.
    Invalid neighbours (non-finite, ≤ 0) are ignored; invalid pixels themselves are never kept.
    """
    if rel_threshold <= 0:
        raise InputError(f"flying_threshold: expected a positive relative depth jump, got {rel_threshold}")
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim < 2:
        raise InputError(f"depth: expected [..., H, W], got shape {depth.shape}")
    valid = valid_depth_mask(depth)
    d = np.where(valid, depth, np.nan)
    pad = [(0, 0)] * (d.ndim - 2) + [(1, 1), (1, 1)]
    p = np.pad(d, pad, mode="constant", constant_values=np.nan)
    h, w = d.shape[-2:]
    neighbours = (
        p[..., 0:h, 1 : w + 1],
        p[..., 2 : h + 2, 1 : w + 1],
        p[..., 1 : h + 1, 0:w],
        p[..., 1 : h + 1, 2 : w + 2],
    )
    worst = np.zeros_like(d)
    with np.errstate(invalid="ignore"):
        for n in neighbours:
            jump = np.abs(d - n) / d
            worst = np.fmax(worst, np.where(np.isfinite(jump), jump, 0.0))
    return valid & (worst <= rel_threshold)


def stride_mask(shape: tuple[int, ...], stride: int) -> np.ndarray:
    """Keep every ``stride``-th row and column of the last two axes (the official ``--stride``)."""
    if int(stride) != stride or stride < 1:
        raise InputError(f"stride: expected a positive integer, got {stride}")
    mask = np.zeros(shape, dtype=bool)
    mask[..., :: int(stride), :: int(stride)] = True
    return mask


def cap_indices(n: int, max_points: int | None, seed: int = 0) -> np.ndarray:
    """Indices of at most ``max_points`` of ``n`` items, chosen uniformly with a fixed seed, in order.

    Random rather than strided so the cap does not alias with image rows; seeded so the same input
    gives the same output.
    """
    if max_points is None or n <= max_points:
        return np.arange(n)
    if max_points < 0:
        raise InputError(f"max_points: expected a non-negative integer, got {max_points}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(max_points), replace=False))
