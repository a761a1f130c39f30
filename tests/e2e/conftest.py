"""Browser fixtures: the studio served in-process on a free loopback port, Debian Chromium via Playwright.

Screenshots of every step go to test-artifacts/screenshots/. The tests skip only when no Chromium
executable exists (scripts/test.sh installs Debian's ``chromium``); Playwright never downloads one.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.callbacks import Studio
from app.headless import CHROMIUM_ARGS, chromium_path
from app.server import BackgroundServer, create_app
from app.sessions import SessionRegistry

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium executable (apt-get install chromium); browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, timeout=60_000)
        yield b
        b.close()


@pytest.fixture(scope="session")
def studio_server(tmp_path_factory):
    app, studio = create_app(Studio(SessionRegistry(tmp_path_factory.mktemp("e2e-sessions"))))
    server = BackgroundServer(app).start()
    yield server, studio
    server.stop()
    studio.registry.close_all()


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


def i2v_model_folder(tmp_path: Path, frames: int) -> Path:
    """A config-only image-to-world model folder: enough for the picker, the image box and its defaults."""
    import json

    from fantasy_world.model_folder import CONFIG_FILE, FOLDER_FORMAT, FOLDER_VERSION

    folder = tmp_path / "my-i2v-model"
    folder.mkdir()
    meta = {
        "format": FOLDER_FORMAT,
        "version": FOLDER_VERSION,
        "name": "my-i2v",
        "model": {"dit": {"image_input": True}},
        "vae": {},
        "defaults": {"frames": frames, "height": 64, "width": 96, "steps": 4, "guidance": 3.0},
    }
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    return folder


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def changed_pixels(a: np.ndarray, b: np.ndarray, tol: int = 40) -> int:
    """Pixels whose colour differs by more than ``tol`` in some channel (images of equal size)."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return int(np.any(np.abs(a[:h, :w] - b[:h, :w]) > tol, axis=-1).sum())


def seen_fractions(client, height: int = 300, width: int = 450) -> tuple[float, float]:
    """What the person's camera shows, rendered by their browser (no panels or notifications on top).

    Returns (share of pixels that are not background, share of clearly coloured pixels): the grid is
    grey, so colour means path, frustums or points.
    """
    img = client.get_render(height=height, width=width, transport_format="png")[..., :3].astype(np.int16)
    background = img[0, 0]
    not_bg = np.any(np.abs(img - background) > 30, axis=-1).mean()
    coloured = ((img.max(axis=-1) - img.min(axis=-1)) > 60).mean()
    return float(not_bg), float(coloured)
