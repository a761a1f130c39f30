"""Issue 13 in headless Chromium: what a new user meets in the first ten minutes, at 1280×800 and 1600×1000.

Screenshots of every step go to test-artifacts/screenshots/13_*.png.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import i2v_model_folder

from app.models import model_info
from app.page import summary_html  # noqa: F401  (the page's summary format, imported to fail loudly if renamed)
from app.path_editor import path_summary
from app.scene_data import wxyz_position_to_pose
from fantasy_world.camera import PRESETS, CameraPath, read_camera_bytes, save_camera_file

pytestmark = pytest.mark.slow

WAIT_MS = 120_000
SIZES = [(1280, 800), (1600, 1000)]
# Gradio's own progress overlay (timer, ETA bar, progress levels): the page must show none of it.
GRADIO_PROGRESS = ".eta-bar, .progress-level, .progress-text, .meta-text-center"


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def set_number(page, elem_id: str, value: object) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def status_text(page) -> str:
    return page.locator("#fw-status").inner_text()


def open_at(browser, url: str, studio, width: int, height: int):
    """A fresh visitor at ``width``×``height`` with the viewer connected and every status line recorded."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    before = set(studio.registry._by_key)
    page.goto(url, timeout=WAIT_MS)
    page.frame_locator("#fw-viewer").locator("canvas").first.wait_for(timeout=WAIT_MS)
    new = [k for k in studio.registry._by_key if k not in before]
    assert len(new) == 1
    session = studio.registry.get(new[0])
    wait_until(lambda: len(session.server.get_clients()) == 1, timeout=120, what="viser client connection")
    # Every text the status line shows, in order (steps overwrite each other quickly).
    page.evaluate(
        """() => {
            window.__fwStatuses = [];
            const el = document.querySelector('#fw-status');
            new MutationObserver(() => window.__fwStatuses.push(el.innerText))
                .observe(el, {subtree: true, childList: true, characterData: true});
        }"""
    )
    time.sleep(1.0)
    return context, page, session


def gradio_progress(page) -> list[str]:
    """Gradio's progress elements that are actually drawn: Gradio keeps them in the DOM under a
    ``.hide`` wrapper (opacity 0) when an event's progress is hidden, so test the computed opacity."""
    return page.evaluate(
        """(sel) => [...document.querySelectorAll(sel)].filter(e => {
            if (e.offsetParent === null) return false;
            for (let p = e; p; p = p.parentElement) {
                const st = getComputedStyle(p);
                if (st.visibility === 'hidden' || st.display === 'none' || parseFloat(st.opacity) === 0) return false;
            }
            return true;
        }).map(e => (e.closest('[id]') || {id: '?'}).id + ': ' + e.innerText)""",
        GRADIO_PROGRESS,
    )


def seen_statuses(page) -> list[str]:
    return page.evaluate("() => window.__fwStatuses")


def in_first_screen(page, selector: str, width: int, height: int) -> dict:
    assert page.evaluate("() => window.scrollY") == 0
    return on_screen(page, selector, width, height)


def on_screen(page, selector: str, width: int, height: int) -> dict:
    """``selector`` lies wholly inside the window as it is scrolled now (boxes are viewport-relative)."""
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not on the page"
    assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
    assert box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, (
        f"{selector} is not in the first screen at {width}x{height}: {box}"
    )
    return box


def share_in_view(client, points: np.ndarray) -> float:
    """Share of ``points`` inside the person's camera frustum (browser-reported pose, FoV and aspect)."""
    cam = client.camera
    c2w = wxyz_position_to_pose(np.asarray(cam.wxyz), np.asarray(cam.position))
    rel = (np.asarray(points, np.float64) - c2w[:3, 3]) @ c2w[:3, :3]  # OpenCV camera frame
    z = rel[:, 2]
    tan_y = np.tan(float(cam.fov) / 2.0)
    tan_x = tan_y * float(cam.aspect)
    ok = (z > 1e-6) & (np.abs(rel[:, 0]) <= tan_x * z) & (np.abs(rel[:, 1]) <= tan_y * z)
    return float(ok.mean())


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_first_screen_has_generate_status_and_a_large_3d_view(browser, studio_server, shots, width, height):
    server, studio = studio_server
    context, page, session = open_at(browser, server.url, studio, width, height)
    try:
        page.screenshot(path=str(shots / f"13_first_screen_{width}x{height}.png"))
        generate = in_first_screen(page, "#fw-generate", width, height)
        in_first_screen(page, "#fw-cancel", width, height)
        status = in_first_screen(page, "#fw-status", width, height)
        assert 0 <= status["y"] - (generate["y"] + generate["height"]) < 80, "status is not beside Generate"
        viewer = page.locator("#fw-viewer").bounding_box()
        assert viewer["width"] >= 0.6 * width and viewer["height"] >= 0.6 * height, viewer
        assert viewer["y"] + viewer["height"] <= height, "the 3-D view runs past the first screen"
        for player in ("#fw-video", "#fw-depth"):
            assert page.locator(player).bounding_box()["width"] >= 0.3 * width, player
        # The model picker says what the model is; tiny takes no start image, so there is no image box.
        assert "synthetic" in page.locator("#fw-model input").input_value()
        note = page.locator("#fw-model-note").inner_text()
        assert "balls" in note and "README" in note
        assert page.locator("#fw-image").count() == 0 or not page.locator("#fw-image").is_visible()
        # One spelling: the picker offers exactly the library's names.
        page.locator("#fw-preset input").click()
        offered = [o.replace("✓", "").strip() for o in page.get_by_role("option").all_inner_texts()]
        page.keyboard.press("Escape")
        assert offered == list(PRESETS), offered
        # The page's path line is the viewer panel's line, and a preset has a few keyframes.
        summary = page.locator("#fw-path-summary").inner_text()
        assert path_summary(session.editor.path) in summary and "8 keyframes" in summary, summary
        assert path_summary(session.editor.path) in session.editor.gui_summary.content
    finally:
        context.close()


def test_values_are_refused_not_clamped_and_a_loaded_path_sets_frames(
    browser, studio_server, shots, tmp_path
):
    server, studio = studio_server
    context, page, session = open_at(browser, server.url, studio, 1600, 1000)
    cap = model_info("tiny").limits.max_pixels
    try:
        page.locator("#fw-prompt textarea").fill("a red ball beside a tall blue box")
        set_number(page, "fw-frames", 1000)
        page.locator("#fw-status").get_by_text("frames=1000").wait_for(timeout=WAIT_MS)
        assert "fw-error" in page.locator("#fw-status").inner_html()
        assert page.locator("#fw-frames input").input_value() == "1000", "the typed value was changed"
        page.screenshot(path=str(shots / "13_frames_refused_1600x1000.png"))
        page.locator("#fw-generate").click()
        page.locator("#fw-status").get_by_text(re.compile(r"frames=1000: expected")).wait_for(timeout=WAIT_MS)
        set_number(page, "fw-frames", 5)
        page.locator("#fw-status").get_by_text("5 frames").wait_for(timeout=WAIT_MS)
        # A preset value typed past its slider's end: refused in one line, the slider put back.
        radius = page.locator("#fw-param0 input[type=number]")
        radius.fill("99")
        radius.press("Enter")
        page.locator("#fw-prompt textarea").click()  # leaving the box releases the slider
        page.locator("#fw-status").get_by_text("radius=99").wait_for(timeout=WAIT_MS)
        wait_until(lambda: radius.input_value() == "1", timeout=10, what="radius slider put back to 1")
        assert session.editor.path.preset_params["radius"] == 1.0
        assert page.locator(".toast-body").count() == 0, "Gradio's own error showed"
        page.screenshot(path=str(shots / "13_preset_value_refused_1600x1000.png"))

        tab(page, "Settings")
        for elem, bad, expect, good in [
            ("fw-width", 100000, f"at most {cap}", 48),
            ("fw-steps", 0, "steps=0", 1),
            ("fw-seed", 1.5, "seed=1.5", 0),
        ]:
            set_number(page, elem, bad)
            page.locator("#fw-generate").click()
            page.locator("#fw-status").get_by_text(expect).wait_for(timeout=WAIT_MS)
            assert page.locator(f"#{elem} input").input_value() == str(bad), f"{elem} was changed"
            page.screenshot(path=str(shots / f"13_refused_{elem}_1600x1000.png"))
            set_number(page, elem, good)
        assert studio.gpu.waiting == 0 and studio.gpu.running == 0  # nothing refused ever queued

        # An 81-frame camera file: Frames follows it, and the status says so.
        file81 = save_camera_file(
            CameraPath.preset("arc", num_frames=81).sample(81), tmp_path / "long_path.txt", "re10k"
        )
        tab(page, "Files")
        page.locator("#fw-path-upload input[type=file]").set_input_files(str(file81))
        page.locator("#fw-status").get_by_text("Frames set to 81").wait_for(timeout=WAIT_MS)
        tab(page, "Camera path")
        assert page.locator("#fw-frames input").input_value() == "81"
        assert session.editor.path.settings.num_frames == 81
        page.screenshot(path=str(shots / "13_loaded_path_sets_frames_1600x1000.png"))
        assert not any("Traceback" in t or "/tmp/" in t for t in seen_statuses(page))
    finally:
        context.close()


def test_new_user_flow_at_1280x800(browser, studio_server, shots):
    """Open → generate → a path edited in 3-D → export, without scrolling and with every change said."""
    server, studio = studio_server
    context, page, session = open_at(browser, server.url, studio, 1280, 800)
    try:
        page.locator("#fw-prompt textarea").fill("a red ball beside a tall blue box in a courtyard")
        set_number(page, "fw-frames", 5)
        page.locator("#fw-status").get_by_text("5 frames").wait_for(timeout=WAIT_MS)
        assert len(session.editor.path) <= 5  # the orbit was rebuilt: never more keyframes than frames
        tab(page, "Settings")
        for elem, value in [("fw-height", 32), ("fw-width", 48), ("fw-steps", 6), ("fw-guidance", 1)]:
            set_number(page, elem, value)
        set_number(page, "fw-preview", 1)

        # Generate; a second click during the run is answered, and only our progress bar shows.
        page.locator("#fw-generate").click()
        page.locator("#fw-status").get_by_text(re.compile(r"Denoising step \d/6")).wait_for(timeout=WAIT_MS)
        page.locator("#fw-generate").click()
        assert page.locator("#fw-status progress.fw-progress").count() <= 1
        page.screenshot(path=str(shots / "13a_generating_1280x800.png"))
        shown = gradio_progress(page)
        assert not shown, f"Gradio's own progress display is showing: {shown}"
        page.locator("#fw-status").get_by_text(re.compile(r"Done in")).wait_for(timeout=WAIT_MS)
        statuses = seen_statuses(page)
        assert any("Already generating" in t for t in statuses), statuses[-8:]
        assert session.viewer.world is not None and not session.viewer.dimmed
        page.screenshot(path=str(shots / "13b_generated_1280x800.png"))

        # The path changes: the previous result fades (its cameras and old path hidden).
        tab(page, "Camera path")
        page.locator("#fw-preset input").click()
        page.get_by_role("option", name="arc", exact=True).click()
        wait_until(lambda: session.editor.path.preset_name == "arc", what="arc applied")
        wait_until(lambda: session.viewer.dimmed, what="result faded after the path changed")
        time.sleep(1.5)
        page.screenshot(path=str(shots / "13c_path_changed_result_faded_1280x800.png"))

        # "Frame scene" puts the whole new path and the result in view.
        viewer = page.frame_locator("#fw-viewer")
        viewer.get_by_role("button", name="Frame scene").click()
        client = next(iter(session.server.get_clients().values()))
        path_pos = session.editor.path.sample().c2w[:, :3, 3]
        world_pts = session.viewer.sample_points(5000)
        wait_until(lambda: share_in_view(client, path_pos) == 1.0, timeout=20, what="path framed")
        assert share_in_view(client, world_pts) > 0.9, share_in_view(client, world_pts)
        time.sleep(1.0)
        page.screenshot(path=str(shots / "13d_frame_scene_1280x800.png"))

        # A keyframe from the view: a short step in front of the eye, with the path's FoV.
        n = len(session.editor.path)
        path_fov = session.editor.path.keyframes[0].fov_y_deg
        eye = np.asarray(client.camera.position, float)
        forward = wxyz_position_to_pose(np.asarray(client.camera.wxyz), eye)[:3, 2]
        viewer.get_by_role("button", name="Add keyframe from view").click()
        wait_until(lambda: len(session.editor.path) == n + 1, what="keyframe added")
        added = session.editor.path.keyframes[session.editor.selected]
        ahead = float((added.position - eye) @ forward)
        assert 0.0 < ahead and abs(added.fov_y_deg - path_fov) < 1e-6
        assert np.linalg.norm(added.position - eye) > 4.0 * session.editor._scale  # not on the eye
        # The page's path line follows the edit made in the 3-D view, word for word.
        line = path_summary(session.editor.path)
        page.locator("#fw-path-summary").get_by_text(f"{n + 1} keyframes").wait_for(timeout=10_000)
        assert line in page.locator("#fw-path-summary").inner_text()
        assert line in session.editor.gui_summary.content
        time.sleep(1.0)
        page.screenshot(path=str(shots / "13e_keyframe_added_1280x800.png"))

        # Export the edited path.
        tab(page, "Files")
        page.locator("#fw-export").click()
        page.locator("#fw-status").get_by_text("exported").wait_for(timeout=WAIT_MS)
        # Export sits lower in the column; Generate, Cancel and the status stay on screen beside it.
        for selector in ("#fw-generate", "#fw-cancel", "#fw-status", "#fw-export"):
            on_screen(page, selector, 1280, 800)
        link = page.locator("#fw-export-file a").first
        link.wait_for(timeout=WAIT_MS)
        with page.expect_download() as dl:
            link.click()
        exported = read_camera_bytes(Path(dl.value.path()).read_bytes(), "camera_path_native.json")
        assert len(exported) == n + 1
        page.screenshot(path=str(shots / "13f_exported_1280x800.png"))

        # Back at the top, Generate is where it was: no raw error anywhere on the way.
        page.evaluate("() => window.scrollTo(0, 0)")
        in_first_screen(page, "#fw-generate", 1280, 800)
        texts = seen_statuses(page)
        assert not any("Traceback" in t or "/tmp/" in t or "Error:" in t for t in texts)
        assert page.locator(".toast-body").count() == 0, "a Gradio error toast showed"
        json.dumps(texts)  # plain text lines
    finally:
        context.close()


def test_image_box_only_for_image_to_world_models(browser, shots, tmp_path):
    """A second model folder (image-to-world) in the picker: the image box and its defaults follow it."""
    from app.callbacks import Studio
    from app.server import BackgroundServer, create_app
    from app.sessions import SessionRegistry

    folder = i2v_model_folder(tmp_path, frames=33)
    studio = Studio(SessionRegistry(tmp_path / "sessions"), models=["tiny", str(folder)])
    app, studio = create_app(studio)
    server = BackgroundServer(app).start()
    context = None
    try:
        context, page, session = open_at(browser, server.url, studio, 1280, 800)
        assert not page.locator("#fw-image").is_visible()
        page.locator("#fw-model input").click()
        page.get_by_role("option", name=re.compile("my-i2v-model")).click()
        page.locator("#fw-status").get_by_text("33 frames").wait_for(timeout=WAIT_MS)
        page.locator("#fw-image").wait_for(state="visible", timeout=WAIT_MS)
        assert "image-to-world" in page.locator("#fw-model-note").inner_text()
        assert page.locator("#fw-frames input").input_value() == "33"
        assert session.editor.path.settings.num_frames == 33
        page.screenshot(path=str(shots / "13_image_model_selected_1280x800.png"))
        page.locator("#fw-model input").click()
        page.get_by_role("option", name=re.compile("^tiny")).click()
        page.locator("#fw-image").wait_for(state="hidden", timeout=WAIT_MS)
        assert "README" in page.locator("#fw-model-note").inner_text()
        page.screenshot(path=str(shots / "13_tiny_selected_again_1280x800.png"))
    finally:
        if context is not None:
            context.close()
        server.stop()
        studio.registry.close_all()
