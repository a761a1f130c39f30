"""Reading and writing camera files as text: size cap, UTF-8, strict JSON, atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fantasy_world.errors import CameraFormatError
from fantasy_world.limits import MAX_CAMERA_FILE_BYTES


def read_text(path: str | Path) -> str:
    """The file's text, refusing huge, missing or non-UTF-8 files with a one-line error."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CameraFormatError(f"camera file '{path}': cannot be read ({exc.strerror or exc})") from None
    if not path.is_file():
        raise CameraFormatError(f"camera file '{path}': is not a regular file")
    if size > MAX_CAMERA_FILE_BYTES:
        raise CameraFormatError(
            f"camera file '{path}': {size} bytes; expected at most {MAX_CAMERA_FILE_BYTES // (1024 * 1024)} MiB"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CameraFormatError(f"camera file '{path}': cannot be read ({exc.strerror or exc})") from None
    return decode_text(data, str(path))


def decode_text(data: bytes, name: str) -> str:
    if len(data) > MAX_CAMERA_FILE_BYTES:
        raise CameraFormatError(f"camera file '{name}': {len(data)} bytes; expected at most 20 MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CameraFormatError(
            f"camera file '{name}': byte {exc.start} is not UTF-8 text; expected a JSON or text camera file"
        ) from None
    if "\x00" in text:
        raise CameraFormatError(f"camera file '{name}': contains NUL bytes; expected a text camera file")
    return text


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not allowed")


def parse_json(text: str, name: str) -> Any:
    """Strict JSON (NaN / Infinity rejected), errors naming the line and column."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise CameraFormatError(
            f"camera file '{name}': line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})"
        ) from None
    except ValueError as exc:  # NaN / Infinity via parse_constant, or an int too long to parse
        raise CameraFormatError(f"camera file '{name}': {exc}; expected finite JSON numbers") from None
    except RecursionError:
        raise CameraFormatError(
            f"camera file '{name}': JSON nested too deeply; expected a camera file"
        ) from None


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=1, allow_nan=False) + "\n"


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write via a temporary file in the same folder so a crash never leaves half a camera file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, mode)  # mkstemp creates 0600; camera files are ordinary shareable files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
