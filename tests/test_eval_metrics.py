"""Evaluation metrics on inputs with known answers (perfect, scaled, rotated, shifted, rendered)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fantasy_world.data import make_clip
from fantasy_world.data.synthetic_dataset import SyntheticConfig
from fantasy_world.evaluation.consistency import multiview_consistency
from fantasy_world.evaluation.metrics import (
    _angle_between_deg,
    depth_metrics,
    path_length,
    pose_auc,
    psnr,
    relative_pose_errors,
    rotation_angle_deg,
    rotation_procrustes,
    trajectory_adherence,
)
from fantasy_world.evaluation.prompt import colour_regions, found_colours, score


def _path(n: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.from_rotvec(rng.normal(scale=0.2, size=(n, 3))).as_matrix()
    c2w[:, :3, 3] = np.cumsum(rng.normal(scale=0.5, size=(n, 3)), axis=0)
    return c2w


# Angles are exact up to float64 rounding (~1e-14°); a billionth of a degree sits far above that
# noise and far below any error that matters for a camera.
ANGLE_TOL_DEG = 1e-9


def test_depth_metrics_scale_invariance_and_errors():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1, 10, size=(3, 8, 8))
    valid = rng.random((3, 8, 8)) > 0.2
    perfect = depth_metrics(gt * 0.5, gt, valid)
    assert perfect["abs_rel"] == pytest.approx(0.0, abs=1e-12) and perfect["delta1"] == 1.0
    assert perfect["scale"] == pytest.approx(2.0)
    off = gt.copy()
    off[0] *= 1.5  # a third of the pixels 50% too far, after the median alignment
    m = depth_metrics(off, gt, valid)
    assert 0.1 < m["abs_rel"] < 0.2 and 0.6 < m["delta1"] < 0.7
    assert math.isnan(depth_metrics(gt, gt, np.zeros_like(valid))["abs_rel"])


def test_relative_pose_errors_and_auc():
    gt = _path()
    rre, rta = relative_pose_errors(gt, gt)
    assert rre.shape == rta.shape == (15,)
    assert np.allclose(rre, 0, atol=ANGLE_TOL_DEG) and np.allclose(rta, 0, atol=ANGLE_TOL_DEG)
    assert pose_auc(rre, rta) == pytest.approx(1.0)
    scaled = gt.copy()
    scaled[:, :3, 3] *= 3.0  # scale does not change directions
    rre, rta = relative_pose_errors(scaled, gt)
    assert np.allclose(rta, 0, atol=1e-4)
    turned = gt.copy()
    turned[2, :3, :3] = turned[2, :3, :3] @ Rotation.from_euler("z", 10, degrees=True).as_matrix()
    rre, _ = relative_pose_errors(turned, gt)
    assert np.sort(rre)[-5:] == pytest.approx([10.0] * 5, abs=1e-4)  # every pair with camera 2
    assert np.sum(rre > 1e-4) == 5
    static = np.tile(np.eye(4), (4, 1, 1))
    static[:, :3, :3] = Rotation.from_euler("y", (np.arange(4) * 5)[:, None], degrees=True).as_matrix()
    _, rta = relative_pose_errors(static, static)
    assert np.isnan(rta).all() and math.isnan(pose_auc(np.zeros(6), rta))
    assert pose_auc(np.full(6, 45.0), np.full(6, 45.0)) == 0.0


def test_trajectory_adherence():
    gt = _path(8, seed=2)
    rot = Rotation.from_euler("xyz", [20, -30, 45], degrees=True).as_matrix()
    s, t = 0.4, np.array([1.0, -2.0, 0.5])
    pred = gt.copy()  # the same path in another frame and scale: poses T·c2w with T = (s, R, t)
    pred[:, :3, :3] = rot @ gt[:, :3, :3]
    pred[:, :3, 3] = s * gt[:, :3, 3] @ rot.T + t
    adh = trajectory_adherence(pred, gt)
    assert adh["rot_median_deg"] == pytest.approx(0.0, abs=ANGLE_TOL_DEG)
    assert adh["trans_err_ratio"] == pytest.approx(0.0, abs=1e-9)
    assert adh["align_scale"] == pytest.approx(1 / s)  # the similarity that maps pred back onto gt
    assert adh["path_length"] == pytest.approx(path_length(gt))
    noisy = pred.copy()
    noisy[3, :3, 3] += 0.4 * path_length(pred)
    assert trajectory_adherence(noisy, gt)["trans_err_ratio"] > 0.02
    # A straight dolly: the centres alone leave the rotation about the line free; orientations fix it.
    dolly = np.tile(np.eye(4), (6, 1, 1))
    dolly[:, 2, 3] = np.linspace(0.0, 1.0, 6)
    moved = dolly.copy()
    moved[:, :3, :3] = rot @ dolly[:, :3, :3]
    moved[:, :3, 3] = 2.0 * dolly[:, :3, 3] @ rot.T
    out = trajectory_adherence(moved, dolly)
    assert out["rot_median_deg"] == pytest.approx(0.0, abs=ANGLE_TOL_DEG) and out[
        "align_scale"
    ] == pytest.approx(0.5)
    assert out["trans_err_ratio"] == pytest.approx(0.0, abs=1e-9)
    tilted = moved.copy()  # every predicted camera turned 7° about its own axis: 7° error, not hidden
    tilted[:, :3, :3] = tilted[:, :3, :3] @ Rotation.from_euler("z", 7, degrees=True).as_matrix()
    tilted[::2, :3, :3] = moved[::2, :3, :3]
    assert trajectory_adherence(tilted, dolly)["rot_median_deg"] == pytest.approx(3.5, abs=0.2)
    assert rotation_procrustes(rot @ gt[:, :3, :3], gt[:, :3, :3]) == pytest.approx(rot.T, abs=1e-9)
    pan = np.tile(np.eye(4), (5, 1, 1))
    pan[:, :3, :3] = Rotation.from_euler("y", (np.arange(5) * 4)[:, None], degrees=True).as_matrix()
    out = trajectory_adherence(pan, pan)
    assert math.isnan(out["trans_err_ratio"]) and out["rot_median_deg"] == pytest.approx(
        0.0, abs=ANGLE_TOL_DEG
    )
    assert rotation_angle_deg(
        np.eye(3), Rotation.from_euler("x", 30, degrees=True).as_matrix()
    ) == pytest.approx(30)


def test_angles_stable_near_0_and_180_degrees():
    """arccos of a trace or dot near ±1 keeps only half the digits; the atan2 forms keep them all."""
    for deg in (1e-7, 1e-3, 30.0, 90.0, 179.999, 180.0 - 1e-7):
        r = Rotation.from_rotvec(np.radians(deg) * np.array([0.6, -0.8, 0.0])).as_matrix()
        assert rotation_angle_deg(np.eye(3), r) == pytest.approx(deg, rel=1e-6)
        v = np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg)), 0.0])
        assert _angle_between_deg(np.array([2.0, 0.0, 0.0]), 3.0 * v) == pytest.approx(deg, rel=1e-6)
    assert rotation_angle_deg(np.eye(3), np.eye(3)) == 0.0
    assert _angle_between_deg(np.zeros(3), np.ones(3)) == 90.0  # no direction: the worst RTA


def test_psnr():
    a = np.zeros((4, 4))
    assert psnr(a, a) == 100.0
    assert psnr(a, np.full((4, 4), 0.1)) == pytest.approx(20.0)


@pytest.fixture(scope="module")
def clip():
    return make_clip(2_000_000_005, SyntheticConfig(num_frames=5, height=64, width=96))


def test_multiview_consistency_of_rendered_geometry(clip):
    depth = clip.depth.double().numpy()
    k, c2w, valid = clip.intrinsics.double().numpy(), clip.c2w.double().numpy(), clip.valid.numpy()
    exact = multiview_consistency(depth, k, c2w, valid=valid)
    assert exact["pairs"] > 0 and exact["median_rel_error"] < 1e-3
    wrong = c2w.copy()
    wrong[:, 2, 3] += 0.4 * np.arange(len(wrong))  # each camera further off along the view axis
    assert (
        multiview_consistency(depth, k, wrong, valid=valid)["median_rel_error"]
        > 10 * exact["median_rel_error"] + 1e-3
    )


def test_colour_regions_find_a_drawn_object_and_scene_colours(clip):
    frame = np.full((64, 96, 3), 128, np.uint8)
    frame[20:40, 30:50] = (210, 26, 23)  # palette red, 400 px
    found = colour_regions(frame)
    assert "red" in found and "blue" not in found
    video = clip.frames_uint8().numpy()
    got, total = score(found_colours([video[0], video[-1]]), clip.scene)
    assert total == len(clip.scene.objects) and got >= 1
