"""Page handlers that keep the inputs honest: model-dependent ranges, frame counts from loaded paths,
and a path summary that always says what the 3-D view shows.

Nothing here changes a value without saying so in the status line.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr

from app.callbacks import Studio, as_int, status_html
from app.models import ModelInfo, model_info
from app.path_editor import path_summary
from app.uploads import UploadRejected
from fantasy_world.camera import PRESETS, CameraPath
from fantasy_world.errors import FantasyWorldError
from fantasy_world.validation import check_frames


def summary_html(text: str) -> str:
    return f'<div class="fw-path-summary" data-summary="{html.escape(text)}">Path: {html.escape(text)}</div>'


def nearest_valid_frames(n: int, max_frames: int) -> int:
    """The largest 1+4k count not above ``n`` (and the model's maximum)."""
    n = max(1, min(int(n), max_frames))
    return (n - 1) // 4 * 4 + 1


class Page:
    """Handlers wired by :func:`app.ui.build_ui` next to the :class:`Studio` ones."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def info(self, model: object) -> ModelInfo:
        return model_info(self.studio.check_model(model))

    # ------------------------------------------------------------------------------------- model
    @staticmethod
    def input_hints(info: ModelInfo) -> list[str]:
        """Hints for (frames, height, width, steps, guidance, seed): ranges from the model and device."""
        r = info.ranges()
        width = f"up to {info.max_side} with height {info.limits.min_side}"
        return [r["frames"], r["size"], width, r["steps"], r["guidance"], r["seed"]]

    def on_model_change(self, model: str, image: str | None, request: gr.Request | None = None) -> list[Any]:
        """New model picked: its note, the image box if it takes one, its defaults and ranges — all said."""
        keep = gr.update()
        try:
            info = self.info(model)
        except FantasyWorldError as exc:
            return [keep, keep, *([keep] * 6), status_html(str(exc), "error")]
        d = info.defaults
        defaults = [d.frames, d.height, d.width, d.steps, d.guidance, None]  # the seed stays
        values = [
            gr.update(info=hint) if value is None else gr.update(value=value, info=hint)
            for value, hint in zip(defaults, self.input_hints(info))
        ]
        said = (
            f"Model {info.label.split(' — ')[0]}: its defaults set — {d.frames} frames, "
            f"{d.height}×{d.width}, {d.steps} steps, guidance {d.guidance:g}"
        )
        image_update = gr.update(visible=info.image_input)
        if image and not info.image_input:
            image_update = gr.update(visible=False, value=None)
            said += "; start image removed (this model is text-to-world)"
        frames_status = self.on_frames(d.frames, model, request)
        if "fw-error" in frames_status:
            return [keep, keep, *([keep] * 6), frames_status]
        return [image_update, info.note, *values, status_html(said)]

    def on_model_end_image(self, model: str) -> Any:
        """The end-image box: shown only for models that take a last frame (cleared when hidden)."""
        try:
            info = self.info(model)
        except FantasyWorldError:
            return gr.update()
        return gr.update(visible=True) if info.end_image else gr.update(visible=False, value=None)

    # -------------------------------------------------------------------------------------- path
    def on_path_upload(
        self, file: Any, model: str, request: gr.Request | None = None
    ) -> tuple[str, Any, Any]:
        """Load a camera file, then make Frames follow it (or say which count was used instead).

        A file our upload checks refused, or one that does not load, is cleared from the box.
        """
        keep, clear = gr.update(), gr.update(value=None)
        if isinstance(file, UploadRejected):
            return status_html(f"Camera file rejected: {file}", "error"), keep, clear
        status = self.studio.upload_path(file, request)
        if "fw-error" in status:
            return status, keep, clear
        s = self.studio.session(request)
        path = s.editor.path
        n = path.settings.num_frames
        try:
            max_frames = self.info(model).limits.max_frames
        except FantasyWorldError:
            max_frames = n
        frames = nearest_valid_frames(n, max_frames)
        name = Path(str(file)).name if file else "camera file"
        text = f"Loaded {name}: {n} frames · {n / path.settings.fps:.2f} s; Frames set to {frames}"
        if frames != n:
            s.editor.set_frames(frames)
            text += f" (the model takes 1+4k frames up to {max_frames}, so the path is resampled to {frames})"
        return status_html(text, "ok" if frames == n else "warn"), gr.update(value=frames), keep

    def on_frames(self, frames: object, model: str, request: gr.Request | None = None) -> str:
        """Frames typed or stepped: refused when invalid for the model; an unedited preset is rebuilt so
        it never has more keyframes than frames."""
        try:
            n = check_frames(as_int(frames, "frames"), self.info(model).limits)
        except FantasyWorldError as exc:
            return status_html(str(exc), "error")
        s = self.studio.session(request)
        path = s.editor.path
        try:
            if path.preset_name and path.exact is not None:
                rebuilt = CameraPath.preset(path.preset_name, num_frames=n, **path.preset_params)
                s.editor.set_path(rebuilt, frame=False)  # same move, new keyframe count: the view stays
            else:
                s.editor.set_frames(n)
        except FantasyWorldError as exc:
            return status_html(str(exc), "error")
        st = s.editor.path.settings
        return status_html(f"{st.num_frames} frames = {st.duration:.2f} s at {st.fps:g} fps")

    def on_preset_param(
        self, preset: str, frames: object, *values: float | None, request: gr.Request | None = None
    ) -> list[Any]:
        """A preset slider moved or typed: apply it, or refuse it with one line and put the sliders
        back to the values the path really has (no box is left showing a clamped number)."""
        keep = [gr.update() for _ in values]
        try:
            frames = check_frames(as_int(frames, "frames"))
        except FantasyWorldError as exc:
            return [*keep, status_html(str(exc), "error")]
        status = self.studio.apply_preset(preset, frames, *values, request=request)
        if "fw-error" not in status:
            return [*keep, status]
        path = self.studio.session(request).editor.path
        spec = PRESETS.get(preset)
        if spec is None or path.preset_name != preset:
            return [*keep, status]
        back = [gr.update(value=path.preset_params.get(p.name, p.default)) for p in spec.params]
        back += keep[len(back) :]
        return [*back, status]

    def on_preset_change(self, preset: str, frames: object, request: gr.Request | None = None) -> list[Any]:
        """A new preset: its sliders at their defaults and the path drawn (frames checked first)."""
        try:
            n = check_frames(as_int(frames, "frames"))
        except FantasyWorldError as exc:
            return [*self.studio.preset_controls(preset), status_html(str(exc), "error")]
        return self.studio.on_preset_change(preset, n, request=request)

    def path_tick(self, shown: object, request: gr.Request | None = None) -> tuple[Any, Any]:
        """Poll: when the path changed (here or in the 3-D view), show the viewer's own summary."""
        try:
            key = self.studio.identity(request)[0]  # the same key the studio opened the session under
        except FantasyWorldError:
            return gr.update(), shown
        s = self.studio.registry.get(key)
        if s is None:
            return gr.update(), shown
        version = s.editor.version
        if shown == version:
            return gr.update(), shown
        return summary_html(path_summary(s.editor.path)), version
