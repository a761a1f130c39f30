"""README gallery: what the shipped model makes of a few prompts and camera paths.

For each (prompt, camera) pair it generates a world with the default model and writes one PNG row:
four video frames, the same four depth maps (turbo, near = warm) and a view of the fused point cloud
from above and behind the first camera, with the predicted cameras drawn as dots. The images are
committed under ``assets/gallery/`` and shown in the README.

    python bench/gallery.py [--model tiny] [--out assets/gallery] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES: tuple[tuple[str, str, str], ...] = (
    ("orbit", "a red ball beside a tall blue box on a green meadow under a clear blue sky", "orbit"),
    ("dolly", "a yellow cone in front of a purple cylinder in a stone courtyard at dusk", "dolly_in"),
    ("truck", "two white boxes and an orange ball on desert sand on a sunny day", "truck_left"),
    ("arc", "a green torus on top of a red box in a room with white walls", "arc"),
)


def splat_view(
    points: np.ndarray, colours: np.ndarray, c2w0: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """Points [N, 3] (world = camera 0, OpenCV) seen from behind and above camera 0, nearest on top."""
    h, w = size
    centre = np.median(points, axis=0)
    extent = float(np.percentile(np.linalg.norm(points - centre, axis=1), 90)) + 1e-6
    eye = c2w0[:3, 3] + np.array([0.0, -1.2, -1.6]) * extent  # up (−y) and back (−z) in camera 0's frame
    fwd = centre - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, np.array([0.0, -1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    rel = points - eye
    x, y, z = rel @ right, rel @ down, rel @ fwd
    keep = z > 1e-3
    f = 0.9 * w
    u = np.round(f * x[keep] / z[keep] + w / 2).astype(int)
    v = np.round(f * y[keep] / z[keep] + h / 2).astype(int)
    col, depth = colours[keep], z[keep]
    inside = (u >= 0) & (u < w - 1) & (v >= 0) & (v < h - 1)
    u, v, col, depth = u[inside], v[inside], col[inside], depth[inside]
    order = np.argsort(-depth)  # far first; nearer points overwrite
    img = np.full((h, w, 3), 24, np.uint8)
    for du in (0, 1):  # 2×2 splats so a sparse cloud still reads as surfaces
        for dv in (0, 1):
            img[v[order] + dv, u[order] + du] = col[order]
    return img


def strip(world, size: int = 4) -> np.ndarray:  # noqa: ANN001 - WorldResult
    """One gallery row: frames, depth maps and the point-cloud view, side by side."""
    from fantasy_world.geometry.depth_video import colorize_depth

    n = world.images.shape[0]
    idx = np.linspace(0, n - 1, size).round().astype(int)
    frames = [world.images[i] for i in idx]
    depth = colorize_depth(world.depths)
    depths = [depth[i] for i in idx]
    conf = world.points_conf.reshape(-1)
    pts = world.points.reshape(-1, 3)
    rgb = world.images.reshape(-1, 3)
    good = np.isfinite(pts).all(axis=1) & (conf >= np.percentile(conf, 30))
    h, w = world.images.shape[1:3]
    cloud = splat_view(pts[good], rgb[good], world.cam_c2w[0], (h, int(w * 1.5)))
    gap = np.full((h, 6, 3), 255, np.uint8)
    parts = []
    for img in frames + depths + [cloud]:
        parts += [img, gap]
    return np.concatenate(parts[:-1], axis=1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--out", default="assets/gallery")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    from PIL import Image

    from fantasy_world import CameraPath, FantasyWorldPipeline

    pipe = FantasyWorldPipeline.from_pretrained(args.model)
    d = pipe.defaults
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for name, prompt, camera in CASES:
        t0 = time.perf_counter()
        path = CameraPath.preset(camera, num_frames=d.frames)
        world = pipe(prompt=prompt, camera=path, seed=args.seed)
        Image.fromarray(strip(world)).save(out / f"{name}.png", optimize=True)
        index.append(
            {"file": f"{name}.png", "prompt": prompt, "camera": camera, "seconds": time.perf_counter() - t0}
        )
        print(f"{name}: {prompt!r} ({camera}) {index[-1]['seconds']:.1f}s")
    (out / "gallery.json").write_text(
        json.dumps({"model": args.model, "seed": args.seed, "rows": index}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
