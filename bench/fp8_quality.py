"""What FP8 mode costs in quality, and what it buys in time (issue 12).

    python bench/fp8_quality.py --out OUT [--part a|b|both] [--small] [--device cuda|cpu] [--budget 150]

Part (a), ``seeded``: the full-size models with seeded random weights (``bench.harness.weights``):
FantasyWorld ``wan2.1-i2v-14b`` (velocity, depth, points, camera encoding) and the plain Wan2.1-I2V-14B
DiT (velocity), one forward at 81×336×592 (16,317 tokens), t=500. The bf16 model and an FP8 copy of it
(``fantasy_world.quant.quantize_model``) are both resident; each runs eagerly and under regional compile
(``accel/compile.py``; eager runs set the compiled calls aside). Reported: relative
error ‖fp8 − bf16‖ / ‖bf16 − mean(bf16)‖ per output (eager FP8 and compiled FP8 against eager bf16) and
the median forward time of each variant. Sections that no longer fit ``--budget`` are skipped and say so;
the plain Wan model comes second. ``--small`` runs reduced widths at a toy size (CPU smoke test).

Part (b), ``tiny``: the trained bundled model, ``--worlds`` generations with its defaults, each once in
the model dtype (fp32 on CPU, bf16 on CUDA) and once with ``fp8=True``, same prompt, camera and seed.
Reported per world and on average: video PSNR (uint8 frames), depth abs-rel difference
mean(|d_fp8 − d_ref| / d_ref), camera rotation difference (degrees, per frame, mean and max) and
translation difference (‖t_fp8 − t_ref‖ relative to the mean camera distance from the first camera).
``--noise-floor`` adds the same comparison for a bf16 pipeline against fp32 (CPU), as a yardstick;
``--dit-only`` adds FP8 in the Wan blocks only (geometry branch in the model dtype);
``--attention`` adds FP8 linears + FP8 attention (``fp8_attention=True``) at every attention call.
On the CPU the FP8 GEMMs are emulated exactly (both operands quantised as on the GPU, fp32 accumulation).

Writes ``fp8_quality.json`` to ``--out`` and prints tables.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.harness.bench_models import (  # noqa: E402
    I2V_SIZE,
    SMALL_SIZE,
    VideoSize,
    build_fantasy,
    build_wan,
    fw14_config,
    plucker_input,
    wan_inputs,
)
from bench.harness.timing import measure  # noqa: E402
from bench.harness.weights import free_cuda  # noqa: E402
from fantasy_world.accel.compile import compile_blocks  # noqa: E402
from fantasy_world.models.wan.config import wan_dit_config  # noqa: E402
from fantasy_world.quant import fp8_gemm_available, quantize_model, quantized_layers  # noqa: E402

GEOMETRY = ("depth", "world_points", "pose_enc")
COMPILE_ESTIMATE_S = 45.0  # one compile of a 14B model's blocks on the H200, with margin


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.to(b.device, torch.float64), b.double()
    return float((a - b).norm() / (b - b.mean()).norm())


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


@contextlib.contextmanager
def eager(*models):
    """Run blocks compiled in place (``nn.Module.compile``) eagerly: their compiled call is set aside.
    (``torch.compiler.set_stance("force_eager")`` made these forwards ~50x slower on the CPU.)"""
    stash = [(m, m._compiled_call_impl) for model in models for m in model.modules()]
    for m, _ in stash:
        m._compiled_call_impl = None
    try:
        yield
    finally:
        for m, impl in stash:
            m._compiled_call_impl = impl


# ---------------------------------------------------------------------------------------------- part (a)
def _forward_fn(kind: str, model, inputs: dict, camera):
    if kind == "fantasyworld":

        def run():
            out = model(**inputs, camera=camera, return_geometry=True)
            res = {"velocity": out.velocity}
            res.update({k: getattr(out.geometry, k) for k in GEOMETRY})
            return res

    else:

        def run():
            return {"velocity": model(**inputs)}

    return torch.no_grad()(run)


def _host(out: dict) -> dict:
    return {k: v.detach().float().cpu() for k, v in out.items()}


def seeded_model(kind: str, args, device, budget: Budget, rows: list, timings: list) -> None:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    size: VideoSize = SMALL_SIZE if args.small else I2V_SIZE
    t0 = time.perf_counter()
    if kind == "fantasyworld":
        cfg = fw14_config(args.small)
        model = build_fantasy(cfg, device, dtype, args.seed)
        wcfg = cfg.dit
    else:
        wcfg = fw14_config(True).dit if args.small else wan_dit_config("wan2.1-i2v-14b")
        model = build_wan(wcfg, device, dtype, args.seed)
    inputs = wan_inputs(wcfg, size, device, dtype, seed=args.seed)
    inputs["t"] = torch.full((1,), 500.0, device=device)
    camera = None
    if kind == "fantasyworld":
        with torch.no_grad():
            camera = model.encode_camera(plucker_input(size, device, dtype))
    fp8_model = quantize_model(copy.deepcopy(model))
    build_s = time.perf_counter() - t0
    print(
        f"[{kind}] built bf16 + fp8 ({len(quantized_layers(fp8_model))} FP8 layers) in {build_s:.1f} s",
        flush=True,
    )
    compile_blocks(model)
    compile_blocks(fp8_model)
    run_ref = _forward_fn(kind, model, inputs, camera)
    run_fp8 = _forward_fn(kind, fp8_model, inputs, camera)
    reps = 1 if args.small else 2
    resident = [model, fp8_model]

    def timed(name: str, fn, compiled: bool) -> dict | None:
        need = (COMPILE_ESTIMATE_S if compiled and not args.small else 0.0) + 10.0
        if budget.left() < need:
            print(f"[{kind}] {name}: skipped ({budget.left():.0f} s of budget left)", flush=True)
            timings.append({"model": kind, "variant": name, "skipped": "budget"})
            return None
        t = time.perf_counter()
        try:
            with contextlib.nullcontext() if compiled else eager(*resident):
                out = _host(fn())  # a compiled variant compiles on this first call
                first = time.perf_counter() - t
                timing = measure(fn, device, warmup=0, reps=reps)
        except Exception as exc:  # noqa: BLE001 - one failing variant must not lose the others' numbers
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            print(f"[{kind}] {name}: FAILED {message}", flush=True)
            timings.append({"model": kind, "variant": name, "error": message})
            return None
        row = {"model": kind, "variant": name, "first_call_s": first, **timing.as_dict()}
        timings.append(row)
        print(f"[{kind}] {name}: {timing.median_s:.3f} s (first call {first:.1f} s)", flush=True)
        return out

    ref = timed("bf16 eager", run_ref, compiled=False)
    for name, fn, compiled in (
        ("fp8 eager", run_fp8, False),
        ("fp8 compiled", run_fp8, True),
        ("bf16 compiled", run_ref, True),
    ):
        out = timed(name, fn, compiled)
        if out is not None and ref is not None and name.startswith("fp8"):
            for key in out:
                rows.append({"model": kind, "variant": name, "output": key, "rel": rel(out[key], ref[key])})
                print(f"[{kind}] {name} {key}: rel {rows[-1]['rel']:.3e}", flush=True)
    resident.clear()
    del model, fp8_model, run_ref, run_fp8
    torch._dynamo.reset()
    free_cuda()


def part_a(args, device, budget: Budget) -> dict:
    rows: list[dict] = []
    timings: list[dict] = []
    for kind in ("fantasyworld", "wan"):
        if budget.left() < 20:
            timings.append({"model": kind, "skipped": "budget"})
            continue
        seeded_model(kind, args, device, budget, rows, timings)
    by = {(t["model"], t.get("variant")): t.get("median_s") for t in timings}
    speedups = {}
    for kind in ("fantasyworld", "wan"):
        for mode in ("eager", "compiled"):
            a, b = by.get((kind, f"bf16 {mode}")), by.get((kind, f"fp8 {mode}"))
            if a and b:
                speedups[f"{kind} {mode}"] = a / b
    return {"errors": rows, "timings": timings, "fp8_speedup": speedups}


# ---------------------------------------------------------------------------------------------- part (b)
def compare_worlds(got, ref) -> dict:
    from fantasy_world.evaluation.metrics import psnr, rotation_angle_deg

    d_ref, d_got = ref.depths.astype(np.float64), got.depths.astype(np.float64)
    valid = np.isfinite(d_ref) & (d_ref > 1e-6) & np.isfinite(d_got)
    rot = rotation_angle_deg(
        ref.cam_c2w[:, :3, :3].astype(np.float64), got.cam_c2w[:, :3, :3].astype(np.float64)
    )
    t_ref, t_got = ref.cam_c2w[:, :3, 3].astype(np.float64), got.cam_c2w[:, :3, 3].astype(np.float64)
    scale = max(float(np.linalg.norm(t_ref - t_ref[:1], axis=1).mean()), 1e-6)
    trans = np.linalg.norm(t_got - t_ref, axis=1) / scale
    return {
        "video_psnr_db": psnr(got.images.astype(np.float64), ref.images.astype(np.float64), peak=255.0),
        "depth_absrel": float(np.mean(np.abs(d_got[valid] - d_ref[valid]) / d_ref[valid])),
        "rot_deg_mean": float(rot.mean()),
        "rot_deg_max": float(rot.max()),
        "trans_rel_mean": float(trans.mean()),
        "trans_rel_max": float(trans.max()),
    }


PROMPTS = (
    "a red ball beside a tall blue box in a sunlit courtyard",
    "a green cylinder and a yellow cone on a checkered floor under a clear sky",
    "two orange rings and a purple capsule on grey tiles at dusk",
    "a white box on a wooden floor next to a blue ball",
)
CAMERAS = ("orbit", "dolly_in", "pan", "arc")


def part_b(args, device, budget: Budget) -> dict:
    from fantasy_world.pipeline import FantasyWorldPipeline

    def generate(pipe, i: int):
        return pipe(
            PROMPTS[i % len(PROMPTS)], camera=CAMERAS[i % len(CAMERAS)], seed=args.seed + i, steps=args.steps
        )

    ref_pipe = FantasyWorldPipeline.from_pretrained(args.model, device=device)
    variants = {"fp8": dict(fp8=True)}
    if args.dit_only:
        variants["fp8-dit-only"] = {}
    if args.attention:
        variants["fp8-attention-every-call"] = dict(fp8_attention=True)
    if args.noise_floor:
        variants["bf16"] = dict(dtype="bf16")
    pipes = {
        name: FantasyWorldPipeline.from_pretrained(args.model, device=device, **kw)
        for name, kw in variants.items()
    }
    if "fp8-dit-only" in pipes:
        quantize_model(pipes["fp8-dit-only"].model, scope="dit")
    if "fp8-attention-every-call" in pipes:
        # the tiny model's attention calls are all shorter than FA3_MIN_KEYS, where FP8 attention stays off
        # even on a GPU; lowering the threshold (read only for modules with FP8 attention on) measures what
        # FP8 attention does to a trained model, as the 14B's long calls would see it
        import fantasy_world.models.wan.attention as attention_module

        attention_module.FA3_MIN_KEYS = 0
    rows, times = [], {"reference": [], **{k: [] for k in variants}}
    for i in range(args.worlds):
        if budget.left() < 10:
            print(f"tiny: stopped after {i} worlds (budget)", flush=True)
            break
        t = time.perf_counter()
        ref = generate(ref_pipe, i)
        times["reference"].append(time.perf_counter() - t)
        for name, pipe in pipes.items():
            t = time.perf_counter()
            got = generate(pipe, i)
            times[name].append(time.perf_counter() - t)
            row = {
                "world": i,
                "variant": name,
                "prompt": PROMPTS[i % len(PROMPTS)],
                **compare_worlds(got, ref),
            }
            rows.append(row)
            print(
                f"tiny world {i} {name}: PSNR {row['video_psnr_db']:.2f} dB, depth abs-rel {row['depth_absrel']:.4f}, "
                f"rot {row['rot_deg_mean']:.3f}° (max {row['rot_deg_max']:.3f}°), "
                f"trans {row['trans_rel_mean']:.4f} (max {row['trans_rel_max']:.4f})",
                flush=True,
            )
    summary = {}
    for name in variants:
        sel = [r for r in rows if r["variant"] == name]
        if sel:
            keys = (
                "video_psnr_db",
                "depth_absrel",
                "rot_deg_mean",
                "rot_deg_max",
                "trans_rel_mean",
                "trans_rel_max",
            )
            summary[name] = {k: float(np.mean([r[k] for r in sel])) for k in keys}
            summary[name]["worlds"] = len(sel)
    return {
        "reference_dtype": str(ref_pipe.dtype).replace("torch.", ""),
        "fp8_gemm": "torch._scaled_mm" if device.type == "cuda" and fp8_gemm_available() else "emulated",
        "rows": rows,
        "mean": summary,
        "seconds_per_world": {k: float(np.median(v)) for k, v in times.items() if v},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--part", choices=("a", "b", "both"), default="both")
    p.add_argument("--small", action="store_true", help="part (a) at toy size (CPU smoke test)")
    p.add_argument("--device", default="auto")
    p.add_argument("--budget", type=float, default=150.0, help="seconds for part (a); part (b) gets its own")
    p.add_argument("--budget-b", type=float, default=600.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="tiny", help="part (b) model")
    p.add_argument("--worlds", type=int, default=3)
    p.add_argument("--steps", type=int, default=None, help="part (b) steps (default: the model's)")
    p.add_argument("--noise-floor", action="store_true", help="part (b): also bf16 against fp32")
    p.add_argument("--dit-only", action="store_true", help="part (b): also FP8 in the DiT blocks only")
    p.add_argument(
        "--attention",
        action="store_true",
        help="part (b): also FP8 linears + FP8 attention (emulated) at every attention call",
    )
    args = p.parse_args()

    from fantasy_world.utils.runtime import pick_device

    device = pick_device(args.device)
    for name, value in (
        ("cache_size_limit", 64),
        ("recompile_limit", 64),
        ("accumulated_cache_size_limit", 512),
    ):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, value)
    result: dict = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "fp8_gemm_available": fp8_gemm_available(),
        "small": args.small,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.part in ("a", "both"):
        t = time.perf_counter()
        result["seeded"] = part_a(args, device, Budget(args.budget))
        result["seeded"]["wall_s"] = time.perf_counter() - t
    if args.part in ("b", "both"):
        t = time.perf_counter()
        result["tiny"] = part_b(args, device, Budget(args.budget_b))
        result["tiny"]["wall_s"] = time.perf_counter() - t
    (out / "fp8_quality.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k not in ("seeded", "tiny")}))
    if "seeded" in result:
        print("\nseeded weights, one forward:")
        for r in result["seeded"]["errors"]:
            print(f"  {r['model']:13s} {r['variant']:13s} {r['output']:13s} rel {r['rel']:.3e}")
        for r in result["seeded"]["timings"]:
            if "median_s" in r:
                print(
                    f"  {r['model']:13s} {r['variant']:13s} {r['median_s']:.3f} s (first {r['first_call_s']:.1f} s)"
                )
            else:
                why = r.get("skipped") or r.get("error")
                print(f"  {r['model']:13s} {r.get('variant', '')} not measured ({why})")
        print("  fp8 speed-up:", {k: round(v, 3) for k, v in result["seeded"]["fp8_speedup"].items()})
    if "tiny" in result:
        print(
            f"\ntiny model against {result['tiny']['reference_dtype']} ({result['tiny']['fp8_gemm']} FP8 GEMMs):"
        )
        for name, m in result["tiny"]["mean"].items():
            print(f"  {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items()))
        print("  seconds per world:", result["tiny"]["seconds_per_world"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
