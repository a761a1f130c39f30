"""Fuzzing the upload parsers not covered elsewhere: bundle zips (re-open) and start images.

Camera files, PLY, COLMAP and npz have their own fuzz tests (test_camera_fuzz.py, test_geometry_*.py);
here only the project's own error types may escape the zip and image readers, whatever the bytes.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.exports import open_upload
from bench.harness.synthetic_world import synthetic_world
from fantasy_world.errors import FantasyWorldError
from fantasy_world.geometry import write_bundle
from fantasy_world.validation import check_image_file

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def bundle_zip(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("fuzz-bundle")
    world = synthetic_world(num_frames=2, height=32, width=48)
    write_bundle(world, folder / "bundle")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("world.npz", "meta.json"):
            zf.write(folder / "bundle" / name, f"bundle/{name}")
    return buf.getvalue()


@pytest.fixture(scope="module")
def png_bytes() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _open_or_reject(path: Path, scratch: Path) -> None:
    try:
        world = open_upload(path, scratch)
    except FantasyWorldError as exc:
        assert "\n" not in str(exc)
        return
    assert world.images.dtype == np.uint8 and world.num_frames >= 1


def _mutate(data: bytes, cut: int, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, val in edits:
        out[pos % len(out)] = val
    return bytes(out[: cut % (len(out) + 1)])


def test_valid_bundle_zip_opens(tmp_path, bundle_zip):
    path = tmp_path / "b.zip"
    path.write_bytes(bundle_zip)
    assert open_upload(path, tmp_path).num_frames == 2


@FUZZ
@given(data=st.binary(max_size=600))
def test_fuzz_zip_random_bytes(tmp_path, data):
    path = tmp_path / "r.zip"
    path.write_bytes(b"PK\x03\x04" + data)
    _open_or_reject(path, tmp_path)


@FUZZ
@given(
    cut=st.integers(0, 1 << 20),
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8),
)
def test_fuzz_zip_truncated_and_mutated(tmp_path, bundle_zip, cut, edits):
    path = tmp_path / "m.zip"
    path.write_bytes(_mutate(bundle_zip, cut if cut % 3 else len(bundle_zip), edits))
    _open_or_reject(path, tmp_path)


@FUZZ
@given(
    names=st.lists(
        st.sampled_from(
            ["world.npz", "../world.npz", "/abs/world.npz", "a/../../world.npz", "meta.json", "x\\world.npz"]
        ),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    payload=st.binary(max_size=200),
)
def test_fuzz_zip_member_names_never_escape(tmp_path, names, payload):
    path = tmp_path / "n.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, payload)
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    _open_or_reject(path, scratch)
    written = {p.resolve() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.is_relative_to(tmp_path.resolve()) for p in written)
    assert not (tmp_path.parent / "world.npz").exists()


def _check_or_reject(path: Path) -> None:
    try:
        w, h = check_image_file(path)
    except FantasyWorldError as exc:
        assert "\n" not in str(exc)
        return
    assert w >= 1 and h >= 1


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_image_random_bytes(tmp_path, data):
    path = tmp_path / "r.png"
    path.write_bytes(data)
    _check_or_reject(path)


@FUZZ
@given(
    fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"]),
    cut=st.integers(0, 1 << 16),
    edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6),
)
def test_fuzz_image_truncated_and_mutated(tmp_path, png_bytes, fmt, cut, edits):
    buf = io.BytesIO()
    Image.open(io.BytesIO(png_bytes)).save(buf, fmt)
    data = buf.getvalue()
    path = tmp_path / f"m.{fmt.lower()}"
    path.write_bytes(_mutate(data, cut if cut % 4 else len(data), edits))
    _check_or_reject(path)
