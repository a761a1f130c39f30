"""The camera path in the 3-D view: spline, keyframe frustums with drag/rotate gizmos, fly-through preview.

The path itself is a library :class:`~fantasy_world.camera.CameraPath`; this module only draws it and
turns viser interactions (gizmo drags, buttons on the viewer's panel) into ``CameraPath`` edits.
"""

from __future__ import annotations

import colorsys
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import viser

from app.framing import content_points, frame_scene, ground_plane, robust_centre_radius
from app.playback import Playback
from app.scene_data import pose_to_wxyz_position, scene_extent, wxyz_position_to_pose
from app.stage import apply_framing, draw_ground, scene_lock
from fantasy_world.camera import CameraPath
from fantasy_world.errors import FantasyWorldError, InputError

log = logging.getLogger(__name__)

ROOT = "/path"
KEY_COLOR = (250, 170, 30)
SELECTED_COLOR = (230, 30, 60)
SPLINE_COLOR = (250, 200, 60)
DENSE_SAMPLES = 120
NEW_KEY_STEP = 0.8  # a keyframe added from the view sits this many scene radii in front of the eye
GIZMO_SCALE = 1.5  # gizmo size in keyframe-frustum sizes
MAX_DRAWN_KEYS = 12  # a per-frame file (one keyframe per camera) shows this many frustums, the rest as line


def path_summary(path: CameraPath) -> str:
    """One line the viewer panel and the page both show, so they always agree."""
    s = path.settings
    name = path.preset_name or "edited"
    return (
        f"{name} · {len(path)} keyframes · {s.num_frames} frames · "
        f"{s.duration:.2f} s at {s.fps:g} fps{' · loop' if s.loop else ''}"
    )


class PathEditor:
    """Owns the session's :class:`CameraPath` and its drawing; ``on_change`` fires after every edit."""

    def __init__(
        self,
        server: viser.ViserServer,
        path: CameraPath | None = None,
        on_change: Callable[[CameraPath], None] | None = None,
    ) -> None:
        self.server = server
        self.path = path or CameraPath.preset("orbit", num_frames=17)
        self.on_change = on_change
        self.framer: Callable[[], None] | None = None  # the session frames path + world together
        # The generated points, so sizes and steps follow the whole scene, not the path alone.
        self.scene_points: Callable[[], np.ndarray | None] | None = None
        self._radius = 1.0
        self._remeasure = True  # sizes are measured for a new path or world, not on every edit
        self.selected = 0
        self.show_gizmos = True
        self.message = ""
        self.version = 0  # bumped on every edit; the UI compares it to know the path changed
        self._lock = scene_lock(server)  # shared with the viewer and the framing: one owner
        self._gizmo: Any = None
        self._frustums: dict[int, Any] = {}  # keyframe index -> its drawn frustum
        self._scale = 0.1
        self.fly = Playback(self._fly_to)
        self._build_gui()
        self.redraw()
        self.frame_view()

    # ---------------------------------------------------------------------------------------- GUI
    def _build_gui(self) -> None:
        gui = self.server.gui
        with gui.add_folder("Camera path", order=1):
            self.gui_summary = gui.add_markdown("")
            self.gui_add = gui.add_button("Add keyframe from view", icon=viser.Icon.CAMERA_PLUS)
            self.gui_key = gui.add_slider("Keyframe", 0, 1, 1, 0)
            self.gui_fov = gui.add_slider("Keyframe FoV (deg)", 10.0, 120.0, 0.5, 60.0)
            self.gui_earlier = gui.add_button("Move earlier")
            self.gui_later = gui.add_button("Move later")
            self.gui_goto = gui.add_button("Go to keyframe")
            self.gui_delete = gui.add_button("Delete keyframe", color="red")
            self.gui_loop = gui.add_checkbox("Loop", self.path.settings.loop)
            self.gui_gizmos = gui.add_checkbox("Show gizmos", True)
        with gui.add_folder("Fly-through", order=2, expand_by_default=False):
            self.gui_fly_frame = gui.add_slider("Preview frame", 0, 1, 1, 0)
            self.gui_fly_play = gui.add_checkbox("Play fly-through", False)

        self.gui_add.on_click(self._on_add)
        self.gui_key.on_update(lambda _: self._select(int(self.gui_key.value)))
        self.gui_fov.on_update(lambda _: self._on_fov())
        self.gui_earlier.on_click(lambda _: self._move(-1))
        self.gui_later.on_click(lambda _: self._move(+1))
        self.gui_goto.on_click(self._on_goto)
        self.gui_delete.on_click(lambda _: self.delete_keyframe(self.selected))
        self.gui_loop.on_update(lambda _: self.set_loop(bool(self.gui_loop.value)))
        self.gui_gizmos.on_update(lambda _: self._set_gizmos(bool(self.gui_gizmos.value)))
        self.gui_fly_frame.on_update(lambda _: self._fly_to(int(self.gui_fly_frame.value)))
        self.gui_fly_play.on_update(lambda _: self.fly.play(bool(self.gui_fly_play.value)))

    # ------------------------------------------------------------------------------------ editing
    def set_path(self, path: CameraPath, frame: bool = True) -> None:
        """Replace the whole path (preset, uploaded file); ``frame=False`` keeps the person's view.

        The new path is sampled before anything changes, and if drawing it still fails the previous
        path is put back, so a bad file never leaves a half-installed path behind.
        """
        try:
            path.sample()
            path.evaluate(np.linspace(0.0, 1.0, DENSE_SAMPLES))
        except FantasyWorldError:
            raise
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            raise InputError(f"camera path: cannot be sampled ({type(exc).__name__})") from None
        with self._lock:
            previous, previous_selected = self.path, self.selected
            try:
                self.path = path
                self.selected = 0
                self._remeasure = True
                self.gui_loop.value = path.settings.loop
                self._edited()
                if frame:
                    self.frame_view()
            except Exception as exc:
                log.warning("camera path could not be drawn (%s); keeping the previous one", exc)
                self.path, self.selected = previous, previous_selected
                self._edited()
                if isinstance(exc, FantasyWorldError):
                    raise
                raise InputError(f"camera path: cannot be drawn ({type(exc).__name__})") from None

    def set_frames(self, num_frames: int, fps: float | None = None) -> None:
        with self._lock:
            self.path.settings.num_frames = int(num_frames)
            if fps is not None:
                self.path.settings.fps = float(fps)
            self.path.settings.validate("camera path")
            self._edited(redraw_keys=False)

    def add_keyframe(self, c2w: np.ndarray, fov_y_deg: float | None = None) -> int:
        """Insert after the selected keyframe (at the end when the last one is selected)."""
        with self._lock:
            index = self.path.insert_keyframe(min(self.selected + 1, len(self.path)), c2w, fov_y_deg)
            self.selected = index
            self._edited()
            return index

    def delete_keyframe(self, index: int) -> None:
        with self._lock:
            if len(self.path) <= 2:
                self._report("a path needs at least 2 keyframes; add one before deleting")
                return
            self.path.remove_keyframe(index)
            self.selected = min(self.selected, len(self.path) - 1)
            self._edited()

    def move_keyframe(self, index: int, new_index: int) -> None:
        with self._lock:
            self.path.move_keyframe(index, new_index)
            self.selected = new_index
            self._edited()

    def update_keyframe(
        self, index: int, c2w: np.ndarray | None = None, fov_y_deg: float | None = None
    ) -> None:
        with self._lock:
            self.path.update_keyframe(index, c2w=c2w, fov_y_deg=fov_y_deg)
            self._edited(redraw_keys=fov_y_deg is not None)

    def set_loop(self, loop: bool) -> None:
        with self._lock:
            if self.path.settings.loop != loop:
                self.path.settings.loop = loop
                self._edited(redraw_keys=False)

    def _edited(self, redraw_keys: bool = True) -> None:
        self.version += 1
        self.message = ""
        self.redraw(keys=redraw_keys)
        if self.on_change is not None:
            self.on_change(self.path)

    def _report(self, message: str) -> None:
        self.message = message
        self._update_summary()
        for client in self.server.get_clients().values():
            client.add_notification("Camera path", message, auto_close_seconds=5.0, color="red")

    # ------------------------------------------------------------------------------- GUI handlers
    def _on_add(self, event: Any) -> None:
        client = event.client
        if client is None:
            return
        cam = client.camera
        c2w = wxyz_position_to_pose(np.asarray(cam.wxyz), np.asarray(cam.position))
        try:
            self.add_keyframe_from_view(c2w)
        except FantasyWorldError as exc:
            self._report(str(exc))

    def add_keyframe_from_view(self, eye_c2w: np.ndarray) -> int:
        """A keyframe where the person looks: a short step in front of their eye (so its gizmo is in
        view, not around the eye), aimed the same way, with the path's FoV (not the viewer's)."""
        with self._lock:
            c2w = np.array(eye_c2w, dtype=np.float64)
            c2w[:3, 3] += NEW_KEY_STEP * self.scene_radius() * c2w[:3, 2]
            fov = self.path.keyframes[self.selected].fov_y_deg if len(self.path) else None
            return self.add_keyframe(c2w, fov)

    def _select(self, index: int) -> None:
        with self._lock:
            self.selected = max(0, min(index, len(self.path) - 1))
            self.gui_fov.value = round(self.path.keyframes[self.selected].fov_y_deg, 1)
            if self.selected not in self._frustums:  # a thinned-out keyframe: draw it now
                self._draw_keyframes()
            self._color_frustums()

    def _on_fov(self) -> None:
        with self._lock:
            kf = self.path.keyframes[self.selected]
            if abs(kf.fov_y_deg - float(self.gui_fov.value)) > 1e-6:
                self.update_keyframe(self.selected, fov_y_deg=float(self.gui_fov.value))

    def _move(self, delta: int) -> None:
        target = self.selected + delta
        if 0 <= target < len(self.path):
            self.move_keyframe(self.selected, target)

    def _on_goto(self, event: Any) -> None:
        kf = self.path.keyframes[self.selected]
        self._set_cameras(kf.c2w, kf.fov_y_deg, [event.client] if event.client else None)

    def _set_gizmos(self, show: bool) -> None:
        with self._lock:
            self.show_gizmos = show
            if self._gizmo is not None:
                self._gizmo.visible = show

    # ------------------------------------------------------------------------------------ drawing
    def redraw(self, keys: bool = True) -> None:
        """Spline + sampled frame markers always; keyframe gizmos and frustums when ``keys``."""
        with self._lock, self.server.atomic():
            if self._remeasure:
                self._measure()
                self._remeasure = False
            self._draw_spline()
            if keys:
                self._draw_keyframes()
            self._update_summary()
            n = self.path.settings.num_frames
            self.gui_fly_frame.max = max(1, n - 1)
            self.fly.set_frames(n)
            self.fly.fps = self.path.settings.fps

    def _measure(self) -> None:
        """Keyframe and gizmo size from the path (its sampled cameras and what they look at).

        Measured when a path is set, then kept while keyframes are edited: one keyframe added far
        away must not blow every frustum and gizmo up."""
        c2w = self.path.sample().c2w
        cams = c2w[:, :3, 3]
        _, radius = robust_centre_radius(np.concatenate([cams, content_points(c2w, None)]))
        self._radius = radius
        self._scale = max(0.05 * scene_extent(cams), 0.06 * radius)

    def scene_radius(self) -> float:
        """How big the scene is now: the path, plus the generated points when there are some."""
        points = None
        if self.scene_points is not None:
            try:
                points = self.scene_points()
            except Exception:  # the viewer may be mid-redraw; the path's size then
                log.debug("scene points unavailable for sizing", exc_info=True)
        if points is None or len(points) < 16:
            return self._radius
        c2w = self.path.sample().c2w
        _, radius = robust_centre_radius(np.concatenate([c2w[:, :3, 3], content_points(c2w, points)]))
        return max(radius, self._radius)

    def _draw_spline(self) -> None:
        scene = self.server.scene
        scene.remove_by_name(f"{ROOT}/spline")
        scene.remove_by_name(f"{ROOT}/frames")
        if len(self.path) < 2:
            return
        dense, _ = self.path.evaluate(np.linspace(0.0, 1.0, DENSE_SAMPLES))
        scene.add_spline_catmull_rom(
            f"{ROOT}/spline",
            dense[:, :3, 3],
            color=SPLINE_COLOR,
            thickness=4.0,
            thickness_units="screen",
            closed=self.path.settings.loop,
        )
        frames = self.path.sample().c2w[:, :3, 3]
        hues = np.linspace(0.0, 0.8, len(frames))
        colors = np.array([colorsys.hsv_to_rgb(h, 0.9, 1.0) for h in hues]) * 255
        scene.add_point_cloud(
            f"{ROOT}/frames",
            frames,
            colors.astype(np.uint8),
            point_size=self._scale * 0.25,
            point_shape="circle",
        )

    def _draw_keyframes(self) -> None:
        """A frustum per keyframe (click to select) and one gizmo on the selected keyframe.

        A path with one keyframe per frame (a loaded camera file) would be a crown of frustums: then
        only ``MAX_DRAWN_KEYS`` evenly spaced ones, the ends and the selected one are drawn; the others
        are still on the path line and reachable with the Keyframe slider."""
        scene = self.server.scene
        scene.remove_by_name(f"{ROOT}/keys")
        scene.remove_by_name(f"{ROOT}/gizmo")
        self._frustums = {}
        s = self.path.settings
        n = len(self.path)
        drawn = set(range(n))
        if n > MAX_DRAWN_KEYS:
            drawn = {int(round(v)) for v in np.linspace(0, n - 1, MAX_DRAWN_KEYS)} | {self.selected}
        for i, kf in enumerate(self.path.keyframes):
            if i not in drawn:
                continue
            wxyz, pos = pose_to_wxyz_position(kf.c2w)
            frustum = scene.add_camera_frustum(
                f"{ROOT}/keys/k{i}",
                fov=float(np.radians(kf.fov_y_deg)),
                aspect=s.width / s.height,
                scale=self._scale,
                color=SELECTED_COLOR if i == self.selected else KEY_COLOR,
                wxyz=wxyz,
                position=pos,
            )
            frustum.on_click(lambda _, i=i: self._select_from_click(i))
            self._frustums[i] = frustum
        wxyz, pos = pose_to_wxyz_position(self.path.keyframes[self.selected].c2w)
        self._gizmo = scene.add_transform_controls(
            f"{ROOT}/gizmo",
            scale=self._scale * GIZMO_SCALE,
            wxyz=wxyz,
            position=pos,
            visible=self.show_gizmos,
        )
        self._gizmo.on_update(lambda _: self._on_drag())

    def _on_drag(self) -> None:
        """The gizmo moved or rotated: update the selected keyframe, its frustum and the spline."""
        with self._lock:
            gizmo, index = self._gizmo, self.selected
            if gizmo is None:
                return
            c2w = wxyz_position_to_pose(np.asarray(gizmo.wxyz), np.asarray(gizmo.position))
            if np.allclose(c2w, self.path.keyframes[index].c2w, atol=1e-6):
                return  # our own re-positioning of the gizmo, not a drag
            try:
                self.update_keyframe(index, c2w=c2w)
            except FantasyWorldError as exc:
                self._report(str(exc))
                return
            if index in self._frustums:
                self._frustums[index].wxyz, self._frustums[index].position = gizmo.wxyz, gizmo.position

    def _select_from_click(self, index: int) -> None:
        self.gui_key.value = index
        self._select(index)

    def _color_frustums(self) -> None:
        """Highlight the selected keyframe and move the gizmo onto it."""
        for i, frustum in self._frustums.items():
            frustum.color = SELECTED_COLOR if i == self.selected else KEY_COLOR
        if self._gizmo is not None and self.selected < len(self.path):
            wxyz, pos = pose_to_wxyz_position(self.path.keyframes[self.selected].c2w)
            self._gizmo.wxyz, self._gizmo.position = wxyz, pos

    def _update_summary(self) -> None:
        text = f"**{path_summary(self.path)}**"
        if self.message:
            text += f"\n\n⚠ {self.message}"
        self.gui_summary.content = text
        self.gui_key.max = max(1, len(self.path) - 1)
        self.gui_key.value = min(self.selected, len(self.path) - 1)
        self.gui_fov.value = round(self.path.keyframes[self.selected].fov_y_deg, 1)

    def frame_view(self) -> None:
        """Frame the path (or, inside a session, path and world) from behind and above the first camera."""
        if self.framer is not None:
            self.framer()
            return
        c2w = self.path.sample().c2w
        apply_framing(self.server, frame_scene(c2w))
        draw_ground(self.server, ground_plane(c2w))

    # ------------------------------------------------------------------------------- fly-through
    def _fly_to(self, frame: int) -> None:
        traj = self.path.sample()
        i = max(0, min(int(frame), len(traj) - 1))
        self._set_cameras(traj.c2w[i], float(traj.fov_y_deg[i]))

    def _set_cameras(self, c2w: np.ndarray, fov_deg: float, clients: list[Any] | None = None) -> None:
        wxyz, pos = pose_to_wxyz_position(c2w)
        for client in clients or list(self.server.get_clients().values()):
            with client.atomic():
                client.camera.wxyz = wxyz
                client.camera.position = pos
                client.camera.fov = float(np.radians(fov_deg))

    def close(self) -> None:
        self.fly.close()
