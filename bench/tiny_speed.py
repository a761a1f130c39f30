"""Time one world (denoising + geometry + VAE decode) of the tiny model with its default settings.

    python bench/tiny_speed.py [--model tiny] [--device cpu|cuda] [--runs 3] [--threads N] [--json out.json]

Prints the median of ``--runs`` timed worlds after one warm-up, per stage (conditioning, denoise,
decode, total), plus the machine (CPU model, thread count, load average, GPU name). The targets of the
bundled model: ≤ 30 s on the 2-core CPU machine, ≤ 2 s on one H100.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--device", default="auto")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    p.add_argument("--prompt", default="a red ball beside a tall blue box in a sunlit courtyard")
    p.add_argument("--camera", default="orbit")
    p.add_argument("--text-pack", default=None, help="GPU nodes without the MiniLM package")
    p.add_argument("--wheels", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.text_pack or args.wheels:
        from train_device_env import prepare_node

        prepare_node(args.text_pack, args.wheels)

    import torch

    from fantasy_world.pipeline import FantasyWorldPipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipe = FantasyWorldPipeline.from_pretrained(args.model, device=args.device)
    load_s = time.perf_counter() - t0
    d = pipe.defaults
    pipe(args.prompt, camera=args.camera, seed=0)  # warm-up (kernels, caches, prompt encodings)
    runs = []
    for i in range(args.runs):
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()
        world = pipe(args.prompt, camera=args.camera, seed=i + 1)
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()
        runs.append(world.timings)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    result = {
        "model": pipe.name,
        "trained": pipe.loaded.trained,
        "settings": {
            "frames": d.frames,
            "height": d.height,
            "width": d.width,
            "steps": d.steps,
            "guidance": d.guidance,
        },
        "device": str(pipe.device),
        "dtype": str(pipe.dtype).replace("torch.", ""),
        "gpu": torch.cuda.get_device_name(pipe.device) if pipe.device.type == "cuda" else None,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "load_s": load_s,
        "median_s": med,
        "runs_s": [r["total"] for r in runs],
    }
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
