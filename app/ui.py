"""Gradio layout and event wiring (left: inputs; centre: 3-D view; right: video, depth, downloads)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from app.callbacks import EXPORT_FORMATS, MAX_PRESET_PARAMS, Studio, status_html
from app.models import DEFAULT_MODEL, model_info
from app.page import Page, summary_html
from app.path_editor import path_summary
from app.uploads import CheckedFile, CheckedImage, UploadHandlers
from fantasy_world.camera import PRESETS, CameraPath

log = logging.getLogger(__name__)

EXAMPLES_FILE = Path(__file__).resolve().parents[1] / "assets" / "examples" / "prompts.json"
DEFAULT_PRESET = "orbit"
# Generate requests let through at once; studio.gpu runs them one by one and shows each its position.
GENERATE_CONCURRENCY = 4
PATH_POLL_S = 1.0  # how often the page re-reads the path summary (edits in the 3-D view)

CSS = """
.fw-status { padding: 6px 10px; border-radius: 6px; background: var(--block-background-fill); min-height: 1.6em; }
.fw-error { color: #b91c1c; border: 1px solid #fca5a5; }
.fw-warn { color: #92400e; border: 1px solid #fcd34d; }
.fw-ok { color: #166534; border: 1px solid #86efac; }
.fw-progress { width: 100%; height: 10px; display: block; margin-top: 4px; }
.fw-path-summary { font-size: 0.9em; opacity: 0.85; padding: 0 10px; }
#fw-model-note { font-size: 0.85em; opacity: 0.85; }
#fw-title h2 { margin: 0; }
#fw-actions button { min-height: 42px; }
#fw-top { position: sticky; top: 0; z-index: 20; background: var(--background-fill-primary); }
#fw-main video { max-height: 42vh; }
"""


def example_prompts() -> list[list[str]]:
    """Example prompts shipped in assets/examples/prompts.json (prompt, preset)."""
    try:
        items = json.loads(EXAMPLES_FILE.read_text())
    except (OSError, ValueError):
        log.warning("no example prompts at %s", EXAMPLES_FILE)
        return []
    return [[it["prompt"], it["camera"]] for it in items if it.get("camera") in PRESETS]


def refusing_slider(**kwargs: Any) -> gr.Slider:
    """A slider whose typed values reach our handler as typed. Gradio's own bounds check would answer
    with a generic error and leave the box clamped to the end of its range while the path kept the
    old value; our handler refuses the value with one line and puts the slider back."""
    slider = gr.Slider(**kwargs)
    slider.preprocess = lambda payload: payload  # type: ignore[method-assign]  # per instance, no subclass
    return slider


def _number(value: float, label: str, elem_id: str, info: str, step: float = 1) -> gr.Number:
    """A number box with no Gradio bounds or rounding: our checks refuse bad values with one line,
    where a slider would clamp them and Gradio would round them without a word."""
    return gr.Number(value=value, label=label, elem_id=elem_id, info=info, step=step, precision=None)


def build_ui(studio: Studio) -> gr.Blocks:
    """The whole page. Every handler is a :class:`Studio` or :class:`Page` method; this only wires them.

    Left, top to bottom: prompt, Generate / Cancel with the status right under them, the path summary,
    the model and its note, then tabs (camera, settings, files), so Generate is in the first screen at
    1280×800. Right: the 3-D view, then video and depth side by side.
    """
    page = Page(studio)
    info = model_info(DEFAULT_MODEL)
    d = info.defaults
    ranges = info.ranges()
    spec = PRESETS[DEFAULT_PRESET]
    with gr.Blocks(
        title="FantasyWorld Studio",
        fill_width=True,
        analytics_enabled=False,  # a local tool: no usage pings to Gradio's servers
        delete_cache=(max(60, int(studio.registry.ttl_s) // 4), int(studio.registry.ttl_s)),
    ) as demo:
        gr.Markdown(
            "## FantasyWorld Studio — prompt + camera path → video, depth, points and cameras",
            elem_id="fw-title",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=340, elem_id="fw-left"):
                # Prompt, Generate / Cancel, status and path line stay on screen while the column scrolls.
                with gr.Column(elem_id="fw-top"):
                    prompt = gr.Textbox(label="Prompt", lines=2, elem_id="fw-prompt")
                    with gr.Row(elem_id="fw-actions"):
                        generate = gr.Button("Generate", variant="primary", elem_id="fw-generate", scale=2)
                        cancel = gr.Button("Cancel", variant="stop", elem_id="fw-cancel", scale=1)
                    status = gr.HTML(
                        status_html("Ready: type a prompt, pick a camera path, press Generate"),
                        elem_id="fw-status",
                    )
                    summary = gr.HTML(
                        summary_html(path_summary(CameraPath.preset(DEFAULT_PRESET, d.frames))),
                        elem_id="fw-path-summary",
                    )
                model = gr.Dropdown(
                    [(model_info(m).label, m) for m in studio.models],
                    value=DEFAULT_MODEL,
                    label="Model",
                    allow_custom_value=False,
                    elem_id="fw-model",
                )
                model_note = gr.Markdown(info.note, elem_id="fw-model-note")
                image = CheckedImage(
                    label="Start image (this model is image-to-world)",
                    type="filepath",
                    height=160,
                    elem_id="fw-image",
                    visible=info.image_input,
                )
                end_image = CheckedImage(
                    label="End image (optional: the last frame)",
                    type="filepath",
                    height=160,
                    elem_id="fw-end-image",
                    visible=info.end_image,
                )
                with gr.Tabs():
                    with gr.Tab("Camera path", elem_id="fw-tab-camera"):
                        with gr.Row():
                            preset = gr.Dropdown(
                                list(PRESETS),
                                value=DEFAULT_PRESET,
                                label="Camera preset",
                                elem_id="fw-preset",
                            )
                            frames = _number(d.frames, "Frames", "fw-frames", ranges["frames"], step=4)
                        params = []
                        for i in range(MAX_PRESET_PARAMS):
                            p = spec.params[i] if i < len(spec.params) else None
                            params.append(
                                refusing_slider(
                                    minimum=p.minimum if p else 0,
                                    maximum=p.maximum if p else 1,
                                    value=p.default if p else 0,
                                    label=(f"{p.name} ({p.unit})" if p and p.unit else p.name if p else ""),
                                    info=p.description if p else None,
                                    visible=p is not None,
                                    elem_id=f"fw-param{i}",
                                )
                            )
                    with gr.Tab("Settings", elem_id="fw-tab-settings"):
                        with gr.Row():
                            height = _number(d.height, "Height", "fw-height", ranges["size"], step=16)
                            width = _number(d.width, "Width", "fw-width", Page.input_hints(info)[2], step=16)
                        with gr.Row():
                            steps = _number(d.steps, "Steps", "fw-steps", ranges["steps"])
                            guidance = _number(d.guidance, "Guidance", "fw-guidance", ranges["guidance"], 0.5)
                        with gr.Row():
                            seed = _number(0, "Seed", "fw-seed", ranges["seed"])
                            preview_every = _number(2, "Live geometry every K steps", "fw-preview", "0 = off")
                        max_points = _number(
                            200_000,
                            "Max points (viewer and exports)",
                            "fw-max-points",
                            "a whole number of at least 1,000",
                            10_000,
                        )
                        negative = gr.Textbox(label="Negative prompt", lines=2)
                    with gr.Tab("Files", elem_id="fw-tab-files"):
                        with gr.Row():
                            export_fmt = gr.Dropdown(
                                list(EXPORT_FORMATS), value="native", label="Export format"
                            )
                            export_btn = gr.Button("Export path", elem_id="fw-export")
                        export_file = gr.File(
                            label="Exported path", interactive=False, elem_id="fw-export-file"
                        )
                        path_file = CheckedFile(
                            label="Import path (drop a .json / .txt)",
                            file_types=[".json", ".txt"],
                            elem_id="fw-path-upload",
                        )
                        reopen_file = CheckedFile(
                            label="Re-open a result: world.npz or bundle .zip",
                            file_types=[".npz", ".zip"],
                            elem_id="fw-reopen",
                        )
            with gr.Column(scale=3, min_width=480, elem_id="fw-main"):
                viewer = gr.HTML(elem_id="fw-viewer-box", js_on_load=None)
                with gr.Row(equal_height=False):
                    video = gr.Video(
                        label="Video", autoplay=True, loop=True, elem_id="fw-video", interactive=False
                    )
                    depth = gr.Video(
                        label="Depth", autoplay=True, loop=True, elem_id="fw-depth", interactive=False
                    )
                downloads = gr.File(
                    label="Downloads", file_count="multiple", interactive=False, elem_id="fw-downloads"
                )
        examples = example_prompts()
        if examples:
            gr.Examples(
                examples,
                inputs=[prompt, preset],
                label="Example prompts (what the bundled tiny model can draw)",
            )
        shown_version = gr.State(-1)
        tick = gr.Timer(PATH_POLL_S)

        quiet = {"show_progress": "hidden"}  # one progress display: the bar in our status line
        demo.load(studio.on_load, outputs=viewer)
        demo.unload(studio.on_unload)
        tick.tick(page.path_tick, shown_version, [summary, shown_version], queue=False, **quiet)
        model.change(
            page.on_model_change,
            [model, image],
            [image, model_note, frames, height, width, steps, guidance, seed, status],
            **quiet,
        )
        preset.change(page.on_preset_change, [preset, frames], [*params, status], **quiet)
        for slider in params:
            slider.release(
                page.on_preset_param,
                [preset, frames, *params],
                [*params, status],
                trigger_mode="always_last",
                **quiet,
            )
        frames.submit(page.on_frames, [frames, model], status, **quiet)
        frames.blur(page.on_frames, [frames, model], status, **quiet)
        uploads = UploadHandlers(studio)  # our checks first; a refused file is cleared with a one-line reason
        image.upload(uploads.start_image, image, [image, status], api_name="start_image", **quiet)
        end_image.upload(uploads.start_image, end_image, [end_image, status], api_name="end_image", **quiet)
        model.change(page.on_model_end_image, model, end_image, **quiet)
        path_file.upload(
            page.on_path_upload,
            [path_file, model],
            [status, frames, path_file],
            api_name="camera_file",
            **quiet,
        )
        export_btn.click(studio.export_path, export_fmt, [export_file, status], **quiet)
        gen_inputs = [
            prompt,
            negative,
            image,
            model,
            frames,
            height,
            width,
            steps,
            guidance,
            seed,
            preview_every,
        ]

        def run_generate(
            prompt: str,
            negative: str,
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
            end_image: str | None,
            request: gr.Request | None = None,
        ) -> Iterator[tuple[Any, Any, Any, Any]]:
            """The page's inputs in order; the end image (last) goes to the studio by name."""
            yield from studio.generate(
                prompt, negative, image, model, frames, height, width, steps, guidance, seed,
                preview_every, max_points, request, end_image=end_image,
            )  # fmt: skip

        generate.click(
            run_generate,
            [*gen_inputs, max_points, end_image],
            [status, video, depth, downloads],
            concurrency_id="gpu",
            api_name="generate",
            concurrency_limit=max(GENERATE_CONCURRENCY, 2 * studio.gpu.slots),  # --gpus N runs N at once
            trigger_mode="multiple",  # a click during a run reaches us, and is answered "already generating"
            **quiet,
        )
        cancel.click(studio.cancel, None, status, concurrency_limit=None, queue=False, **quiet)
        reopen_file.upload(
            uploads.bundle,
            [reopen_file, max_points],
            [status, video, depth, downloads, reopen_file],
            api_name="bundle",
            **quiet,
        )
    return demo
