"""The generated world in one session's viser scene: live preview, per-frame clouds, frustums, timeline.

Each frame is sent once under ``/world/frames/t{i}`` (points + image-textured frustum of the predicted
camera); playback and the fused/current toggle only flip visibility inside ``server.atomic()``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import viser

from app.framing import point_size
from app.playback import Playback
from app.scene_data import (
    FramePayload,
    ViewOptions,
    build_frame_payloads,
    preview_cloud,
    scene_extent,
    world_frame_points,
)
from app.stage import scene_lock
from fantasy_world.geometry.world_data import WorldData

log = logging.getLogger(__name__)

ROOT = "/world"
PREVIEW = "/preview"
PREDICTED_COLOR = (40, 110, 230)
REQUESTED_COLOR = (230, 120, 30)
MODES = ("fused", "current frame")
FADE = 0.75  # how far a faded result's colours move towards the background grey


def faded(colors: np.ndarray) -> np.ndarray:
    """Colours pushed towards light grey: the previous result, kept as context while the path changes."""
    grey = np.array([225.0, 225.0, 228.0])
    return (np.asarray(colors, np.float32) * (1.0 - FADE) + grey * FADE).astype(np.uint8)


class WorldViewer:
    """Draws worlds and previews into ``server`` and owns the viewer's controls (viser GUI)."""

    def __init__(self, server: viser.ViserServer, options: ViewOptions | None = None) -> None:
        self.server = server
        self.options = options or ViewOptions()
        self.world: WorldData | None = None
        self.payloads: list[FramePayload] = []
        self.mode = MODES[0]
        self.show_cameras = True
        self.show_requested = True
        self.world_visible = True
        self.dimmed = False  # the path changed since this result was made: drawn faded
        self.point_scale = 1.0
        self.base_point_size = 0.01
        self.frustum_scale = 0.05
        self.frame = 0
        self.last_draw_s = 0.0
        self.sent_bytes = 0  # payload bytes handed to viser for the current world
        self.on_world: Callable[[WorldData], None] | None = None  # called once a world is drawn
        self._lock = scene_lock(server)  # shared with the path editor and the framing: one owner
        self._frames: list[Any] = []
        self._clouds: list[Any] = []
        self._frustums: list[Any] = []
        self._preview: Any = None
        self._syncing = False
        self.playback = Playback(self._on_play_frame)
        self._build_gui()

    # ---------------------------------------------------------------------------------------- GUI
    def _build_gui(self) -> None:
        gui = self.server.gui
        with gui.add_folder("Timeline", order=10):
            self.gui_frame = gui.add_slider("Frame", 0, 1, 1, 0, disabled=True)
            self.gui_play = gui.add_checkbox("Playing", False, disabled=True)
            self.gui_fps = gui.add_slider("FPS", 1, 60, 1, 16)
            self.gui_mode = gui.add_dropdown("Show", MODES, initial_value=self.mode)
        with gui.add_folder("Points", order=11):
            self.gui_point_size = gui.add_slider("Point size ×", 0.25, 4.0, 0.25, 1.0)
            self.gui_conf = gui.add_slider("Confidence %", 0.0, 95.0, 1.0, self.options.conf_percentile)
            self.gui_max_points = gui.add_number(
                "Max points", self.options.max_points, min=1000, max=2_000_000, step=1000
            )
            self.gui_cameras = gui.add_checkbox("Show cameras", True)
            self.gui_requested = gui.add_checkbox("Show requested path", True)
            self.gui_dimmed = gui.add_checkbox(
                "Fade result", False, hint="Faded after the camera path changes; untick to see it in full"
            )

        self.gui_frame.on_update(lambda _: self._gui_seek())
        self.gui_play.on_update(lambda _: self.playback.play(self.gui_play.value))
        self.gui_fps.on_update(lambda _: setattr(self.playback, "fps", float(self.gui_fps.value)))
        self.gui_mode.on_update(lambda _: self.set_mode(self.gui_mode.value))
        self.gui_point_size.on_update(lambda _: self.set_point_scale(self.gui_point_size.value))
        self.gui_conf.on_update(lambda _: self.set_filter(conf_percentile=float(self.gui_conf.value)))
        self.gui_max_points.on_update(lambda _: self.set_filter(max_points=int(self.gui_max_points.value)))
        self.gui_cameras.on_update(lambda _: self.set_show_cameras(self.gui_cameras.value))
        self.gui_requested.on_update(lambda _: self.set_show_requested(self.gui_requested.value))
        self.gui_dimmed.on_update(lambda _: self.set_dimmed(bool(self.gui_dimmed.value)))

    def _gui_seek(self) -> None:
        if not self._syncing:
            self.set_frame(int(self.gui_frame.value))

    # ------------------------------------------------------------------------------------ preview
    def show_preview(
        self, points: np.ndarray, depths: np.ndarray, conf: np.ndarray, cam_c2w: np.ndarray
    ) -> None:
        """Replace the live preview cloud (depth-coloured) during denoising; hides the old world."""
        pts, cols = preview_cloud(points, depths, conf, self.options.max_points)
        ext = scene_extent(cam_c2w[:, :3, 3], pts.astype(np.float32))
        size = point_size(ext, len(pts) // max(1, len(cam_c2w)))
        with self._lock, self.server.atomic():
            self.server.scene.remove_by_name(ROOT)
            self._reset_handles()
            self._preview = self.server.scene.add_point_cloud(
                f"{PREVIEW}/points", pts, cols, point_size=size, point_shape="rounded"
            )
        self.server.flush()

    def clear(self) -> None:
        """Remove everything this viewer drew (new generation, or session end)."""
        with self._lock, self.server.atomic():
            self.server.scene.remove_by_name(ROOT)
            self.server.scene.remove_by_name(PREVIEW)
            self._reset_handles()
            self.world = None
            self.payloads = []

    def _reset_handles(self) -> None:
        self._frames, self._clouds, self._frustums, self._preview = [], [], [], None

    # -------------------------------------------------------------------------------------- world
    def show_world(self, world: WorldData) -> float:
        """Draw every frame of ``world``; returns seconds from call to the scene being flushed.

        The current frame goes out first in its own message batch, with the camera framing, so the
        browser draws a cloud while the other frames are still on the wire.
        """
        t0 = time.perf_counter()
        points = world_frame_points(world)
        payloads = build_frame_payloads(world, self.options, points)
        with self._lock:
            self.world, self.payloads = world, payloads
            self._set_dim_flag(False)  # a new result is shown in full
            ext = scene_extent(world.cam_c2w[:, :3, 3], self.sample_points())
            per_frame = int(np.median([len(p.points) for p in payloads])) if payloads else 1
            self.base_point_size = point_size(ext, per_frame)
            self.frustum_scale = ext / 20.0
            self.frame = 0
            self._draw_all(first=True)
            self.playback.set_frames(world.num_frames)
            self.playback.fps = float(self.gui_fps.value)
        self._sync_timeline()
        self.server.flush()
        self.last_draw_s = time.perf_counter() - t0
        log.info(
            "viewer: %d frames, %d points, %.1f KB sent in %.3fs",
            len(payloads),
            sum(len(p.points) for p in payloads),
            self.sent_bytes / 1e3,
            self.last_draw_s,
        )
        return self.last_draw_s

    def _draw_all(self, first: bool = False) -> None:
        """Send every frame once; called with the lock held.

        ``first``: a new world — send the current frame and the framing (``on_world``) as one batch and
        flush it before the rest, so the first cloud is drawn without waiting for every frame.
        """
        with self.server.atomic():
            self.server.scene.remove_by_name(PREVIEW)
            self.server.scene.remove_by_name(ROOT)
            self._reset_handles()
            self.sent_bytes = 0
            self._draw_requested()
            lead = self.payloads[:1] if first else []  # a new world starts at frame 0
            self._send_frames(lead)
            if lead:
                self._apply_visibility()
        if first:
            if self.on_world is not None and self.world is not None:
                self.on_world(self.world)
            self.server.flush()
        with self.server.atomic():
            self._send_frames(self.payloads[len(lead) :])
            self._apply_visibility()

    def _send_frames(self, payloads: list[FramePayload]) -> None:
        """Add the cloud and textured frustum of each payload (called inside ``server.atomic()``)."""
        scene = self.server.scene
        size = self.base_point_size * self.point_scale
        for p in payloads:
            node = scene.add_frame(f"{ROOT}/frames/t{p.index}", show_axes=False)
            cloud = scene.add_point_cloud(
                f"{ROOT}/frames/t{p.index}/points",
                p.points,
                faded(p.colors) if self.dimmed else p.colors,
                point_size=size,
                point_shape="rounded",
            )
            frustum = scene.add_camera_frustum(
                f"{ROOT}/frames/t{p.index}/camera",
                fov=p.fov_y,
                aspect=p.aspect,
                scale=self.frustum_scale,
                color=PREDICTED_COLOR,
                image=p.thumbnail,
                format="jpeg",
                jpeg_quality=80,
                wxyz=p.wxyz,
                position=p.position,
                visible=self.show_cameras and not self.dimmed,
            )
            frustum.on_click(lambda event, i=p.index: self._frustum_clicked(event, i))
            self._frames.append(node)
            self._clouds.append(cloud)
            self._frustums.append(frustum)
            self.sent_bytes += p.nbytes

    def _draw_requested(self) -> None:
        """The requested path as a line, to compare with the predicted cameras."""
        if self.world is None or self.world.num_frames < 2 or self.dimmed:
            return  # a faded result's old path would be confused with the one being edited
        pos = self.world.requested_c2w[:, :3, 3]
        segs = np.stack([pos[:-1], pos[1:]], axis=1).astype(np.float32)
        self.server.scene.add_line_segments(
            f"{ROOT}/requested",
            segs,
            REQUESTED_COLOR,
            thickness=2.0,
            thickness_units="screen",
            visible=self.show_requested,
        )

    def _frustum_clicked(self, event: Any, index: int) -> None:
        """Clicking a predicted camera jumps the timeline to that frame."""
        self.set_frame(index)

    # -------------------------------------------------------------------------------- visibility
    def _apply_visibility(self) -> None:
        fused = self.mode == MODES[0]
        with self.server.atomic():
            for i, node in enumerate(self._frames):
                node.visible = self.world_visible and (fused or i == self.frame)

    def set_frame(self, index: int) -> None:
        with self._lock:
            if not self._frames:
                return
            self.frame = int(index) % len(self._frames)
            self.playback.seek(self.frame)
            if self.mode != MODES[0]:
                self._apply_visibility()
        self._sync_timeline()

    def _on_play_frame(self, index: int) -> None:
        with self._lock:
            if not self._frames:
                return
            self.frame = index % len(self._frames)
            if self.mode != MODES[0]:
                self._apply_visibility()
        self._sync_timeline()

    def _sync_timeline(self) -> None:
        """Reflect the frame in the slider without feeding back into ``set_frame``."""
        n = len(self._frames)
        self._syncing = True
        try:
            self.gui_frame.max = max(1, n - 1)
            self.gui_frame.disabled = n < 2
            self.gui_play.disabled = n < 2
            self.gui_frame.value = min(self.frame, max(1, n - 1))
        finally:
            self._syncing = False

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {MODES}")
        with self._lock:
            self.mode = mode
            self._apply_visibility()

    def set_world_visible(self, show: bool) -> None:
        """Hide or show the whole generated world (e.g. to look at the camera path alone)."""
        with self._lock:
            self.world_visible = bool(show)
            self._apply_visibility()

    def set_point_scale(self, scale: float) -> None:
        with self._lock:
            self.point_scale = float(scale)
            size = self.base_point_size * self.point_scale
            with self.server.atomic():
                for cloud in self._clouds:
                    cloud.point_size = size

    def set_show_cameras(self, show: bool) -> None:
        with self._lock:
            self.show_cameras = bool(show)
            with self.server.atomic():
                for frustum in self._frustums:
                    frustum.visible = self.show_cameras and not self.dimmed

    def set_dimmed(self, dimmed: bool) -> None:
        """Fade the shown result (points towards grey; its cameras and requested path hidden) or restore it.

        Called when the camera path changes: the old result no longer matches the path being edited."""
        with self._lock:
            dimmed = bool(dimmed) and self.world is not None
            if dimmed == self.dimmed:
                return
            self._set_dim_flag(dimmed)
            with self.server.atomic():
                for cloud, p in zip(self._clouds, self.payloads):
                    cloud.colors = faded(p.colors) if dimmed else p.colors
                for frustum in self._frustums:
                    frustum.visible = self.show_cameras and not dimmed
                if dimmed:
                    self.server.scene.remove_by_name(f"{ROOT}/requested")
                else:
                    self._draw_requested()

    def _set_dim_flag(self, dimmed: bool) -> None:
        self.dimmed = dimmed
        self._syncing = True
        try:
            self.gui_dimmed.value = dimmed
        finally:
            self._syncing = False

    def set_show_requested(self, show: bool) -> None:
        with self._lock:
            self.show_requested = bool(show)
            if self.world is not None:
                self._draw_requested()

    def set_filter(
        self, conf_percentile: float | None = None, max_points: int | None = None, redraw: bool = True
    ) -> None:
        """New confidence percentile or point cap: rebuild the payloads once and resend every frame."""
        with self._lock:
            self.options = ViewOptions(
                conf_percentile=self.options.conf_percentile if conf_percentile is None else conf_percentile,
                max_points=self.options.max_points if max_points is None else max_points,
                point_size=self.options.point_size,
            )
            if self.world is not None and redraw:
                self.payloads = build_frame_payloads(self.world, self.options)
                self._draw_all()

    def sample_points(self, limit: int = 20_000) -> np.ndarray | None:
        """A subsample of the drawn points (float32), for framing the view; None before a world."""
        with self._lock:
            if not self.payloads:
                return None
            pts = np.concatenate([p.points for p in self.payloads]).astype(np.float32)
        step = max(1, len(pts) // limit)
        return pts[::step]

    # ------------------------------------------------------------------------------------ closing
    def close(self) -> None:
        self.playback.close()
