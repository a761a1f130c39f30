"""Eager bf16 Wan DiT forward with the fused element-wise forms vs the old separate float32 passes.

``python bench/eager_bf16.py [--device cpu|cuda] [--reps N]``: the same seeded model and inputs, timed both
ways (``fantasy_world.models.wan.dit._fused`` switched off for the second), plus the relative difference
of the outputs. A quick check that the eager path got cheaper; the like-for-like GPU rows against
diffusers come from ``bench/gpu_bench.py --sections speed``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import fantasy_world.models.wan.dit as dit  # noqa: E402
from bench.harness.weights import seeded_randomize  # noqa: E402
from fantasy_world.models.wan.config import wan_dit_config  # noqa: E402


def _time(fn, device: torch.device, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/eager_bf16.py")
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    full = device.type == "cuda"
    cfg = (
        wan_dit_config("wan2.1-t2v-1.3b")
        if full
        else wan_dit_config(
            "tiny", dim=512, ffn_dim=1024, num_heads=4, num_layers=4, text_dim=64, text_len=64, freq_dim=64
        )
    )
    model = dit.WanDiT(cfg).eval()
    seeded_randomize(model, 0)
    model = model.to(device, torch.bfloat16)
    f, h, w = (21, 60, 104) if full else (9, 32, 48)  # 480x832x81 on a GPU; 3,456 tokens on a CPU
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, f, h, w, generator=g).to(device, torch.bfloat16)
    ctx = torch.randn(1, cfg.text_len, cfg.text_dim, generator=g).to(device, torch.bfloat16)
    t = torch.tensor([500.0], device=device)
    rows = {}
    with torch.no_grad():
        fused_s = _time(lambda: model(x, t, ctx), device, args.reps)
        out_fused = model(x, t, ctx)
        real = dit._fused
        dit._fused = lambda layer: False
        try:
            plain_s = _time(lambda: model(x, t, ctx), device, args.reps)
            out_plain = model(x, t, ctx)
        finally:
            dit._fused = real
    diff = float((out_fused - out_plain).norm() / out_plain.norm().clamp_min(1e-30))
    rows = {
        "device": str(device),
        "tokens": f * (h // 2) * (w // 2),
        "fused_s": round(fused_s, 4),
        "unfused_s": round(plain_s, 4),
        "speedup": round(plain_s / fused_s, 3),
        "rel_diff": diff,
    }
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
