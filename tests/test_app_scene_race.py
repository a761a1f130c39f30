"""Issue 19: one visitor's scene is changed from many threads at once without errors or lost nodes.

The generation worker (previews, the finished world), Gradio handlers (presets, uploads) and viser's
own callbacks all draw into one session's scene; replacing a named node must be atomic with respect
to every other change, so none of them may see a half-replaced handle.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from app.framing import frame_scene, ground_plane
from app.sessions import SessionRegistry
from app.stage import GRID, apply_framing, draw_ground
from bench.harness.synthetic_world import synthetic_world
from fantasy_world.camera import CameraPath

ROUNDS = 60


@pytest.fixture()
def session(tmp_path: Path):
    reg = SessionRegistry(tmp_path / "sessions")
    s = reg.open("race")
    yield s
    reg.close_all()


def _hammer(jobs: list, rounds: int) -> list[BaseException]:
    """Run every job ``rounds`` times, each job in its own thread, all released together."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def loop(job) -> None:
        start.wait()
        for i in range(rounds):
            try:
                job(i)
            except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(exc)
                return

    threads = [threading.Thread(target=loop, args=(job,), daemon=True) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a scene update deadlocked"
    return errors


def test_concurrent_ground_framing_frames_and_paths_do_not_race(session):
    world = synthetic_world(num_frames=3, height=32, width=48)
    c2w = np.asarray(world.requested_c2w)
    points = world.points.reshape(-1, 3)[::7]
    server = session.server
    presets = [CameraPath.preset(name, num_frames=9) for name in ("orbit", "pan", "truck_right")]
    rng = np.random.default_rng(0)
    preview = (world.points, world.depths, world.points_conf, world.cam_c2w)

    jobs = [
        lambda i: draw_ground(server, ground_plane(c2w, points * (1 + 0.01 * i))),
        lambda i: draw_ground(server, ground_plane(c2w)),
        lambda i: apply_framing(server, frame_scene(c2w, points)),
        lambda i: session.frame_scene(world_path=bool(i % 2)),
        lambda i: session.viewer.show_preview(*preview),
        lambda i: session.viewer.show_world(world) if i % 5 == 0 else session.viewer.set_frame(i),
        lambda i: session.editor.set_path(presets[i % len(presets)]),
        lambda i: session.editor.add_keyframe(c2w[i % len(c2w)]) if i % 3 else session.viewer.clear(),
        lambda i: session.viewer.set_point_scale(float(rng.uniform(0.5, 2.0))),
    ]
    errors = _hammer(jobs, ROUNDS)
    assert not errors, f"{len(errors)} scene updates failed, first: {errors[0]!r}"
    # The scene is still whole: exactly one live grid, and the last path is drawn.
    handles = server.scene._handle_from_node_name
    assert GRID in handles and not handles[GRID]._impl.removed
    assert any(name.startswith("/path/spline") for name in handles)
