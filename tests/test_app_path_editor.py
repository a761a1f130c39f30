"""Path editing in the 3-D view: every interaction becomes a CameraPath edit and a redraw."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import viser

from app.path_editor import PathEditor
from app.scene_data import pose_to_wxyz_position
from app.sessions import free_port
from fantasy_world.camera import CameraPath


@pytest.fixture()
def editor():
    srv = viser.ViserServer(host="127.0.0.1", port=free_port(), verbose=False)
    ed = PathEditor(srv, CameraPath.preset("dolly_in", num_frames=9))
    yield ed
    ed.close()
    srv.stop()


def _camera(position, fov_deg=50.0):
    pose = np.eye(4)
    pose[:3, 3] = position
    wxyz, pos = pose_to_wxyz_position(pose)
    return SimpleNamespace(
        client=SimpleNamespace(camera=SimpleNamespace(wxyz=wxyz, position=pos, fov=np.radians(fov_deg)))
    )


def test_add_keyframe_from_current_view_inserts_after_selection(editor):
    n = len(editor.path)
    editor.selected = 0
    editor._on_add(_camera([0.3, 0.0, 0.1], fov_deg=50.0))
    assert len(editor.path) == n + 1 and editor.selected == 1
    kf = editor.path.keyframes[1]
    # Issue 13: a short step in front of the eye (the camera looks along +z), with the path's FoV.
    step = kf.position - np.array([0.3, 0.0, 0.1])
    assert step[2] > 0 and np.allclose(step[:2], 0.0, atol=1e-9)
    assert 0.05 < step[2] < 2.0 * editor._radius
    np.testing.assert_allclose(kf.rotation, np.eye(3), atol=1e-9)
    assert kf.fov_y_deg == pytest.approx(editor.path.keyframes[0].fov_y_deg)
    assert editor.path.preset_name is None  # hand-edited now
    assert editor.path.sample(9, 64, 32).c2w.shape == (9, 4, 4)


def test_gizmo_drag_moves_selected_keyframe(editor):
    editor.selected = 1
    editor._draw_keyframes()
    pose = editor.path.keyframes[1].c2w.copy()
    pose[:3, 3] += [0.0, -0.2, 0.0]
    editor._gizmo.wxyz, editor._gizmo.position = pose_to_wxyz_position(pose)
    v = editor.version
    editor._on_drag()
    np.testing.assert_allclose(editor.path.keyframes[1].c2w, pose, atol=1e-9)
    assert editor.version == v + 1
    editor._on_drag()  # no movement: no edit
    assert editor.version == v + 1


def test_fov_reorder_delete_loop(editor):
    extra = np.eye(4)
    extra[:3, 3] = [0.0, 0.5, 0.2]
    editor.add_keyframe(extra)
    first = editor.path.keyframes[0].c2w.copy()
    editor.update_keyframe(0, fov_y_deg=35.0)
    assert editor.path.keyframes[0].fov_y_deg == pytest.approx(35.0)
    editor.move_keyframe(0, 2)
    np.testing.assert_allclose(editor.path.keyframes[2].c2w, first)
    editor.set_loop(True)
    assert editor.path.settings.loop
    editor.delete_keyframe(0)
    assert len(editor.path) == 2
    editor.delete_keyframe(0)  # refused: a path needs two keyframes
    assert len(editor.path) == 2 and "at least 2" in editor.message


def test_set_frames_and_summary(editor):
    editor.set_frames(21)
    assert editor.path.settings.num_frames == 21
    assert "21 frames" in editor.gui_summary.content
    assert editor.fly.num_frames == 21


def test_gizmo_and_new_keyframe_scale_with_the_scene_not_the_eye(editor):
    """A keyframe added from far away neither blows up the handles nor lands on the eye."""
    before = editor._scale
    far = np.eye(4)
    far[:3, 3] = [0.0, -3.0, -8.0]  # the person's eye, far behind and above the path
    editor.selected = len(editor.path) - 1
    editor.add_keyframe_from_view(far)
    assert editor._scale == pytest.approx(before)
    added = editor.path.keyframes[editor.selected]
    stepped = np.linalg.norm(added.position - far[:3, 3])
    assert stepped > 4.0 * editor._scale * 2.0  # off the eye: the gizmo covers a small part of the view
    # With a generated world 10x larger than the path, a new keyframe steps further out (relative to
    # the whole scene) while the handles keep the path's size.
    editor.scene_points = lambda: np.random.default_rng(0).normal(size=(5000, 3)) * 10.0
    editor.add_keyframe_from_view(far)
    further = np.linalg.norm(editor.path.keyframes[editor.selected].position - far[:3, 3])
    assert further > 3.0 * stepped and editor._scale == pytest.approx(before)


def test_viewer_and_page_summaries_are_the_same_line(editor):
    from app.path_editor import path_summary

    editor.add_keyframe_from_view(np.eye(4))
    assert path_summary(editor.path) in editor.gui_summary.content
    assert f"{len(editor.path)} keyframes" in path_summary(editor.path)


def test_a_per_frame_path_draws_a_few_frustums_and_the_selected_one(editor):
    dense = CameraPath.from_trajectory(CameraPath.preset("arc", num_frames=81).sample(81))
    editor.set_path(dense)
    assert len(editor.path) == 81 and len(editor._frustums) <= 13 and 0 in editor._frustums
    editor._select(37)  # not among the drawn ones: drawn now, highlighted, gizmo on it
    assert 37 in editor._frustums and editor.selected == 37
    np.testing.assert_allclose(
        np.asarray(editor._gizmo.position), editor.path.keyframes[37].position, atol=1e-6
    )
