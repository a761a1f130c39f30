"""How the studio page is driven in headless Chromium (browser tests and ``bench/app_bench.py``).

Software WebGL (SwiftShader) needs ``--enable-unsafe-swiftshader``; the viser iframe needs
``--disable-site-isolation-trials``. Playwright never downloads a browser here: Debian's ``chromium``
or the one ``CHROMIUM_PATH`` names is used.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-site-isolation-trials",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str | None:
    """``CHROMIUM_PATH``, else Debian's ``/usr/bin/chromium``, else ``chromium`` on PATH; None if none exists."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None
