"""What every UI event does. Plain methods of :class:`Studio`, so tests call them without a browser.

No model logic here: generation, camera paths, geometry and exports are library calls; this module
routes values between the Gradio widgets, the session's 3-D scene and the library.
"""

from __future__ import annotations

import html
import logging
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from app.cleanup import Janitor
from app.exports import open_upload, save_for_download
from app.files import checked_upload, gradio_upload_root
from app.gpu_queue import GpuQueue, PipelineCache, run_generation
from app.limits import IMAGE_MAX_PIXELS, world_limits
from app.messages import public_text
from app.models import model_choices, model_info
from app.sessions import Session, SessionRegistry
from app.uploads import UploadRejected
from app.visitors import COOKIE, VisitorBook, client_address, session_key, trust_forwarded_default
from fantasy_world.camera import PRESETS, CameraPath, as_camera_path, read_camera_bytes, save_camera_file
from fantasy_world.errors import FantasyWorldError, GenerationCancelled, InputError
from fantasy_world.pipeline import StepInfo, WorldResult
from fantasy_world.validation import (
    SizeLimits,
    check_frames,
    check_guidance,
    check_image_file,
    check_prompt,
    check_seed,
    check_size,
    check_steps,
)

log = logging.getLogger(__name__)

MAX_PRESET_PARAMS = 4
MAX_MESSAGE_CHARS = 300
WAIT_POLL_S = 0.5  # how often a queued request re-reads its position
ALREADY_SHOWN_S = 4.0  # how long the running run's status repeats "already generating" after a click
ALREADY = "Already generating: wait for this run or press Cancel"
# The 3-D view fills the first screen beside the controls; video and depth sit under it, side by side.
VIEWER_STYLE = "width:100%;height:max(420px, calc(100vh - 150px));border:0;border-radius:8px"
EXPORT_FORMATS = {"native": ".json", "worldscore": ".json", "re10k": ".txt", "nerfstudio": ".json"}


def one_line(text: object) -> str:
    """Any message as one bounded line (tracebacks, multi-line errors and server paths never reach the page)."""
    line = " ".join(public_text(str(text)).split())
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


def as_int(value: object, name: str) -> int:
    """A widget value as an int: integral numbers only, so 5.5 frames is an error, not 5."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name}={value!r}: expected a whole number")
    if isinstance(value, float) and not (
        value == value and abs(value) != float("inf") and value.is_integer()
    ):
        raise InputError(f"{name}={value!r}: expected a whole number")
    return int(value)


def as_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name}={value!r}: expected a number")
    return float(value)


MIN_POINTS = 1000


def check_max_points(value: object) -> int:
    """The point cap for the viewer and exports: a whole number of at least ``MIN_POINTS``."""
    n = as_int(value, "max_points")
    if n < MIN_POINTS:
        raise InputError(f"max_points={n}: expected a whole number of at least {MIN_POINTS}")
    return n


def status_html(text: str, kind: str = "info", step: int | None = None, total: int | None = None) -> str:
    """The status line under the viewer: message plus, while denoising, a step bar."""
    text = one_line(text)
    bar = ""
    if step is not None and total:
        pct = 100.0 * step / total
        bar = (
            f'<progress class="fw-progress" max="{total}" value="{step}" aria-label="denoising progress">'
            f"{pct:.0f}%</progress>"
        )
    return f'<div class="fw-status fw-{kind}" data-kind="{kind}">{html.escape(text)}{bar}</div>'


def _key(request: gr.Request | None) -> str:
    return (request.session_hash if request is not None else None) or "local"


class SessionGone(FantasyWorldError, gr.Error):
    """No open session for this tab: never opened by a page load, closed, or expired."""


class Studio:
    """App state shared by all sessions: the session registry and the (single) loaded pipeline."""

    def __init__(
        self,
        registry: SessionRegistry | None = None,
        pipelines: PipelineCache | None = None,
        gpu: GpuQueue | None = None,
        models: list[str] | None = None,
        upload_roots: list[Path] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else SessionRegistry()
        self.pipelines = pipelines if pipelines is not None else PipelineCache()
        self.gpu = gpu if gpu is not None else GpuQueue()
        self.models = list(models) if models is not None else model_choices()
        # Uploads are only read from Gradio's upload cache and our own session folders.
        self.upload_roots = list(upload_roots) if upload_roots is not None else [gradio_upload_root()]
        self.upload_roots.append(self.registry.root)
        self.visitors = VisitorBook()
        self.trust_forwarded = trust_forwarded_default()
        self.janitor = Janitor(self.visitors)
        self.registry.on_close.append(self.janitor.session_closed)
        self.registry.on_sweep.append(self.janitor.sweep)
        self._running: set[str] = set()  # sessions with a generation in flight
        self._running_lock = threading.Lock()
        self._clicked_again: dict[str, float] = {}  # session key -> when Generate was clicked mid-run

    def identity(self, request: gr.Request | None) -> tuple[str, str | None, str | None]:
        """(registry key, client address, visitor id) of a request.

        HTTP requests are known by the server-issued visitor cookie, never by the session hash alone
        (the client picks that); in-process callers (tests, notebooks) pass plain objects and are
        keyed by their session hash.
        """
        if not isinstance(request, gr.Request):
            return _key(request), None, None
        visitor = self.visitors.get(request.cookies.get(COOKIE))
        if visitor is None or not request.session_hash:
            raise SessionGone("no studio session for this tab: reload the page (cookies must be allowed)")
        peer = request.client.host if request.client else None
        address = client_address(peer, dict(request.headers), self.trust_forwarded)
        return session_key(visitor.id, request.session_hash), address, visitor.id

    def session(self, request: gr.Request | None) -> Session:
        """The tab's open session. Only a page load opens one for HTTP callers (:meth:`on_load`)."""
        key, address, _ = self.identity(request)
        if address is None:
            session = self.registry.open(key)
        else:
            session = self.registry.get(key)
            if session is None or session.closed:
                raise SessionGone("this tab's studio session was closed or has expired; reload the page")
            session.touch()
        if session.editor.on_change is None:  # first use: path edits fade the shown result
            session.editor.on_change = lambda _path, s=session: s.viewer.set_dimmed(
                s.viewer.world is not None
            )
            session.editor.scene_points = session.viewer.sample_points
        return session

    def is_generating(self, request: gr.Request | None) -> bool:
        try:
            key = self.identity(request)[0]
        except FantasyWorldError:
            return False
        with self._running_lock:
            return key in self._running

    def check_model(self, model: object) -> str:
        """Only models the picker offers: a typed path could otherwise load any folder on the host."""
        if not isinstance(model, str) or model not in self.models:
            offered = ", ".join(Path(m).name for m in self.models)
            raise InputError(f"model {str(model)[:80]!r}: not offered here; choose one of: {offered}")
        return model

    # ---------------------------------------------------------------------------- page lifecycle
    def on_load(self, request: gr.Request) -> str:
        """Create the visitor's scene and return the viewer iframe."""
        try:
            key, address, visitor = self.identity(request)
            known = self.registry.get(key) is not None
            s = self.registry.open(key, address, visitor, page_load=True)
            if visitor is not None and not known:
                self.visitors.pin(visitor, +1)
        except FantasyWorldError as exc:
            return status_html(str(exc), "error")
        return (
            f'<iframe id="fw-viewer" src="{s.viewer_url}" title="3-D view" '
            f'style="{VIEWER_STYLE}" allow="fullscreen"></iframe>'
        )

    def on_unload(self, request: gr.Request) -> None:
        try:
            key, _, _ = self.identity(request)
        except FantasyWorldError:
            return  # nobody we know: nothing of theirs is open
        self.registry.close(key)

    # -------------------------------------------------------------------------------- camera path
    def preset_controls(self, preset: str) -> list[Any]:
        """Slider updates for ``preset``'s parameters (unused sliders hidden)."""
        spec = PRESETS[preset]
        updates: list[Any] = []
        for i in range(MAX_PRESET_PARAMS):
            if i < len(spec.params):
                p = spec.params[i]
                label = f"{p.name} ({p.unit})" if p.unit else p.name
                updates.append(
                    gr.update(
                        visible=True,
                        label=label,
                        minimum=p.minimum,
                        maximum=p.maximum,
                        value=p.default,
                        info=p.description,
                    )
                )
            else:
                updates.append(gr.update(visible=False))
        return updates

    def apply_preset(
        self,
        preset: str,
        frames: int,
        p0: float | None = None,
        p1: float | None = None,
        p2: float | None = None,
        p3: float | None = None,
        request: gr.Request | None = None,
    ) -> str:
        """Replace the session's path with ``preset`` (slider values p0..p3) and draw it in the 3-D view."""
        values = (p0, p1, p2, p3)
        spec = PRESETS.get(preset)
        if spec is None:
            return status_html(f"camera preset {preset!r}: unknown", "error")
        params = {p.name: float(v) for p, v in zip(spec.params, values) if v is not None}
        try:
            path = CameraPath.preset(preset, num_frames=int(frames), **params)
            self.session(request).editor.set_path(path)
        except FantasyWorldError as exc:
            return status_html(str(exc), "error")
        return status_html(f"Camera path: {preset} set")

    def on_preset_change(self, preset: str, frames: int, request: gr.Request | None = None) -> list[Any]:
        """New preset picked: reset its sliders to defaults and draw it."""
        updates = self.preset_controls(preset)
        defaults = [p.default for p in PRESETS[preset].params]
        return [*updates, self.apply_preset(preset, frames, *defaults, request=request)]

    def set_frames(self, frames: int, request: gr.Request | None = None) -> str:
        s = self.session(request)
        try:
            s.editor.set_frames(int(frames))
        except FantasyWorldError as exc:
            return status_html(str(exc), "error")
        st = s.editor.path.settings
        return status_html(f"{st.num_frames} frames = {st.duration:.2f} s at {st.fps:g} fps")

    def upload_path(self, file: str | None, request: gr.Request | None = None) -> str:
        """A camera file dropped on the page: any supported format; malformed files give one line."""
        if not file:
            return status_html("No camera file given", "error")
        try:
            s = self.session(request)
            path = checked_upload(file, self.upload_roots, "camera")
            loaded = read_camera_bytes(path.read_bytes(), path.name)
            cam = as_camera_path(loaded)
            s.editor.set_path(cam)  # refuses a path it cannot sample; the previous path stays
        except FantasyWorldError as exc:
            return status_html(f"Camera file rejected: {exc}", "error")
        except OSError as exc:
            return status_html(f"Camera file: unreadable ({exc.strerror})", "error")
        return status_html(f"Loaded camera path {path.name}: {len(cam)} keyframes")

    def export_path(self, fmt: str, request: gr.Request | None = None) -> tuple[str | None, str]:
        """The current path in ``fmt`` as a file to download."""
        s = self.session(request)
        if fmt not in EXPORT_FORMATS:
            return None, status_html(
                f"export format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}", "error"
            )
        target = s.workdir / f"camera_path_{fmt}{EXPORT_FORMATS[fmt]}"
        try:
            save_camera_file(s.editor.path, target, format=fmt)
        except FantasyWorldError as exc:
            return None, status_html(str(exc), "error")
        self.janitor.handed_out(s, [target])
        return str(target), status_html(f"Camera path exported as {fmt}")

    # --------------------------------------------------------------------------------- generation
    def cancel(self, request: gr.Request | None = None) -> str:
        try:
            s = self.registry.get(self.identity(request)[0])
        except FantasyWorldError as exc:
            return status_html(str(exc), "error")
        if s is None or not self.is_generating(request):
            return status_html("Nothing is generating: there is nothing to cancel", "warn")
        s.cancel.set()
        return status_html("Cancelling after the current step…", "warn")

    def generate(
        self,
        prompt: str,
        negative_prompt: str,
        image: str | None,
        model: str,
        frames: int,
        height: int,
        width: int,
        steps: int,
        guidance: float,
        seed: int,
        preview_every: int,
        max_points: int,
        request: gr.Request | None = None,
        progress: gr.Progress | None = None,
        end_image: str | None = None,
    ) -> Iterator[tuple[Any, Any, Any, Any]]:
        """Generate, streaming (status, video, depth video, downloads) as the run advances.

        ``end_image``: the optional last frame of first/last-frame models (the end-image box).

        Progress is shown only as the bar in our status line (``progress`` is kept for callers that
        pass a ``gr.Progress`` of their own; the page passes none, so Gradio draws no second bar)."""
        keep = gr.update()
        try:
            s = self.session(request)
        except FantasyWorldError as exc:
            yield status_html(str(exc), "error"), keep, keep, keep
            return
        with self._running_lock:
            already = s.key in self._running
            self._running.add(s.key)
        if already:  # a second click during a run: say so (here and in the run's next lines), leave it be
            self._clicked_again[s.key] = time.monotonic()
            yield status_html(ALREADY, "warn"), keep, keep, keep
            return
        try:
            yield from self._generate(
                s, prompt, negative_prompt, image, model, frames, height, width, steps, guidance, seed,
                preview_every, max_points, progress, end_image,
            )  # fmt: skip
        finally:
            with self._running_lock:
                self._running.discard(s.key)
                self._clicked_again.pop(s.key, None)

    def _said(self, s: Session, text: str) -> str:
        """A running run's status line, led by "already generating" just after an extra click."""
        clicked = self._clicked_again.get(s.key)
        if clicked is not None and time.monotonic() - clicked < ALREADY_SHOWN_S:
            return f"{ALREADY} · {text}"
        return text

    def _generate(
        self,
        s: Session,
        prompt: str,
        negative_prompt: str,
        image: str | None,
        model: str,
        frames: int,
        height: int,
        width: int,
        steps: int,
        guidance: float,
        seed: int,
        preview_every: int,
        max_points: int,
        progress: gr.Progress | None,
        end_image: str | None = None,
    ) -> Iterator[tuple[Any, Any, Any, Any]]:
        keep = gr.update()
        s.cancel.clear()
        try:
            model = self.check_model(model)
            info = model_info(model)
            req = self._request(s, prompt, negative_prompt, image, frames, height, width, steps, info.limits)
            if end_image and not info.end_image:
                raise InputError(f"end image: model {info.label.split(' — ')[0]} takes no end image")
            if end_image:
                req["end_image"] = self._image(end_image)
            req |= {
                "guidance": check_guidance(as_float(guidance, "guidance")),
                "seed": check_seed(as_int(seed, "seed")),
                "preview_every": as_int(preview_every, "preview_every"),
            }
            if req["preview_every"] < 0:
                raise InputError(
                    f"preview_every={req['preview_every']}: expected 0 (off) or a number of steps"
                )
            max_points = check_max_points(max_points)
            ticket = self.gpu.enter()
        except FantasyWorldError as exc:
            yield status_html(str(exc), "error"), keep, keep, keep
            return
        s.busy = True
        stop = threading.Event()  # this run only: set when the page stops listening (tab or stream closed)
        try:
            while not ticket.acquire(WAIT_POLL_S):  # our turn on the GPU, showing the position meanwhile
                if s.cancel.is_set() or s.closed:
                    yield status_html("Cancelled while waiting for the GPU", "warn"), keep, keep, keep
                    return
                pos = ticket.position
                yield (
                    status_html(f"Waiting for the GPU: position {pos} in the queue", "warn"),
                    keep,
                    keep,
                    keep,
                )
            if s.closed:  # the tab went away while this request waited: run nothing for nobody
                return
            yield from self._run(s, ticket, model, req, max_points, progress, stop)
        except GeneratorExit:  # Gradio closes the generator when the client disconnects
            stop.set()  # the worker stops before its next denoising step
            raise
        finally:
            ticket.release()  # no-op when the worker already released it
            s.busy = False
            s.touch()

    def _request(
        self,
        s: Session,
        prompt: object,
        negative_prompt: object,
        image: object,
        frames: object,
        height: object,
        width: object,
        steps: object,
        limits: SizeLimits | None = None,
    ) -> dict[str, Any]:
        """The pipeline request from widget values, checked up front (with the model's limits on this
        device) so mistakes never queue and nothing is clamped."""
        limits = limits or SizeLimits()
        h, w = check_size(as_int(height, "height"), as_int(width, "width"), limits)
        return {
            "prompt": check_prompt(prompt),
            "negative_prompt": check_prompt(negative_prompt or "", "negative_prompt", allow_empty=True)
            or None,
            "camera": s.editor.path.copy(),
            "image": None if not image else self._image(image),
            "frames": check_frames(as_int(frames, "frames"), limits),
            "height": h,
            "width": w,
            "steps": check_steps(as_int(steps, "steps")),
        }

    def _image(self, image: object) -> str:
        """An uploaded start image: inside our upload folders, bounded, and fully decodable."""
        if isinstance(image, UploadRejected):  # refused by the image box's own check (app/uploads.py)
            raise InputError(str(image))
        path = checked_upload(image, self.upload_roots, "image")
        check_image_file(path, max_pixels=IMAGE_MAX_PIXELS)
        return str(path)

    def _run(
        self,
        s: Session,
        ticket: Any,
        model: str,
        req: dict[str, Any],
        max_points: int,
        progress: gr.Progress | None,
        stop: threading.Event | None = None,
    ) -> Iterator[tuple[Any, Any, Any, Any]]:
        """Holding the GPU: load the model, denoise in a worker thread, stream its steps."""
        stop = stop or threading.Event()
        keep = gr.update()
        yield status_html(f"Loading model {Path(model).name}…"), keep, keep, keep
        try:
            pipe = self.pipelines.get(model)
        except FantasyWorldError as exc:
            yield status_html(f"Model {Path(model).name}: {exc}", "error"), keep, keep, keep
            return
        events: queue.Queue[tuple[str, Any]] = queue.Queue()

        def on_step(info: StepInfo) -> None:
            if info.preview is not None and not s.closed:
                p = info.preview
                try:
                    s.viewer.show_preview(p.points, p.depths, p.points_conf, p.cam_c2w)
                except Exception:  # a broken preview must never stop the generation
                    log.exception("live preview failed at step %d", info.step)
            events.put(("step", info))

        def work() -> None:
            try:
                cancelled = lambda: s.cancel.is_set() or stop.is_set()  # noqa: E731
                events.put(("done", run_generation(pipe, req, on_step, cancelled)))
            except GenerationCancelled as exc:
                events.put(("cancelled", exc))
            except FantasyWorldError as exc:
                events.put(("error", exc))
            except Exception as exc:  # shown as one line; the traceback goes to the log
                log.exception("generation failed")
                events.put(("crash", exc))
            finally:
                ticket.release()
                release = getattr(self.pipelines, "release", None)  # a GPU replica (app/replicas.py)
                if release is not None:
                    release(pipe)

        threading.Thread(target=work, name="generation", daemon=True).start()
        total = req["steps"]
        yield status_html(f"Denoising step 0/{total}", step=0, total=total), keep, keep, keep
        while True:
            kind, value = events.get()
            if kind == "step" and value.phase != "denoising":  # e.g. "compiling (once)" before step 1
                if progress is not None:
                    progress(0.0, desc=value.message or value.phase)
                note = value.message or value.phase
                if value.phase == "compiling":
                    note = (
                        f"{note[:1].upper()}{note[1:]}: the first generation at this size compiles the model"
                    )
                yield status_html(self._said(s, note), step=0, total=value.total), keep, keep, keep
                continue
            if kind == "step":
                if progress is not None:
                    progress(value.step / value.total, desc=f"step {value.step}/{value.total}")
                text = f"Denoising step {value.step}/{value.total} · {value.elapsed_s:.1f} s"
                if value.preview is not None:
                    text += " · preview geometry updated"
                yield status_html(self._said(s, text), step=value.step, total=value.total), keep, keep, keep
                continue
            if kind == "cancelled":
                yield status_html(f"Cancelled: {value}", "warn"), keep, keep, keep
                return
            if kind in ("error", "crash"):
                msg = (
                    str(value) if kind == "error" else f"generation failed ({type(value).__name__}: {value})"
                )
                yield status_html(msg, "error"), keep, keep, keep
                return
            break
        yield from self._finish(s, value, max_points)

    def _finish(self, s: Session, world: WorldResult, max_points: int) -> Iterator[tuple[Any, Any, Any, Any]]:
        """Points first (the user is looking at the 3-D view), then files for the players and downloads."""
        keep = gr.update()
        if s.closed:  # the tab went away while this ran: draw nothing, write nothing
            return
        t0 = time.perf_counter()
        s.world = world
        s.viewer.set_filter(max_points=max_points, redraw=False)  # show_world draws with it
        s.viewer.show_world(world)
        s.timing.to_first_cloud_s = time.perf_counter() - t0
        yield status_html("Done: geometry in the 3-D view; writing video and exports…"), keep, keep, keep
        t1 = time.perf_counter()
        try:
            run = s.next_run_dir()
            files = save_for_download(world, run, max_points)
        except (FantasyWorldError, OSError) as exc:
            yield status_html(f"Export failed: {exc}", "error"), keep, keep, keep
            return
        s.timing.export_s = time.perf_counter() - t1
        self.janitor.handed_out(s, [run / "bundle" / "video.mp4", run / "bundle" / "depth.mp4", *files])
        bundle = run / "bundle"
        took = f" in {world.timings['total']:.1f} s" if "total" in world.timings else ""
        yield (
            status_html(f"Done{took}: {world.num_frames} frames, {world.width}×{world.height}", "ok"),
            str(bundle / "video.mp4"),
            str(bundle / "depth.mp4"),
            [str(f) for f in files],
        )

    # ------------------------------------------------------------------------------------ re-open
    def reopen(self, file: str | None, max_points: int, request: gr.Request | None = None) -> Iterator[Any]:
        """View an earlier result (world.npz or a zipped bundle) without loading any model."""
        keep = gr.update()
        if not file:
            yield status_html("No file given", "error"), keep, keep, keep
            return
        try:
            s = self.session(request)
        except FantasyWorldError as exc:
            yield status_html(str(exc), "error"), keep, keep, keep
            return
        s.busy = True
        try:
            path = checked_upload(file, self.upload_roots, "bundle")
            world = open_upload(path, s.workdir, world_limits(self.models))
            max_points = check_max_points(max_points)
        except FantasyWorldError as exc:
            yield status_html(f"Cannot open the file: {exc}", "error"), keep, keep, keep
            s.busy = False
            return
        try:
            yield from self._finish(s, world, max_points)
        finally:
            s.busy = False
