"""Confidence, flying-pixel, stride and cap filters: fractions, edges, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.harness.synthetic_world import CARD_Z, WALL_Z, synthetic_world
from fantasy_world.errors import InputError
from fantasy_world.geometry.filtering import (
    cap_indices,
    conf_percentile_mask,
    conf_threshold_mask,
    flying_pixel_mask,
    stride_mask,
    valid_depth_mask,
)
from fantasy_world.geometry.pointcloud import PointFilter, build_point_cloud, world_point_cloud


@pytest.mark.parametrize("percentile", [0.0, 10.0, 50.0, 70.0, 99.0, 100.0])
def test_percentile_keeps_top_fraction(percentile: float) -> None:
    conf = np.random.default_rng(0).random((4, 20, 25))
    keep = conf_percentile_mask(conf, percentile)
    n = conf.size
    assert keep.sum() == n - int(np.floor(n * percentile / 100))
    if 0 < keep.sum() < n:
        assert conf[keep].min() >= conf[~keep].max()


def test_percentile_with_ties_and_valid_subset() -> None:
    conf = np.ones((10, 10))
    valid = np.zeros((10, 10), dtype=bool)
    valid[:, :6] = True
    keep = conf_percentile_mask(conf, 25.0, valid=valid)
    assert keep.sum() == 60 - 15
    assert not keep[:, 6:].any()
    with pytest.raises(InputError, match="conf_percentile"):
        conf_percentile_mask(conf, 101.0)


def test_absolute_threshold_and_nonfinite() -> None:
    conf = np.array([0.5, 1.0, 1.5, np.nan, np.inf])  # inf: 1 + exp(x) overflowed, i.e. very confident
    np.testing.assert_array_equal(conf_threshold_mask(conf, 1.0), [False, True, True, False, True])
    np.testing.assert_array_equal(conf_percentile_mask(conf, 50.0), [False, False, True, False, True])
    depth = np.array([[1.0, 0.0, -1.0, np.nan, np.inf, 2.0]])
    np.testing.assert_array_equal(valid_depth_mask(depth), [[True, False, False, False, False, True]])


def test_flying_pixels_drop_step_edges_keep_flat_regions() -> None:
    depth = np.ones((8, 12))
    depth[:, 6:] = 2.0
    keep = flying_pixel_mask(depth, rel_threshold=0.05)
    assert not keep[:, 5].any() and not keep[:, 6].any()  # both sides of the step
    assert keep[:, :5].all() and keep[:, 7:].all()  # flat regions untouched


def test_flying_pixels_keep_gentle_slope_and_ignore_invalid_neighbours() -> None:
    depth = np.tile(np.linspace(2.0, 2.2, 16), (6, 1))  # ~0.7 % per pixel
    assert flying_pixel_mask(depth, 0.05).all()
    depth[2, 4] = np.nan
    keep = flying_pixel_mask(depth, 0.05)
    assert not keep[2, 4] and keep.sum() == depth.size - 1


def test_stride_mask_counts() -> None:
    mask = stride_mask((2, 9, 10), 4)
    assert mask.sum() == 2 * 3 * 3
    assert mask[0, 0, 0] and mask[1, 8, 8] and not mask[0, 1, 0]
    with pytest.raises(InputError, match="stride"):
        stride_mask((3, 3), 0)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(n=st.integers(0, 5000), cap=st.integers(0, 6000), seed=st.integers(0, 100))
def test_cap_is_deterministic_bounded_sorted(n: int, cap: int, seed: int) -> None:
    a = cap_indices(n, cap, seed)
    b = cap_indices(n, cap, seed)
    np.testing.assert_array_equal(a, b)
    assert len(a) == min(n, cap)
    assert np.all(np.diff(a) > 0)
    assert a.size == 0 or (a[0] >= 0 and a[-1] < n)


def test_cap_seed_changes_selection() -> None:
    assert not np.array_equal(cap_indices(1000, 100, 0), cap_indices(1000, 100, 1))


def test_build_point_cloud_combines_filters() -> None:
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(2, 10, 10, 3)).astype(np.float32)
    pts[0, 0, 0] = np.nan
    cols = rng.integers(0, 255, size=(2, 10, 10, 3), dtype=np.uint8)
    conf = rng.random((2, 10, 10))
    cloud = build_point_cloud(pts, cols, conf, None, PointFilter(conf_percentile=50, max_points=None))
    assert len(cloud) == 199 - int(np.floor(199 * 0.5))  # 200 pixels, one non-finite
    assert np.isfinite(cloud.points).all()
    assert cloud.confidence is not None and cloud.confidence.min() >= np.median(conf)
    capped = build_point_cloud(pts, cols, conf, None, PointFilter(max_points=17, seed=5))
    again = build_point_cloud(pts, cols, conf, None, PointFilter(max_points=17, seed=5))
    assert len(capped) == 17
    np.testing.assert_array_equal(capped.points, again.points)
    np.testing.assert_array_equal(capped.colors, again.colors)
    with pytest.raises(InputError, match="confidence"):
        build_point_cloud(pts, cols, None, None, PointFilter(conf_threshold=0.5))
    with pytest.raises(InputError, match="max_points"):
        PointFilter(max_points=-1)


def test_world_cloud_drops_card_silhouette() -> None:
    world = synthetic_world(num_frames=2, height=32, width=48)
    all_pts = world_point_cloud(world, PointFilter(flying_threshold=None, max_points=None))
    clean = world_point_cloud(world, PointFilter(flying_threshold=0.05, max_points=None))
    assert len(all_pts) == 2 * 32 * 48
    dropped = len(all_pts) - len(clean)
    assert 0 < dropped < 0.2 * len(all_pts)
    z = clean.points[:, 2]
    # Surviving points sit on one of the two surfaces, not between them.
    assert np.all(np.isclose(z, CARD_Z, atol=1e-4) | np.isclose(z, WALL_Z, atol=1e-4))
    from_points = world_point_cloud(world, PointFilter(max_points=None), source="points")
    np.testing.assert_allclose(np.sort(from_points.points[:, 2]), np.sort(z), atol=1e-4)


def test_conf_percentile_matches_a_stable_sort_with_ties_and_gaps():
    rng = np.random.default_rng(3)
    for case in range(200):
        shape = (2, int(rng.integers(1, 7)), int(rng.integers(1, 7)))
        conf = rng.integers(0, 3, size=shape).astype(float) if case % 2 else rng.random(shape)
        conf[rng.random(shape) < 0.1] = np.nan
        valid = rng.random(shape) < 0.8
        pct = float(rng.choice([5.0, 10.0, 33.3, 50.0, 99.0, 100.0]))
        keep = valid & ~np.isnan(conf)
        idx = np.flatnonzero(keep)
        order = np.argsort(conf.reshape(-1)[idx], kind="stable")
        expected = keep.reshape(-1).copy()
        expected[idx[order[: int(np.floor(idx.size * pct / 100.0))]]] = False
        np.testing.assert_array_equal(conf_percentile_mask(conf, pct, valid=valid), expected.reshape(shape))
