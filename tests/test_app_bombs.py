"""Issue 17 bounds: bombs are refused from sizes declared before any data is inflated or decoded.

The bombs have forged directory sizes (bench/bombs.py builds real ones and measures them in a fresh
process); the checks read exactly those declared sizes, so peak memory must stay near idle.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
from gradio.data_classes import ImageData

from app.exports import open_upload
from app.limits import IMAGE_MAX_PIXELS, world_limits
from app.uploads import CheckedImage, UploadRejected
from bench.harness.synthetic_world import synthetic_world
from fantasy_world.errors import GeometryFormatError
from fantasy_world.geometry import write_bundle

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bombs  # noqa: E402

LIMITS = world_limits(["tiny"], cuda=False)


def _kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def peak_over_idle_mb(fn) -> float:
    """Run ``fn`` and return how far resident memory peaked above where it started (MB)."""
    Path("/proc/self/clear_refs").write_text("5")
    idle = _kb("VmRSS")
    fn()
    return (_kb("VmHWM") - idle) / 1024


def test_limits_come_from_the_largest_result():
    assert LIMITS.max_pixels == 256 * 384 and LIMITS.max_frames == 81
    assert 200e6 < LIMITS.max_npz_bytes < 230e6  # 81 frames × 98,304 pixels × 27 bytes
    assert world_limits(["tiny"], cuda=True).max_pixels == 1280 * 720


@pytest.mark.parametrize("kind", ["zip", "npz"])
def test_archive_bombs_are_refused_before_inflating(tmp_path, kind):
    path = (
        bombs.zip_bomb(tmp_path / "b.zip", real=False)
        if kind == "zip"
        else bombs.npz_bomb(tmp_path / "world.npz", real=False)
    )
    errors: list[Exception] = []

    def run() -> None:
        try:
            open_upload(path, tmp_path, LIMITS)
        except GeometryFormatError as exc:
            errors.append(exc)

    assert peak_over_idle_mb(run) <= 300
    assert errors and "expected at most 215 MB" in str(errors[0]) and "\n" not in str(errors[0])
    assert not (tmp_path / "opened" / "world.npz").exists()


def test_zip_member_lying_about_its_size_is_refused(tmp_path):
    """A member that inflates to more than its directory says is cut off at the declared size (CRC)."""
    world = synthetic_world(num_frames=1, height=32, width=48)
    write_bundle(world, tmp_path / "b")
    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(tmp_path / "b" / "world.npz", "bundle/world.npz")
    bombs.forge_sizes(path, {"bundle/world.npz": 100})
    with pytest.raises(GeometryFormatError):
        open_upload(path, tmp_path, LIMITS)


def test_grayscale_pixel_bomb_is_refused_from_its_header(tmp_path):
    path = bombs.png_bomb(tmp_path / "gray.png", side=13_000)
    box = CheckedImage(type="filepath")
    out: list[object] = []
    mb = peak_over_idle_mb(
        lambda: out.append(box.preprocess(ImageData(path=str(path), orig_name="gray.png")))
    )
    assert isinstance(out[0], UploadRejected) and "13000x13000" in out[0] and str(IMAGE_MAX_PIXELS) in out[0]
    assert mb <= 300, f"{mb:.0f} MB"


def test_corrupt_image_is_a_one_line_refusal_naming_the_file(tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_bytes(bytes(range(256)) * 40)
    out = CheckedImage(type="filepath").preprocess(ImageData(path=str(fake), orig_name="fake.png"))
    assert isinstance(out, UploadRejected)
    assert "fake.png" in out and "not a decodable image" in out and str(tmp_path) not in out


@pytest.mark.parametrize(
    ("meta", "match"),
    [({"fps": 1e308}, "fps"), ({"fps": "16"}, "fps"), ({"seed": -1}, "seed"), ({"prompt": 5}, "prompt")],
)
def test_meta_json_values_are_checked_on_reopen(tmp_path, meta, match):
    write_bundle(synthetic_world(num_frames=2, height=32, width=48), tmp_path / "bundle")
    (tmp_path / "bundle" / "meta.json").write_text(json.dumps(meta))
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in ("world.npz", "meta.json"):
            zf.write(tmp_path / "bundle" / name, f"bundle/{name}")
    with pytest.raises(GeometryFormatError, match=match) as err:
        open_upload(path, tmp_path / "scratch", LIMITS)
    assert str(tmp_path) not in str(err.value)
