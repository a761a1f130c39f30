"""The viewer's scene builder: payloads (pure numpy) and what WorldViewer puts in a real viser scene."""

from __future__ import annotations

import numpy as np
import pytest
import viser

from app.scene_data import (
    ViewOptions,
    build_frame_payloads,
    pose_to_wxyz_position,
    preview_cloud,
    thumbnail,
    vertical_fov,
    wxyz_position_to_pose,
)
from app.sessions import free_port
from app.viewer import MODES, WorldViewer
from bench.harness.synthetic_world import synthetic_world


@pytest.fixture()
def server():
    srv = viser.ViserServer(host="127.0.0.1", port=free_port(), verbose=False)
    yield srv
    srv.stop()


def test_pose_round_trip_is_exact():
    rng = np.random.default_rng(0)
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    pose = wxyz_position_to_pose(q, [1.0, -2.0, 3.0])
    wxyz, pos = pose_to_wxyz_position(pose)
    np.testing.assert_allclose(wxyz_position_to_pose(wxyz, pos), pose, atol=1e-12)
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)


def test_vertical_fov_uses_true_focal():
    k = np.array([[100.0, 0, 48], [0, 50.0, 16], [0, 0, 1]])
    assert vertical_fov(k, 32) == pytest.approx(2 * np.arctan(16 / 50.0))


def test_payloads_are_small_capped_and_filtered():
    world = synthetic_world(num_frames=5, height=32, width=48)
    payloads = build_frame_payloads(world, ViewOptions(conf_percentile=0.0, max_points=1000))
    assert len(payloads) == 5
    for i, p in enumerate(payloads):
        assert p.points.dtype == np.float16 and p.colors.dtype == np.uint8
        assert 0 < len(p.points) <= 200  # 1000 points split over 5 frames
        np.testing.assert_allclose(p.position, world.cam_c2w[i, :3, 3])
    # The synthetic world's points lie on the wall (z = 4) or the card (z = 2).
    z = np.concatenate([p.points[:, 2] for p in payloads]).astype(np.float32)
    assert np.all((np.abs(z - 4.0) < 0.05) | (np.abs(z - 2.0) < 0.05))


def test_confidence_percentile_drops_that_share_of_the_clip():
    world = synthetic_world(num_frames=3, height=32, width=48)
    everything = ViewOptions(conf_percentile=0.0, max_points=10**7)
    half = ViewOptions(conf_percentile=50.0, max_points=10**7)
    n_all = sum(len(p.points) for p in build_frame_payloads(world, everything))
    kept = build_frame_payloads(world, half)
    n_half = sum(len(p.points) for p in kept)
    assert n_half == pytest.approx(n_all / 2, rel=0.05)
    # One clip-wide cutoff, not per frame: frames keep different shares of their pixels.
    shares = [len(p.points) / (32 * 48) for p in kept]
    assert max(shares) - min(shares) > 0.005


def test_thumbnail_and_preview_cloud():
    img = np.zeros((128, 192, 3), np.uint8)
    assert thumbnail(img).shape == (64, 96, 3)
    pts = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    depths = np.abs(pts[..., 2]) + 0.1
    depths[0, 0, 0] = np.nan
    p, c = preview_cloud(pts, depths, np.ones_like(depths), max_points=50)
    assert p.dtype == np.float16 and c.dtype == np.uint8 and len(p) == 50


def test_viewer_draws_each_frame_once_and_toggles_visibility(server):
    viewer = WorldViewer(server, ViewOptions(conf_percentile=0.0, max_points=5000))
    try:
        world = synthetic_world(num_frames=4, height=32, width=48)
        seconds = viewer.show_world(world)
        assert seconds < 5.0
        assert len(viewer._frames) == 4 and len(viewer._frustums) == 4
        assert viewer.sent_bytes == sum(p.nbytes for p in viewer.payloads) > 0
        assert all(node.visible for node in viewer._frames)  # fused by default
        viewer.set_mode(MODES[1])
        viewer.set_frame(2)
        assert [n.visible for n in viewer._frames] == [False, False, True, False]
        viewer.set_show_cameras(False)
        assert not any(f.visible for f in viewer._frustums)
        viewer.set_point_scale(2.0)
        assert viewer._clouds[0].point_size == pytest.approx(2.0 * viewer.base_point_size)
        before = sum(len(p.points) for p in viewer.payloads)
        viewer.set_filter(max_points=400)
        assert sum(len(p.points) for p in viewer.payloads) <= 400 < before
        viewer.clear()
        assert viewer.world is None and not viewer._frames
    finally:
        viewer.close()


def test_preview_replaces_world(server):
    viewer = WorldViewer(server)
    try:
        world = synthetic_world(num_frames=3, height=16, width=16)
        viewer.show_world(world)
        viewer.show_preview(world.points, world.depths, world.points_conf, world.cam_c2w)
        assert viewer._preview is not None and not viewer._frames
        with pytest.raises(ValueError):
            viewer.set_mode("sideways")
    finally:
        viewer.close()


def test_playback_advances_frames(server):
    viewer = WorldViewer(server)
    try:
        viewer.show_world(synthetic_world(num_frames=5, height=16, width=16))
        viewer.set_mode(MODES[1])
        viewer.playback.fps = 50.0
        viewer.playback.play(True)
        import time

        seen = set()
        deadline = time.monotonic() + 3.0
        while len(seen) < 5 and time.monotonic() < deadline:
            seen.add(viewer.frame)
            time.sleep(0.005)
        viewer.playback.play(False)
        assert seen == set(range(5))
        assert sum(n.visible for n in viewer._frames) == 1
    finally:
        viewer.close()
