"""Upload boxes whose files our code checks before Gradio's own preprocessing can fail or decode them.

``gr.Image`` decodes (and may convert) an upload before any handler runs, so a random-bytes
``fake.png`` became a raw ``UnidentifiedImageError`` naming a temp path, and a 13000² grayscale PNG
cost half a gigabyte. :class:`CheckedImage` reads the header bound and decodability first;
:class:`CheckedFile` checks the extension itself (and skips the empty temp file ``gr.File`` leaves per
call). A refused file reaches the handler as :class:`UploadRejected` (a one-line reason), so the page
shows it in the status line and clears the box; the rest of the page keeps working.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from gradio.utils import NamedString

from app.files import safe_name
from app.limits import IMAGE_MAX_PIXELS
from fantasy_world.errors import FantasyWorldError, InputError
from fantasy_world.validation import check_image_file

if TYPE_CHECKING:
    from app.callbacks import Studio

log = logging.getLogger(__name__)


class UploadRejected(str):
    """A refused upload: the value is the one-line reason shown to the visitor."""


def shown_name(payload: Any) -> str:
    """The file's base name as the visitor knows it (never the server path)."""
    name = getattr(payload, "orig_name", None) or Path(str(getattr(payload, "path", "") or "upload")).name
    return safe_name(Path(str(name)).name, "upload")


class CheckedImage(gr.Image):
    """``gr.Image`` whose upload is bounded and proven decodable by our code first."""

    is_template = True  # the page draws it with Gradio's own image component (not a custom one)

    def preprocess(self, payload: Any) -> Any:
        if payload is None:
            return None
        name = shown_name(payload)
        url = str(getattr(payload, "url", "") or "")
        path = getattr(payload, "path", None)
        if url.startswith("data:") or not path:
            return UploadRejected(f"start image {name}: expected an uploaded PNG, JPEG or WebP file")
        try:
            check_image_file(path, name="start image", max_pixels=IMAGE_MAX_PIXELS)
        except InputError as exc:
            return UploadRejected(str(exc))
        try:
            return super().preprocess(payload)
        except Exception as exc:  # Gradio's conversion of an image that did decode: still one line
            log.warning("start image %s: Gradio could not convert it (%s)", name, type(exc).__name__)
            return UploadRejected(
                f"start image {name}: not a usable image; expected a PNG, JPEG or WebP file"
            )


class CheckedFile(gr.File):
    """``gr.File`` (single file, filepath) that checks the extension itself and leaves no temp file."""

    is_template = True  # drawn with Gradio's own file component

    def _process_single_file(self, f: Any) -> NamedString | UploadRejected:
        name = shown_name(f)
        if not f.path:
            return UploadRejected(f"{name}: expected an uploaded file")
        suffix = Path(str(f.orig_name or f.path)).suffix.lower()
        allowed = [t.lower() for t in (self.file_types or []) if t.startswith(".")]
        if allowed and suffix not in allowed:
            return UploadRejected(f"{name}: expected a {' or '.join(allowed)} file")
        return NamedString(f.path)


class UploadHandlers:
    """Upload events: check, then hand over to the studio; on refusal clear the box and say why."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def start_image(self, image: Any, request: gr.Request | None = None) -> tuple[Any, str]:
        """An image dropped on the start-image box: refused ones are cleared at once."""
        from app.callbacks import status_html

        if image is None:
            return gr.update(), status_html("Start image removed")
        if isinstance(image, UploadRejected):
            return gr.update(value=None), status_html(str(image), "error")
        try:
            w, h = check_image_file(image, name="start image", max_pixels=IMAGE_MAX_PIXELS)
        except FantasyWorldError as exc:
            return gr.update(value=None), status_html(str(exc), "error")
        return gr.update(), status_html(f"Start image {Path(str(image)).name}: {w}×{h}")

    def camera_file(self, file: Any, request: gr.Request | None = None) -> tuple[str, Any]:
        """A camera-path file: loaded through the studio; a refused or malformed file is cleared."""
        from app.callbacks import status_html

        if isinstance(file, UploadRejected):
            return status_html(f"Camera file rejected: {file}", "error"), gr.update(value=None)
        status = self.studio.upload_path(file, request=request)
        return status, (gr.update(value=None) if "fw-error" in status else gr.update())

    def bundle(self, file: Any, max_points: Any, request: gr.Request | None = None) -> Iterator[tuple]:
        """A world.npz or bundle zip to re-open; a refused or unreadable one is cleared."""
        from app.callbacks import status_html

        keep = gr.update()
        if isinstance(file, UploadRejected):
            yield (
                status_html(f"Cannot open the file: {file}", "error"),
                keep,
                keep,
                keep,
                gr.update(value=None),
            )
            return
        for out in self.studio.reopen(file, max_points, request=request):
            failed = isinstance(out[0], str) and "fw-error" in out[0]
            yield (*out, gr.update(value=None) if failed else keep)
