"""Losses, geometry targets and noise levels of the trainer, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from fantasy_world.data import make_clip
from fantasy_world.data.synthetic_dataset import SyntheticConfig
from fantasy_world.models.fantasy.pose_encoding import pose_encoding_to_extri_intri
from fantasy_world.training.config import GeometryLossConfig, TimestepConfig
from fantasy_world.training.losses import camera_loss, flow_matching_loss, regression_loss, vae_loss
from fantasy_world.training.targets import batch_plucker, build_targets, scene_scale
from fantasy_world.training.timesteps import geometry_sigmas, geometry_weight, reference_sigma, video_sigmas

CFG = GeometryLossConfig()


def _maps(b=2, t=3, h=8, w=10, c=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    gt = torch.rand(b, t, h, w, c, generator=gen) + 1.0
    valid = torch.rand(b, t, h, w, generator=gen) > 0.3
    return gt, valid


def test_flow_matching_loss_is_zero_at_the_target_and_per_sample():
    x0, noise = torch.randn(3, 4, 2, 3, 3), torch.randn(3, 4, 2, 3, 3)
    assert torch.equal(flow_matching_loss(noise - x0, noise, x0), torch.zeros(3))
    off = noise - x0
    off[1] += 0.5
    loss = flow_matching_loss(off, noise, x0)
    assert loss.shape == (3,)
    assert loss[0] == 0 and loss[2] == 0
    assert loss[1] == pytest.approx(0.25)


def test_regression_loss_perfect_prediction_and_confidence_term():
    gt, valid = _maps()
    conf = torch.ones(gt.shape[:-1])
    terms = regression_loss(gt, gt, valid, conf, CFG)
    for name in ("conf", "reg", "grad"):
        assert torch.allclose(terms[name], torch.zeros(2), atol=1e-7), name
    # constant error e everywhere with confidence c: conf term = γ·c·e − α·log c; a constant offset has
    # no spatial gradient.
    c, e = 3.0, 0.2
    terms = regression_loss(gt + e, gt, valid, torch.full_like(conf, c), CFG)
    want = CFG.conf_gamma * c * e - CFG.conf_alpha * math.log(c)
    assert torch.allclose(terms["conf"], torch.full((2,), want), atol=1e-5)
    assert torch.allclose(terms["reg"], torch.full((2,), e), atol=1e-5)
    flat = regression_loss(gt + e, gt, valid, conf, CFG)  # confidence 1: no log penalty either
    assert torch.allclose(flat["grad"], torch.zeros(2), atol=1e-6)
    assert (terms["grad"] < 0).all()  # only the −α·log c edge penalty remains


def test_regression_loss_ignores_invalid_pixels_and_sees_edges():
    gt, valid = _maps(c=3)
    conf = torch.ones(gt.shape[:-1])
    pred = gt.clone()
    pred[~valid] += 100.0
    terms = regression_loss(pred, gt, valid, conf, CFG)
    assert torch.allclose(terms["reg"], torch.zeros(2), atol=1e-6)
    assert torch.allclose(terms["grad"], torch.zeros(2), atol=1e-6)
    # a step error inside the valid region has a spatial gradient
    all_valid = torch.ones_like(valid)
    step = gt.clone()
    step[..., :, 5:, :] += 0.5
    assert (regression_loss(step, gt, all_valid, conf, CFG)["grad"] > 0).all()


def test_camera_loss_weights_iterations_and_parts():
    gt = torch.randn(2, 5, 9)
    perfect = camera_loss([gt, gt, gt], gt, CFG)
    assert torch.allclose(perfect["camera"], torch.zeros(2))
    wrong = gt.clone()
    wrong[..., :3] += 1.0  # translation error 1 ≫ β: smooth-L1 = 1 − β/2
    out = camera_loss([wrong, gt, gt], gt, CFG)
    per_iter = (1.0 - CFG.huber_beta / 2) * CFG.iter_gamma**2
    assert torch.allclose(out["trans"], torch.full((2,), per_iter / 3), atol=1e-6)
    assert torch.allclose(out["rot"], torch.zeros(2)) and torch.allclose(out["fov"], torch.zeros(2))
    last = camera_loss([gt, gt, wrong], gt, CFG)
    assert (last["trans"] > out["trans"]).all()


def test_vae_loss_terms():
    x = torch.rand(2, 3, 5, 8, 8) * 2 - 1
    mu, logvar = torch.zeros(2, 16, 2, 1, 1), torch.zeros(2, 16, 2, 1, 1)
    out = vae_loss(x, x, mu, logvar, 1.0, 1.0, 1.0)
    assert torch.allclose(out["loss"], torch.zeros(2)) and torch.allclose(out["kl"], torch.zeros(2))
    out = vae_loss(x + 0.1, x, mu + 1.0, logvar, 1.0, 1.0, 1.0)
    assert torch.allclose(out["l1"], torch.full((2,), 0.1), atol=1e-6)
    assert torch.allclose(out["kl"], torch.full((2,), 0.5), atol=1e-6)


@pytest.fixture(scope="module")
def clip():
    return make_clip(11, SyntheticConfig(num_frames=5, height=32, width=48))


def test_targets_reproduce_rendered_points_and_normalise_scale(clip):
    b = lambda x: x[None]  # noqa: E731
    tg = build_targets(b(clip.depth), b(clip.valid), b(clip.intrinsics), b(clip.c2w))
    s = float(tg.scale[0])
    expected = clip.points / s
    assert torch.allclose(tg.points[0][clip.valid], expected[clip.valid], atol=1e-4)
    dist0 = torch.linalg.vector_norm(tg.points[0, 0][clip.valid[0]], dim=-1).mean()
    assert float(dist0) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(tg.depth[0], clip.depth / s, atol=1e-6)
    # frame 0 is the world frame: zero translation, identity quaternion; decoding gives back the cameras
    assert torch.allclose(tg.pose_enc[0, 0, :7], torch.tensor([0, 0, 0, 0, 0, 0, 1.0]), atol=1e-6)
    w2c, k = pose_encoding_to_extri_intri(tg.pose_enc[0], (32, 48))
    c2w = torch.linalg.inv(torch.cat([w2c, torch.tensor([[[0, 0, 0, 1.0]]]).expand(5, 1, 4)], dim=1))
    assert torch.allclose(c2w[:, :3, 3], clip.c2w[:, :3, 3] / s, atol=1e-4)
    assert torch.allclose(k[:, 0, 0], clip.intrinsics[:, 0, 0], rtol=1e-4)


def test_scene_scale_trims_and_guards():
    pts = torch.zeros(2, 2, 2, 3)
    pts[0, ..., 2] = torch.tensor([[1.0, 1.0], [1.0, 9.0]])
    valid = torch.ones(2, 2, 2, dtype=torch.bool)
    valid[1] = False
    s = scene_scale(pts, valid)
    assert s[0] == pytest.approx(3.0) and s[1] == 1.0
    assert scene_scale(pts, valid, trim_quantile=0.5)[0] == pytest.approx(1.0)


def test_plucker_of_first_camera_has_zero_moment(clip):
    tg = build_targets(clip.depth[None], clip.valid[None], clip.intrinsics[None], clip.c2w[None])
    maps = batch_plucker(tg.c2w, tg.intrinsics, 32, 48, official=False)
    assert maps.shape == (1, 5, 32, 48, 6)
    assert torch.allclose(maps[0, 0, ..., :3], torch.zeros(32, 48, 3), atol=1e-6)
    assert torch.allclose(
        torch.linalg.vector_norm(maps[0, ..., 3:], dim=-1), torch.ones(5, 32, 48), atol=1e-5
    )


def test_noise_levels():
    cfg = TimestepConfig()
    assert reference_sigma(cfg) == pytest.approx(5 * 0.1 / (1 + 4 * 0.1))
    assert reference_sigma(TimestepConfig(ref_steps=50)) == pytest.approx(5 * 0.02 / (1 + 4 * 0.02))
    u = torch.linspace(0, 0.999, 101)
    v = video_sigmas(u, cfg)
    assert (v.diff() >= 0).all() and float(v[50]) == pytest.approx(5 * 0.5 / 3, rel=1e-2)
    g = geometry_sigmas(u, torch.ones(101), cfg)
    assert torch.allclose(g, u.pow(2).clamp(1e-4, 1.0))
    assert torch.allclose(geometry_sigmas(u, torch.zeros(101), cfg), torch.full((101,), reference_sigma(cfg)))
    w = geometry_weight(torch.tensor([0.05, reference_sigma(cfg), 0.7, 1.0]), cfg)
    assert w[0] == 1 and w[1] == pytest.approx(1.0) and 0 < w[2] < 1 and w[3] == 0
