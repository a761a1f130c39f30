"""Attention-kernel probe at the benchmark's shapes, run in a child process.

Why a child process: a fused kernel that faults (an illegal memory access) poisons the whole CUDA
context, and everything measured after it in that process would fail. The probe checks each SDPA
backend against FlashAttention at the real shapes, times it, and reports JSON; the benchmark then uses
only the backends that passed. ``python -m bench.harness.probe [--small] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

# (label, heads, head_dim, query tokens, key tokens)
FULL_SHAPES = [
    ("wan 1.3B self-attn", 12, 128, 32760, 32760),
    ("fw 1.3B bicross", 12, 96, 32760, 32865),
    ("wan 14B self-attn", 40, 128, 16317, 16317),
    ("fw 14B global geometry", 16, 64, 16422, 16422),
]
SMALL_SHAPES = [("toy self-attn", 2, 32, 96, 96), ("toy bicross", 2, 48, 96, 111)]


def _run(shapes, device: torch.device, backends: list[str]) -> list[dict]:
    from bench.harness.timing import measure
    from fantasy_world.models.wan.attention import attention_backend

    rows = []
    for label, h, d, lq, lk in shapes:
        gen = torch.Generator(device=device).manual_seed(0)

        def rnd(n: int, h: int = h, d: int = d, gen: torch.Generator = gen) -> torch.Tensor:
            """[B, L, H, D] as the models make it, viewed [B, H, L, D]."""
            return torch.randn(1, n, h, d, generator=gen, device=device).to(torch.bfloat16).transpose(1, 2)

        q, k, v = rnd(lq), rnd(lk), rnd(lk)
        flops = 4.0 * lq * lk * d * h
        ref = None
        for name in backends:
            row = {"shape": label, "backend": name}
            try:
                with attention_backend(name):
                    out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
                    t = measure(
                        lambda q=q, k=k, v=v: torch.nn.functional.scaled_dot_product_attention(q, k, v),
                        device,
                        1,
                        3,
                    )
                if ref is None:
                    ref = out.float()
                row["rel_err_vs_first"] = float((out.float() - ref).norm() / ref.norm())
                row["finite"] = bool(torch.isfinite(out).all())
                row["time_ms"] = t.median_s * 1e3
                row["tflops"] = flops / t.median_s / 1e12
            except Exception as exc:  # noqa: BLE001 - report and go on
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
            rows.append(row)
    return rows


def probe_in_child(device: str, small: bool, timeout_s: float = 180.0) -> dict:
    """Run the probe in a fresh interpreter; a crash or hang there is reported, not inherited."""
    cmd = [sys.executable, "-m", "bench.harness.probe", "--device", device] + (["--small"] if small else [])
    try:
        root = Path(__file__).resolve().parents[2]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=root)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"probe timed out after {timeout_s:.0f} s", "rows": []}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"ok": False, "error": f"exit {done.returncode}: {' / '.join(tail)}"[:400], "rows": []}
    return {"ok": True, **json.loads(lines[-1])}


def passing_backends(report: dict, tolerance: float = 2e-2) -> set[str]:
    """Backends that ran, stayed finite and matched the first backend on every probed shape."""
    rows = report.get("rows", [])
    names = {r["backend"] for r in rows}
    bad = {
        r["backend"]
        for r in rows
        if "error" in r or not r.get("finite", False) or r.get("rel_err_vs_first", 1.0) > tolerance
    }
    return names - bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    backends = ["flash", "cudnn", "efficient"] if cuda else ["auto"]
    rows = _run(SMALL_SHAPES if args.small else FULL_SHAPES, device, backends)
    print(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
