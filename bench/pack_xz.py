"""Repack a wheel as ``.tar.xz`` so it fits the GPU node's 64 MiB carry limit.

Why: the FlashAttention-3 wheel ``fa3-fwd`` is 27.5 MB as a zip (one 105 MB CUDA library) and the
working tree, the bundled model and the other wheels already take ~40 MiB; xz packs it into ~9 MB.
``bench/train_device_env.prepare_node`` unpacks every ``*.tar.xz`` in the wheels folder into its site
folder. Once, here:

    pip download fa3-fwd==0.0.3 --no-deps -d /tmp/fa3
    python bench/pack_xz.py /tmp/fa3/fa3_fwd-0.0.3-*.whl .train_state/whl/fa3_fwd-0.0.3.tar.xz
"""

from __future__ import annotations

import argparse
import io
import lzma
import tarfile
import zipfile
from pathlib import Path


def repack(wheel: Path, out: Path) -> int:
    """Write the wheel's files into an xz tarball (preset 9, extreme); returns its size in bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf, tarfile.open(out, "w:xz", preset=9 | lzma.PRESET_EXTREME) as tf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            data = zf.read(info)
            member = tarfile.TarInfo(info.filename)
            member.size = len(data)
            member.mode = 0o755 if info.filename.endswith(".so") else 0o644
            tf.addfile(member, io.BytesIO(data))
    return out.stat().st_size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("wheel", type=Path)
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    size = repack(args.wheel, args.out)
    print(f"{args.out}: {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
