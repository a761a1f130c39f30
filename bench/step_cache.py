"""Speed and quality cost of the opt-in step cache on the bundled tiny model (any device).

For each step count and threshold: denoising time, passes computed/skipped, and the change against the
uncached generation with the same seed — video PSNR, depth relative difference (median), camera rotation
difference (median, degrees).

    python bench/step_cache.py [--steps 10 50] [--thresholds 0.05 0.1 0.2] [--seeds 0 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fantasy_world.evaluation.metrics import psnr, rotation_angle_deg  # noqa: E402
from fantasy_world.pipeline import FantasyWorldPipeline  # noqa: E402
from fantasy_world.sampling.guidance import SequentialGuidance  # noqa: E402
from fantasy_world.sampling.step_cache import StepCache, StepCacheConfig  # noqa: E402

PROMPTS = [
    "a red ball beside a tall blue box in a sunlit courtyard",
    "a green cone and a yellow torus on grass",
]


def compare(ref, out) -> dict[str, float]:  # noqa: ANN001 - WorldResult
    valid = (ref.depths > 0) & np.isfinite(ref.depths) & np.isfinite(out.depths)
    rel = np.abs(out.depths[valid] - ref.depths[valid]) / ref.depths[valid]
    rot = rotation_angle_deg(
        ref.cam_c2w[:, :3, :3].astype(np.float64), out.cam_c2w[:, :3, :3].astype(np.float64)
    )
    return {
        "video_psnr_db": psnr(ref.images / 255.0, out.images / 255.0),
        "depth_rel_diff_median": float(np.median(rel)),
        "camera_rot_diff_median_deg": float(np.median(rot)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    pipe = FantasyWorldPipeline.from_pretrained("tiny", device=args.device)
    rows = []
    for steps in args.steps:
        for seed in args.seeds:
            prompt = PROMPTS[seed % len(PROMPTS)]
            kw = dict(camera="orbit", steps=steps, seed=seed)
            pipe.guidance_runner = None
            ref = pipe(prompt, **kw)
            rows.append(
                {"steps": steps, "seed": seed, "threshold": None, "denoise_s": ref.timings["denoise"]}
            )
            for threshold in args.thresholds:
                cache = StepCache(SequentialGuidance(), StepCacheConfig(threshold=threshold))
                pipe.guidance_runner = cache
                out = pipe(prompt, **kw)
                row = {
                    "steps": steps,
                    "seed": seed,
                    "threshold": threshold,
                    "denoise_s": out.timings["denoise"],
                }
                row.update({"computed": cache.computed, "skipped": cache.skipped, **compare(ref, out)})
                rows.append(row)
    pipe.guidance_runner = None
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"device: {args.device} ({name}), torch {torch.__version__}")
    print(
        "| steps | seed | threshold | steps computed | denoise s | speed-up | video PSNR dB | depth rel. diff | camera rot. diff ° |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    base = {}
    for r in rows:
        if r["threshold"] is None:
            base[(r["steps"], r["seed"])] = r["denoise_s"]
            print(
                f"| {r['steps']} | {r['seed']} | off | {r['steps']} | {r['denoise_s']:.2f} | 1.00x | — | — | — |"
            )
            continue
        speed = base[(r["steps"], r["seed"])] / r["denoise_s"]
        print(
            f"| {r['steps']} | {r['seed']} | {r['threshold']} | {r['computed']} | {r['denoise_s']:.2f} | {speed:.2f}x "
            f"| {r['video_psnr_db']:.1f} | {r['depth_rel_diff_median']:.4f} | {r['camera_rot_diff_median_deg']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "name": name, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
