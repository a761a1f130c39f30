"""In the browser: a corrupt start image is named, cleared and explained in one line (issues 13 and 17).

Random bytes saved as ``fake.png`` used to be accepted by the image box and then fail every Generate
with Gradio's raw preprocess error naming a server temp path.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import i2v_model_folder
from test_studio_browser import WAIT_MS, open_studio, pick, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def i2v_server(tmp_path):
    """A studio that also offers an image-to-world model folder: the start-image box exists only for those."""
    from app.callbacks import Studio
    from app.server import BackgroundServer, create_app
    from app.sessions import SessionRegistry

    folder = i2v_model_folder(tmp_path, frames=17)
    studio = Studio(SessionRegistry(tmp_path / "sessions"), models=["tiny", str(folder)])
    app, studio = create_app(studio)
    server = BackgroundServer(app).start()
    try:
        yield server, studio
    finally:
        server.stop()


def test_corrupt_start_image_is_named_cleared_and_the_page_keeps_working(
    browser, i2v_server, shots, tmp_path
):
    server, studio = i2v_server
    context, page, session = open_studio(browser, server.url, studio)
    try:
        page.locator("#fw-model input").click()
        page.get_by_role("option", name=re.compile("my-i2v-model")).click()
        page.locator("#fw-image").wait_for(state="visible", timeout=WAIT_MS)
        fake = tmp_path / "fake.png"
        fake.write_bytes(np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes())
        page.locator("#fw-image input[type=file]").set_input_files(str(fake))
        status = page.locator("#fw-status")
        status.get_by_text("fake.png").wait_for(timeout=WAIT_MS)
        page.screenshot(path=str(shots / "06a_corrupt_image.png"), full_page=True)
        text = status.inner_text()
        assert "expected" in text and "\n" not in text.strip(), text
        assert not re.search(
            r"/tmp|/gradio|Traceback|UnidentifiedImageError", page.locator("body").inner_text()
        )
        wait_until(lambda: page.locator("#fw-image img").count() == 0, timeout=60, what="image box cleared")
        pick(page, "fw-preset", "pan")
        status.get_by_text("Camera path: pan").wait_for(timeout=WAIT_MS)
        assert session.editor.path.preset_name == "pan"
        page.screenshot(path=str(shots / "06b_still_working.png"), full_page=True)
    finally:
        context.close()
