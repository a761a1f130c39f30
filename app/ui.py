"""Gradio layout and event wiring (left: inputs; centre: 3-D view; right: video, depth, downloads)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import gradio as gr

from app.callbacks import EXPORT_FORMATS, MAX_PRESET_PARAMS, Studio
from app.models import DEFAULT_MODEL
from app.uploads import CheckedFile, CheckedImage, UploadHandlers
from fantasy_world.camera import PRESETS
from fantasy_world.model_folder import TINY_DEFAULTS

log = logging.getLogger(__name__)

EXAMPLES_FILE = Path(__file__).resolve().parents[1] / "assets" / "examples" / "prompts.json"
DEFAULT_PRESET = "orbit"
# Generate requests let through at once; studio.gpu runs them one by one and shows each its position.
GENERATE_CONCURRENCY = 4
CACHE_TTL_S = 3600  # Gradio's copies of uploads and downloads are deleted after this long

CSS = """
.fw-status { padding: 6px 10px; border-radius: 6px; background: var(--block-background-fill); }
.fw-error { color: #b91c1c; border: 1px solid #fca5a5; }
.fw-warn { color: #92400e; border: 1px solid #fcd34d; }
.fw-ok { color: #166534; border: 1px solid #86efac; }
.fw-progress { width: 100%; height: 10px; display: block; margin-top: 4px; }
"""


def example_prompts() -> list[list[str]]:
    """Example prompts shipped in assets/examples/prompts.json (prompt, preset)."""
    try:
        items = json.loads(EXAMPLES_FILE.read_text())
    except (OSError, ValueError):
        log.warning("no example prompts at %s", EXAMPLES_FILE)
        return []
    return [[it["prompt"], it["camera"]] for it in items if it.get("camera") in PRESETS]


def build_ui(studio: Studio) -> gr.Blocks:
    """The whole page. Every handler is a :class:`Studio` method; this function only wires them."""
    d = TINY_DEFAULTS
    spec = PRESETS[DEFAULT_PRESET]
    with gr.Blocks(
        title="FantasyWorld Studio",
        fill_width=True,
        analytics_enabled=False,  # a local tool: no usage pings to Gradio's servers
        delete_cache=(max(60, int(studio.registry.ttl_s) // 4), int(studio.registry.ttl_s)),
    ) as demo:
        gr.Markdown("## FantasyWorld Studio — prompt + camera path → video, depth, points and cameras")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                prompt = gr.Textbox(label="Prompt", lines=3, elem_id="fw-prompt")
                with gr.Accordion("Negative prompt", open=False):
                    negative = gr.Textbox(label="Negative prompt", lines=2, show_label=False)
                image = CheckedImage(
                    label="Start image (image-to-world models)",
                    type="filepath",
                    height=160,
                    elem_id="fw-image",
                )
                model = gr.Dropdown(
                    studio.models,
                    value=DEFAULT_MODEL,
                    label="Model",
                    allow_custom_value=False,
                    elem_id="fw-model",
                )
                preset = gr.Dropdown(
                    list(PRESETS), value=DEFAULT_PRESET, label="Camera preset", elem_id="fw-preset"
                )
                params = []
                for i in range(MAX_PRESET_PARAMS):
                    p = spec.params[i] if i < len(spec.params) else None
                    params.append(
                        gr.Slider(
                            minimum=p.minimum if p else 0,
                            maximum=p.maximum if p else 1,
                            value=p.default if p else 0,
                            label=(f"{p.name} ({p.unit})" if p and p.unit else p.name if p else ""),
                            info=p.description if p else None,
                            visible=p is not None,
                        )
                    )
                with gr.Row():
                    frames = gr.Slider(
                        5, 81, value=d.frames, step=4, label="Frames (1+4k)", elem_id="fw-frames"
                    )
                    seed = gr.Number(value=0, precision=0, label="Seed", minimum=0)
                with gr.Row():
                    height = gr.Slider(32, 720, value=d.height, step=16, label="Height", elem_id="fw-height")
                    width = gr.Slider(32, 1280, value=d.width, step=16, label="Width", elem_id="fw-width")
                with gr.Row():
                    steps = gr.Slider(1, 60, value=d.steps, step=1, label="Steps", elem_id="fw-steps")
                    guidance = gr.Slider(
                        1.0, 12.0, value=d.guidance, step=0.5, label="Guidance", elem_id="fw-guidance"
                    )
                preview_every = gr.Slider(
                    0,
                    20,
                    value=2,
                    step=1,
                    label="Live geometry every K steps (0 = off)",
                    elem_id="fw-preview",
                )
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary", elem_id="fw-generate")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="fw-cancel")
                with gr.Accordion("Camera path files", open=False):
                    path_file = CheckedFile(
                        label="Import path (drop a .json / .txt)",
                        file_types=[".json", ".txt"],
                        elem_id="fw-path-upload",
                    )
                    with gr.Row():
                        export_fmt = gr.Dropdown(list(EXPORT_FORMATS), value="native", label="Export format")
                        export_btn = gr.Button("Export path")
                    export_file = gr.File(label="Exported path", interactive=False)
                with gr.Accordion("Re-open a result", open=False):
                    reopen_file = CheckedFile(
                        label="world.npz or bundle .zip", file_types=[".npz", ".zip"], elem_id="fw-reopen"
                    )
            with gr.Column(scale=3, min_width=480):
                viewer = gr.HTML(elem_id="fw-viewer-box", js_on_load=None)
                status = gr.HTML(elem_id="fw-status", js_on_load=None)
                max_points = gr.Slider(
                    10_000, 1_000_000, value=200_000, step=10_000, label="Max points (viewer and exports)"
                )
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
            gr.Examples(examples, inputs=[prompt, preset], label="Example prompts")

        demo.load(studio.on_load, outputs=viewer)
        demo.unload(studio.on_unload)
        preset.change(studio.on_preset_change, [preset, frames], [*params, status])
        for slider in params:
            slider.release(studio.apply_preset, [preset, frames, *params], status, trigger_mode="always_last")
        frames.release(studio.set_frames, frames, status)
        uploads = UploadHandlers(studio)  # our checks first; a refused file is cleared with a one-line reason
        image.upload(uploads.start_image, image, [image, status])
        path_file.upload(uploads.camera_file, path_file, [status, path_file])
        export_btn.click(studio.export_path, export_fmt, [export_file, status])
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
        generate.click(
            studio.generate,
            [*gen_inputs, max_points],
            [status, video, depth, downloads],
            concurrency_id="gpu",
            api_name="generate",
            concurrency_limit=GENERATE_CONCURRENCY,
            show_progress="minimal",
        )
        cancel.click(studio.cancel, None, status, concurrency_limit=None, queue=False)
        reopen_file.upload(
            uploads.bundle, [reopen_file, max_points], [status, video, depth, downloads, reopen_file]
        )
    return demo
