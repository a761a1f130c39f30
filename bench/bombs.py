"""Decompression bombs against the studio's upload checks: refused, and how much memory each costs.

Builds the three bombs of issue 17 (a ~2 MB zip whose world.npz inflates to 1.9 GB, a compressed
world.npz whose arrays unpack to 2.1 GB, a 13000² grayscale PNG of ~160 KB), then opens each in a
fresh process exactly as the studio would (``open_upload`` / the start-image box's check) and reports
whether it was refused, the message, the seconds taken and the peak resident memory over idle.

    python bench/bombs.py [--out DIR] [--small]

``--small`` forges the sizes in the zip directories instead of inflating real data (seconds, not a
minute); the checks read the same fields either way. Rule: every bomb refused, peak ≤ 300 MB over idle.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LIMIT_MB = 300.0
CHUNK = 16 << 20


def _stream_zeros(f, n: int) -> None:
    zero = bytes(min(CHUNK, max(n, 1)))
    while n > 0:
        f.write(zero[: min(n, len(zero))])
        n -= len(zero)


def forge_sizes(path: Path, claimed: dict[str, int]) -> None:
    """Rewrite the uncompressed sizes a zip declares for some members (local header and directory)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    for name, size in claimed.items():
        struct.pack_into("<I", data, infos[name].header_offset + 22, size)
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        name = bytes(data[pos + 46 : pos + 46 + name_len]).decode()
        if name in claimed:
            struct.pack_into("<I", data, pos + 24, claimed[name])
        pos = data.find(b"PK\x01\x02", pos + 46)
    path.write_bytes(bytes(data))


def zip_bomb(path: Path, claimed: int = 1_900_000_000, real: bool = True) -> Path:
    """A bundle zip whose world.npz member inflates to ``claimed`` bytes of zeros."""
    member = "bundle/world.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open(member, "w", force_zip64=claimed >= 0xFFFFFFFF) as f:
            _stream_zeros(f, claimed if real else 1024)
        zf.writestr("bundle/meta.json", json.dumps({"fps": 16}))
    if not real:
        forge_sizes(path, {member: claimed})
    return path


def npz_bomb(path: Path, unpacked: int = 2_100_000_000, real: bool = True) -> Path:
    """A compressed world.npz with valid headers whose eight arrays unpack to about ``unpacked`` bytes."""
    n, h = 8, 1024
    w = max(16, unpacked // (27 * n * h))
    shapes = {
        "images": ((n, h, w, 3), np.uint8),
        "depths": ((n, h, w), np.float32),
        "depth_conf": ((n, h, w), np.float32),
        "points": ((n, h, w, 3), np.float32),
        "points_conf": ((n, h, w), np.float32),
        "intrinsic": ((n, 3, 3), np.float32),
        "cam_c2w": ((n, 4, 4), np.float32),
        "requested_c2w": ((n, 4, 4), np.float32),
    }
    claimed: dict[str, int] = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, (shape, dtype) in shapes.items():
            header = _npy_header(shape, np.dtype(dtype))
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            big = nbytes > 1 << 20
            with zf.open(f"{key}.npy", "w", force_zip64=real and nbytes >= 0xFFFFFFFF) as f:
                f.write(header)
                _stream_zeros(f, nbytes if (real or not big) else 64)
            if not real and big:
                claimed[f"{key}.npy"] = len(header) + nbytes
    if claimed:
        forge_sizes(path, claimed)
    return path


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()  # magic string included


def png_bomb(path: Path, side: int = 13_000) -> Path:
    """A grayscale PNG of side² pixels: tiny on disk, side² bytes (×3 as RGB) when decoded."""
    from PIL import Image

    Image.new("L", (side, side)).save(path, optimize=True)
    return path


# ------------------------------------------------------------------------------------- probing
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def probe(kind: str, path: Path) -> dict:
    """Open one bomb as the studio would, in this (fresh) process; peak memory measured over idle."""
    from gradio.data_classes import ImageData

    from app.exports import open_upload
    from app.limits import world_limits
    from app.uploads import CheckedImage, UploadRejected
    from bench.harness.synthetic_world import synthetic_world
    from fantasy_world.errors import FantasyWorldError
    from fantasy_world.geometry import write_bundle

    scratch = Path(tempfile.mkdtemp(prefix="fw-bomb-"))
    box = CheckedImage(type="filepath")
    # Warm up every code path once with a valid file, so lazy imports are not counted as the bomb's cost.
    write_bundle(synthetic_world(num_frames=1, height=32, width=48), scratch / "ok")
    open_upload(scratch / "ok" / "world.npz", scratch, world_limits(["tiny"], cuda=False))
    from PIL import Image

    Image.new("RGB", (48, 32)).save(scratch / "ok.png")
    box.preprocess(ImageData(path=str(scratch / "ok.png"), orig_name="ok.png"))

    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    idle = _status_kb("VmRSS")
    t0 = time.perf_counter()
    refused, message = False, ""
    if kind == "png":
        out = box.preprocess(ImageData(path=str(path), orig_name=path.name))
        refused, message = isinstance(out, UploadRejected), str(out)
    else:
        try:
            open_upload(path, scratch, world_limits(["tiny"], cuda=False))
        except FantasyWorldError as exc:
            refused, message = True, str(exc)
    seconds = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    return {
        "bomb": kind,
        "file_kb": round(path.stat().st_size / 1024, 1),
        "refused": refused,
        "message": message.replace(str(path.parent), "…"),
        "seconds": round(seconds, 3),
        "idle_rss_mb": round(idle / 1024, 1),
        "peak_over_idle_mb": round((peak - idle) / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for bombs.json")
    parser.add_argument("--small", action="store_true", help="forge directory sizes instead of real data")
    parser.add_argument("--probe", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        sys.stdout.write(json.dumps(probe(args.probe[0], Path(args.probe[1]))) + "\n")
        return 0
    work = Path(tempfile.mkdtemp(prefix="fw-bombs-"))
    real = not args.small
    t0 = time.perf_counter()
    bombs = {
        "zip": zip_bomb(work / "bundle.zip", real=real),
        "npz": npz_bomb(work / "world.npz", real=real),
        "png": png_bomb(work / "gray.png"),
    }
    build_s = time.perf_counter() - t0
    rows = []
    for kind, path in bombs.items():
        done = subprocess.run(
            [sys.executable, __file__, "--probe", kind, str(path)], capture_output=True, text=True, check=True
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"bombs built in {build_s:.1f} s ({'real data' if real else 'forged sizes'})")
    print(f"{'bomb':<5} {'file':>10} {'refused':>8} {'s':>7} {'peak MB over idle':>18}  message")
    for r in rows:
        print(
            f"{r['bomb']:<5} {r['file_kb']:>8.0f}KB {r['refused']!s:>8} {r['seconds']:>7.3f} "
            f"{r['peak_over_idle_mb']:>18.1f}  {r['message']}"
        )
    ok = all(r["refused"] and r["peak_over_idle_mb"] <= LIMIT_MB for r in rows)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bombs.json").write_text(json.dumps({"real": real, "pass": ok, "rows": rows}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
