"""Files a visitor hands us or takes away: upload checks, size limits and safe download names.

A public demo gets hostile input, so no path from a request is trusted: an upload must be a regular
file inside a folder we own (Gradio's upload cache or the visitor's session folder), within the size
limit for its kind, and every name we put on a download is rebuilt from a small alphabet.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from fantasy_world.errors import InputError
from fantasy_world.validation import MAX_IMAGE_BYTES

MAX_CAMERA_BYTES = 4 << 20  # a 10 000-frame nerfstudio path is ~3 MB
MAX_BUNDLE_BYTES = 1 << 30  # world.npz / bundle zip of a long, large generation
MAX_UPLOAD_BYTES = MAX_BUNDLE_BYTES  # Gradio's own limit: nothing larger even reaches a callback
LIMITS = {"image": MAX_IMAGE_BYTES, "camera": MAX_CAMERA_BYTES, "bundle": MAX_BUNDLE_BYTES}

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def gradio_upload_root() -> Path:
    """Where Gradio stores uploads (and its copies of outputs): $GRADIO_TEMP_DIR or <tmp>/gradio."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


def safe_name(text: str, default: str = "file", max_len: int = 60) -> str:
    """A download/file name from free text: [A-Za-z0-9._-] only, no leading dots, bounded length."""
    name = _UNSAFE.sub("_", str(text)).strip("._-")
    name = re.sub(r"_+", "_", name)[:max_len].strip("._-")
    return name or default


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n} B"


def checked_upload(file: object, roots: list[Path], kind: str) -> Path:
    """The upload as a resolved path, or a one-line :class:`InputError` (traversal, not a file, too big).

    ``roots`` are the only folders an upload may live in; symlinks are resolved before the check, so
    ``../`` segments or a link pointing out of the folder are refused the same way.
    """
    if kind not in LIMITS:
        raise ValueError(f"unknown upload kind {kind!r}")
    if isinstance(file, dict):  # Gradio FileData as sent by API clients
        file = file.get("path")
    if not isinstance(file, (str, os.PathLike)) or not str(file) or "\x00" in str(file):
        raise InputError(f"{kind} upload: expected an uploaded file, got {type(file).__name__}")
    path = Path(file)
    shown = safe_name(path.name, "upload")
    try:
        resolved = path.resolve(strict=False)
    except (OSError, RuntimeError):  # e.g. a symlink loop
        raise InputError(f"{kind} upload {shown}: refused; not a usable path") from None
    if not any(resolved.is_relative_to(root.resolve()) for root in roots):
        raise InputError(
            f"{kind} upload {shown}: refused; only files uploaded through this page can be opened"
        )
    if not resolved.exists():
        raise InputError(f"{kind} upload {shown}: no such uploaded file")
    if not resolved.is_file():
        raise InputError(f"{kind} upload {shown}: not a regular file")
    size = resolved.stat().st_size
    if size > LIMITS[kind]:
        raise InputError(
            f"{kind} upload {shown}: {human_bytes(size)}; expected at most {human_bytes(LIMITS[kind])}"
        )
    return resolved
