"""Small GPU measurements of the parts of a denoising step that issue 12's remaining gap is made of.

Why: the compiled FantasyWorld-14B forward misses its target by ~1 % and the 50-step video by ~2 %, so
each candidate saving (the feed-forward's GELU in the GEMM epilogue, step-invariant projections, the
geometry read-out to numpy) is measured alone first, at the real 14B shapes, before it is worth building
into the model. Prints one JSON object per row and writes them to ``--out``/step_parts.json.

    python bench/step_parts.py --out OUT
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fantasy_world.models.fantasy.model import GeometryOutput  # noqa: E402
from fantasy_world.models.wan import linear_gelu  # noqa: E402
from fantasy_world.pipeline import _as_uint8_video  # noqa: E402
from fantasy_world.readout import read_geometry  # noqa: E402

ROWS: list[dict[str, object]] = []


def row(name: str, seconds: float | None = None, **extra: object) -> None:
    item = {"name": name, "seconds": seconds, **extra}
    ROWS.append(item)
    print(json.dumps(item), flush=True)


def cuda_time(fn, reps: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000 / reps


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def kernel_names(fn) -> list[str]:
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sorted({e.name for e in prof.events() if e.device_type.name == "CUDA"})


def ffn_rows(tokens: int, dim: int, hidden: int, label: str) -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(tokens, dim, device="cuda", generator=gen).bfloat16()
    w = (torch.randn(hidden, dim, device="cuda", generator=gen) / dim**0.5).bfloat16()
    b = (torch.randn(hidden, device="cuda", generator=gen) * 0.1).bfloat16()
    flops = 2.0 * tokens * dim * hidden

    def unfused() -> torch.Tensor:
        return F.gelu(F.linear(x, w, b), approximate="tanh")

    def fused() -> torch.Tensor:
        return linear_gelu.linear_gelu_tanh(x, w, b)

    def gemm_only() -> torch.Tensor:
        return F.linear(x, w, b)

    exact = F.gelu(F.linear(x.double(), w.double(), b.double()), approximate="tanh")
    for name, fn in (("GEMM + bias alone", gemm_only), ("GEMM, then GELU", unfused), ("fused op", fused)):
        s = cuda_time(fn)
        row(f"{label} FFN input layer: {name}", s, tflops=round(flops / s / 1e12, 1))
    row(f"{label}: rel. error vs float64, GEMM then GELU", err=rel(unfused(), exact))
    row(f"{label}: rel. error vs float64, fused op", err=rel(fused(), exact))
    row(f"{label}: fused op kernels", kernels=kernel_names(fused))


def invariant_rows() -> None:
    """The per-forward work that depends only on the prompt, start image and camera (14B shapes)."""
    gen = torch.Generator(device="cuda").manual_seed(1)
    dim, blocks, adapters, tokens = 5120, 40, 25, 16317
    w = [(torch.randn(dim, dim, device="cuda", generator=gen) / dim**0.5).bfloat16() for _ in range(4)]
    txt = torch.randn(1, 512, dim, device="cuda", generator=gen).bfloat16()
    img = torch.randn(1, 257, dim, device="cuda", generator=gen).bfloat16()
    norm_w = torch.ones(dim, device="cuda", dtype=torch.bfloat16)

    def context_kv() -> None:
        F.rms_norm(F.linear(txt, w[0]), (dim,), norm_w, 1e-6)
        F.linear(txt, w[1])
        F.rms_norm(F.linear(img, w[2]), (dim,), norm_w, 1e-6)
        F.linear(img, w[3])

    s = cuda_time(context_kv)
    row("context K/V of one block (text 512 + image 257 tokens, k, v, k_img, v_img)", s)
    row("context K/V of one forward (40 blocks, derived)", s * blocks)
    cam = torch.randn(1, tokens, 2048, device="cuda", generator=gen).bfloat16()
    g1 = (torch.randn(2048, 2048, device="cuda", generator=gen) / 45).bfloat16()
    s = cuda_time(lambda: F.linear(cam, g1))
    row("camera adapter group1(camera) of one block", s)
    row("camera adapter group1 of one forward (25 adapter blocks, derived)", s * adapters)


def readout_rows(frames: int = 81, height: int = 336, width: int = 592) -> None:
    gen = torch.Generator(device="cuda").manual_seed(2)
    shape = (1, frames, height, width)
    geo = GeometryOutput(
        depth=torch.rand(shape, device="cuda", generator=gen),
        depth_conf=torch.rand(shape, device="cuda", generator=gen),
        world_points=torch.randn(*shape, 3, device="cuda", generator=gen),
        world_points_conf=torch.rand(shape, device="cuda", generator=gen),
        pose_enc=torch.rand(1, frames, 9, device="cuda", generator=gen),
    )

    def host_points() -> None:  # what read_geometry did before: pageable copies, float64 points on the host
        for m in (geo.depth, geo.depth_conf, geo.world_points_conf):
            m[0].float().cpu().numpy()
        pts = geo.world_points[0].double().cpu()
        (pts @ torch.eye(3, dtype=torch.float64) + 1.0).float().numpy()

    def pageable_frames() -> None:  # what _as_uint8_video did before
        ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()

    video = torch.rand(3, frames, height, width, device="cuda", generator=gen) * 2 - 1
    for name, fn in (
        (
            "read_geometry (points mapped on the card, copies through pinned memory)",
            lambda: read_geometry(geo, height, width),
        ),
        ("read_geometry before (pageable copies, points mapped on the host in float64)", host_points),
        ("video to uint8 frames on the host (pipeline._as_uint8_video)", lambda: _as_uint8_video(video)),
        ("the same through pageable memory (before)", pageable_frames),
    ):
        fn()
        times = []
        for _ in range(3):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        row(f"{name}, {frames}x{height}x{width}", sorted(times)[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only-readout", action="store_true", help="just the read-out rows")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    row("device", note=f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    parts = [readout_rows] if args.only_readout else None
    for fn in parts or (
        lambda: ffn_rows(16317, 5120, 13824, "14B 336x592x81"),
        lambda: ffn_rows(32760, 1536, 8960, "1.3B 480x832x81"),
        invariant_rows,
        readout_rows,
    ):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one failed part must not lose the others
            row("error", note=f"{type(exc).__name__}: {exc}")
    (args.out / "step_parts.json").write_text(json.dumps(ROWS, indent=1))


if __name__ == "__main__":
    main()
