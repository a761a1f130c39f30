"""The benchmark sections (see ``bench.harness.suite`` for the list and the order).

Each section builds what it times, records rows as it goes and frees its models. Relative errors are
``‖a − b‖ / ‖b‖`` in float32 over the whole output.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from bench.harness.bench_models import (
    I2V_SIZE,
    SMALL_SIZE,
    T2V_SIZE,
    VideoSize,
    build_fantasy,
    build_umt5,
    build_vae,
    build_wan,
    fw13_config,
    fw14_config,
    param_names,
    plucker_input,
    wan13_config,
    wan_inputs,
)
from bench.harness.diffusers_ref import build_diffusers_wan, diffusers_forward
from bench.harness.flops import camera_adapter_flops, fantasy_flops, token_grid, wan_dit_flops
from bench.harness.probe import passing_backends, probe_in_child
from bench.harness.timing import Timing, copy_bandwidth, matmul_ceiling, measure, sync, wall
from bench.harness.weights import free_cuda
from fantasy_world.accel.compile import compile_blocks
from fantasy_world.accel.offload import enable_block_swap
from fantasy_world.model_folder import GenerationDefaults, LoadedModel
from fantasy_world.models.wan.attention import ATTENTION_BACKENDS, attention_backend, set_attention_backend
from fantasy_world.sampling.guidance import BatchedGuidance, SequentialGuidance

if TYPE_CHECKING:
    from bench.harness.suite import Context


def backends(ctx: Context) -> list[str]:
    """Backends to time: on CUDA those the probe passed (plus auto and cudnn-first when cuDNN passed)."""
    if ctx.device.type != "cuda":
        return ["auto"]
    ok = ctx.shared.get("passing_backends", {"flash", "efficient"})
    names = [b for b in ATTENTION_BACKENDS if b not in ("math", "cudnn-first") and (b == "auto" or b in ok)]
    return names + (["cudnn-first"] if "cudnn" in ok else [])


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float().to(a.device)
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _size(ctx: Context, full: VideoSize) -> VideoSize:
    return SMALL_SIZE if ctx.opts.small else full


def timed(
    ctx: Context,
    section: str,
    name: str,
    fn: Callable[[], torch.Tensor],
    flops: float | None = None,
    backend: str = "auto",
    warmup: int = 1,
    reps: int | None = None,
    note: str = "",
) -> tuple[Timing, torch.Tensor] | None:
    """Time ``fn`` under ``backend``; record a row; return the timing and the last output."""
    holder: dict[str, torch.Tensor] = {}

    def call() -> None:
        holder["out"] = fn()

    def run() -> tuple[Timing, torch.Tensor]:
        forced = attention_backend(backend) if ctx.device.type == "cuda" else contextlib.nullcontext()
        with forced:
            t = measure(call, ctx.device, warmup=warmup, reps=reps or ctx.opts.reps)
        ctx.rec.add(section, name, t, flops, note=note, backend=backend)
        return t, holder["out"]

    return ctx.attempt(section, name, run, note=note)


def _unique(*names: str) -> list[str]:
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------------------------- 1
def ceiling(ctx: Context) -> None:
    n = 1024 if ctx.opts.small else 8192
    rate = matmul_ceiling(ctx.device, n)
    ctx.rec.ceiling = rate
    ctx.rec.meta["ceiling_tflops"] = round(rate / 1e12, 1)
    ctx.rec.add(
        "ceiling", f"bf16 matmul {n}x{n}x{n}", 2.0 * n**3 / rate, 2.0 * n**3, note="random data; = 100 %"
    )
    bw = copy_bandwidth(ctx.device, gib=0.0625 if ctx.opts.small else 2.0)
    ctx.rec.meta["copy_tb_s"] = round(bw / 1e12, 2)
    ctx.rec.add("ceiling", "device copy (read+write)", note=f"{bw / 1e12:.2f} TB/s")
    report = probe_in_child(str(ctx.device), ctx.opts.small)
    ctx.rec.meta["attention_probe"] = report
    if not report["ok"]:
        ctx.rec.add("ceiling", "attention probe (child process)", error=report["error"])
        ctx.shared["passing_backends"] = {"flash"} if ctx.device.type == "cuda" else set()
        return
    ctx.shared["passing_backends"] = passing_backends(report)
    for r in report["rows"]:
        name = f"attention kernel {r['backend']}: {r['shape']}"
        if "error" in r:
            ctx.rec.add("ceiling", name, error=r["error"])
        else:
            flops = r["tflops"] * 1e12 * r["time_ms"] / 1e3
            ctx.rec.add(
                "ceiling",
                name,
                r["time_ms"] / 1e3,
                flops,
                note=f"rel. err vs first {r['rel_err_vs_first']:.1e}",
            )


# ---------------------------------------------------------------------------------------------- 2
def wan13(ctx: Context) -> None:
    sec, dev, dt, seed = "wan13", ctx.device, ctx.dtype, ctx.opts.seed
    cfg, size = wan13_config(ctx.opts.small), _size(ctx, T2V_SIZE)
    grid = token_grid(cfg, size.frames, size.height, size.width)
    flops = wan_dit_flops(cfg, grid).total
    ctx.rec.meta["wan13_tokens"] = grid[0] * grid[1] * grid[2]
    inp = wan_inputs(cfg, size, dev, dt)
    ours = build_wan(cfg, dev, dt, seed)
    names = param_names(ours)

    def fwd() -> torch.Tensor:
        return ours(inp["x"], inp["t"], inp["context"])

    outs: dict[str, torch.Tensor] = {}
    times: dict[str, float] = {}
    for backend in backends(ctx):
        r = timed(ctx, sec, f"ours, attention {backend}", fwd, flops, backend)
        if r is not None:
            times[backend], outs[backend] = r[0].median_s, r[1]
    if times:
        ctx.best_backend = min(times, key=times.get)
    ctx.rec.meta["best_backend"] = ctx.best_backend
    base = outs.get("auto")
    for backend, out in outs.items():
        if backend != "auto" and base is not None:
            ctx.rec.add(sec, f"rel. error ours {backend} vs ours auto", note=f"{rel_err(out, base):.2e}")
    inp2 = wan_inputs(cfg, size, dev, dt, batch=2, seed=1)

    def fwd2() -> torch.Tensor:
        return ours(inp2["x"], inp2["t"], inp2["context"])

    for backend in _unique("auto", ctx.best_backend):
        timed(ctx, sec, f"ours batch 2 (both guidance passes), attention {backend}", fwd2, 2 * flops, backend)
    ours = None  # frees the model (closures see None)
    free_cuda()

    ref = build_diffusers_wan(cfg, names, dev, dt, seed)

    def dfwd() -> torch.Tensor:
        return diffusers_forward(ref, inp["x"], inp["t"], inp["context"])

    r = timed(ctx, sec, "diffusers WanTransformer3DModel (default attention)", dfwd, flops, "auto")
    if r is not None:
        ctx.shared["diffusers13_s"] = r[0].median_s
        if base is not None:
            ctx.rec.add(
                sec, "rel. error ours auto vs diffusers (same weights)", note=f"{rel_err(base, r[1]):.2e}"
            )
        ctx.rec.add(
            sec,
            "diffusers 50-step guided loop (derived: 100 x forward)",
            100 * r[0].median_s,
            100 * flops,
            note="derived from the measured forward",
        )
    if "cudnn" in backends(ctx):
        timed(ctx, sec, "diffusers, SDPA forced to cudnn", dfwd, flops, "cudnn")

    def dfwd2() -> torch.Tensor:
        return diffusers_forward(ref, inp2["x"], inp2["t"], inp2["context"])

    timed(ctx, sec, "diffusers batch 2 (default attention)", dfwd2, 2 * flops, "auto")
    ref = None
    free_cuda()
    ours_best = ctx.rec.find(sec, f"ours, attention {ctx.best_backend}")
    if ours_best and "diffusers13_s" in ctx.shared:
        speed = ctx.shared["diffusers13_s"] / ours_best.time_s
        ctx.shared["wan13_speedup"] = speed
        ctx.rec.add(sec, "speed-up ours best vs diffusers default", note=f"{speed:.3f}x (target >= 1.15x)")


# ---------------------------------------------------------------------------------------------- 3
def fw13(ctx: Context) -> None:
    sec, dev, dt, best = "fw13", ctx.device, ctx.dtype, ctx.best_backend
    cfg, size = fw13_config(ctx.opts.small), _size(ctx, T2V_SIZE)
    grid = token_grid(cfg.dit, size.frames, size.height, size.width)
    f_cond = fantasy_flops(cfg, grid).total
    f_skip = (wan_dit_flops(cfg.dit, grid) + camera_adapter_flops(cfg, grid)).total
    model = build_fantasy(cfg, dev, dt, ctx.opts.seed)
    inp = wan_inputs(cfg.dit, size, dev, dt)
    neg = wan_inputs(cfg.dit, size, dev, dt, seed=5)["context"]
    plucker = plucker_input(size, dev, dt)
    r = timed(
        ctx, sec, "camera encoder (once per video)", lambda: model.encode_camera(plucker), warmup=1, reps=1
    )
    if r is None:
        return
    camera = r[1]
    x, t, hw = inp["x"], inp["t"], (size.height, size.width)

    def cond() -> torch.Tensor:
        return model(x, t, inp["context"], camera=camera).velocity

    for backend in _unique("auto", best):
        timed(ctx, sec, f"conditional pass, attention {backend}", cond, f_cond, backend)
    timed(
        ctx,
        sec,
        f"negative pass, official (full model), attention {best}",
        lambda: model(x, t, neg, camera=camera).velocity,
        f_cond,
        best,
    )
    timed(
        ctx,
        sec,
        f"negative pass without geometry branch (opt-in), attention {best}",
        lambda: model.dit(x, t, neg, camera=camera),
        f_skip,
        best,
    )
    r = timed(
        ctx,
        sec,
        f"conditional pass + geometry heads (last step), attention {best}",
        lambda: model(x, t, inp["context"], camera=camera, return_geometry=True, image_hw=hw).geometry.depth,
        None,
        best,
        reps=1,
    )
    plain = ctx.rec.find(sec, f"conditional pass, attention {best}")
    if r is not None and plain is not None:
        ctx.rec.add(sec, "geometry heads alone (derived: difference)", r[0].median_s - plain.time_s)
    kw = {"camera": camera, "image_hw": hw}
    seq, bat, skip = SequentialGuidance(), BatchedGuidance(), SequentialGuidance(uncond_geometry=False)

    def guided(runner) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            out, v_u = runner(model, x, t, inp["context"], neg, want_geo=False, **kw)
            return torch.cat([out.velocity, v_u], dim=0)

        return run

    r_seq = timed(
        ctx, sec, f"guided step, two passes, attention {best}", guided(seq), 2 * f_cond, best, reps=2
    )
    r_bat = timed(
        ctx, sec, f"guided step, batched (batch 2), attention {best}", guided(bat), 2 * f_cond, best, reps=2
    )
    r_skip = timed(
        ctx,
        sec,
        f"guided step, negative pass without geometry, attention {best}",
        guided(skip),
        f_cond + f_skip,
        best,
        reps=2,
    )
    if r_seq is not None and r_bat is not None:
        ctx.rec.add(sec, "rel. error batched vs two passes", note=f"{rel_err(r_bat[1], r_seq[1]):.2e}")
    if r_seq is not None and r_skip is not None:
        g = 5.0
        v_off = r_seq[1][1:] + g * (r_seq[1][:1] - r_seq[1][1:])
        v_skip = r_skip[1][1:] + g * (r_skip[1][:1] - r_skip[1][1:])
        ctx.rec.add(
            sec,
            "guided velocity change, negative pass without geometry",
            note=f"{rel_err(v_skip, v_off):.2e} (one step, random weights: an upper-bound-style probe, not a quality metric)",
        )
    ctx.shared["fw13_model"] = model


# ---------------------------------------------------------------------------------------------- 4
class _StepClock:
    """Synchronised host time at each finished step (the pipeline's own timer does not synchronise)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.marks = device, []

    def __call__(self, info) -> None:  # noqa: ANN001 - StepInfo
        if getattr(info, "phase", "denoising") != "denoising":  # a notice ("compiling (once)"), not a step
            return
        sync(self.device)
        self.marks.append(time.perf_counter())


def generate(ctx: Context) -> None:
    from fantasy_world.pipeline import WAN_NEGATIVE_PROMPT, FantasyWorldPipeline

    sec, dev, dt, small = "generate", ctx.device, ctx.dtype, ctx.opts.small
    cfg, size = fw13_config(small), _size(ctx, T2V_SIZE)
    model = ctx.shared.pop("fw13_model", None) or build_fantasy(cfg, dev, dt, ctx.opts.seed)
    vae = build_vae(small, dev, ctx.opts.seed)
    text = build_umt5(cfg.dit.text_dim, cfg.dit.text_len, small, dev, ctx.opts.seed)
    defaults = GenerationDefaults(
        frames=size.frames,
        height=size.height,
        width=size.width,
        steps=50,
        guidance=5.0,
        negative_prompt=WAN_NEGATIVE_PROMPT,
        max_pixels_cpu=size.height * size.width,
    )
    loaded = LoadedModel(cfg.name, model, vae, text, None, defaults, trained=False)
    pipe = FantasyWorldPipeline(loaded, dev, dt)
    set_attention_backend(ctx.best_backend)
    f, h, w = size.latent()
    sync(dev)
    vae.decode(torch.randn(1, 16, 2, h, w, device=dev))  # warm the decoder's kernels (both chunk shapes)
    pipe.encode_prompt("warm-up")
    steps = max(3, ctx.opts.gen_steps)
    grid = token_grid(cfg.dit, size.frames, size.height, size.width)
    f_cond = fantasy_flops(cfg, grid).total
    f_skip = (wan_dit_flops(cfg.dit, grid) + camera_adapter_flops(cfg, grid)).total
    modes = [
        ("official passes", None, 2 * f_cond),
        ("negative pass without geometry", SequentialGuidance(False), f_cond + f_skip),
    ]
    loop50 = ctx.shared.get("diffusers13_s")
    for label, runner, step_flops in modes:
        if ctx.rec.time_left() < (5 if small else 45):
            ctx.rec.add(sec, f"{label}: skipped", note="time guard")
            continue

        def run(label=label, runner=runner, step_flops=step_flops) -> None:
            pipe.guidance_runner = runner
            pipe._prompt_cache.clear()  # text encoding is part of the measured run
            clock = _StepClock(dev)
            world, total = wall(
                lambda: pipe(
                    "a stone bridge over a river in a misty forest, cinematic",
                    camera="orbit",
                    steps=steps,
                    guidance=5.0,
                    seed=0,
                    on_step=clock,
                ),
                dev,
            )
            marks = clock.marks
            durations = [b - a for a, b in zip(marks[:-1], marks[1:])]
            per_step = (
                sum(durations[:-1]) / max(1, len(durations) - 1) if len(durations) > 1 else durations[0]
            )
            last = durations[-1]
            tm = world.timings
            ctx.rec.add(
                sec,
                f"{label}: {steps}-step generation, measured",
                total,
                note=f"conditioning {tm['conditioning']:.2f}s, denoise {tm['denoise']:.2f}s, decode+readout {total - tm['conditioning'] - tm['denoise']:.2f}s",
            )
            ctx.rec.add(sec, f"{label}: one guided step (steps 2..{steps - 1})", per_step, step_flops)
            ctx.rec.add(sec, f"{label}: last step extra (geometry heads)", last - per_step)
            e2e = total - tm["denoise"] + 49 * per_step + last
            note = "extrapolated: measured run with 49 x measured step + measured last step"
            if loop50:
                note += f"; {e2e / (100 * loop50):.2f}x the diffusers 50-step loop (target <= 1.5x)"
            ctx.rec.add(sec, f"{label}: 50 steps end to end (extrapolated)", e2e, note=note)

        ctx.attempt(sec, label, run)
    pipe = loaded = text = vae = model = None
    free_cuda()


# ---------------------------------------------------------------------------------------------- 5, 6
def i2v14(ctx: Context) -> None:
    sec, dev, dt, best, small = "i2v14", ctx.device, ctx.dtype, ctx.best_backend, ctx.opts.small
    cfg, size = fw14_config(small), _size(ctx, I2V_SIZE)
    grid = token_grid(cfg.dit, size.frames, size.height, size.width)
    f_plain, f_fw = wan_dit_flops(cfg.dit, grid).total, fantasy_flops(cfg, grid).total
    model = build_fantasy(cfg, dev, dt, ctx.opts.seed)
    names = param_names(model.dit)
    inp = wan_inputs(cfg.dit, size, dev, dt)
    plucker = plucker_input(size, dev, dt)
    camera = model.encode_camera(plucker)
    del plucker
    x, t, c, clip, y = inp["x"], inp["t"], inp["context"], inp["clip_fea"], inp["y"]

    def plain() -> torch.Tensor:
        return model.dit(x, t, c, clip_fea=clip, y=y)

    def cond() -> torch.Tensor:
        return model(x, t, c, clip_fea=clip, y=y, camera=camera).velocity

    ours_plain = None
    for backend in _unique("auto", best):
        r = timed(ctx, sec, f"ours plain Wan I2V forward, attention {backend}", plain, f_plain, backend)
        if r is not None and backend == "auto":
            ours_plain = r[1]
        timed(ctx, sec, f"ours FantasyWorld conditional forward, attention {backend}", cond, f_fw, backend)
    want_offload = "offload" in ctx.opts.sections
    if want_offload and ctx.rec.time_left() > (2 if small else 45 + 60):
        ctx.attempt("offload", "block swap", lambda: _offload(ctx, model, cond, f_fw))
        ctx.shared["offload_done"] = True
    model = camera = None
    free_cuda()
    ref = build_diffusers_wan(cfg.dit, names, dev, dt, ctx.opts.seed)

    def dfwd() -> torch.Tensor:
        return diffusers_forward(ref, x, t, c, clip_fea=clip, y=y)

    r = timed(ctx, sec, "diffusers I2V forward (default attention)", dfwd, f_plain, "auto")
    if "cudnn" in backends(ctx):
        timed(ctx, sec, "diffusers I2V, SDPA forced to cudnn", dfwd, f_plain, "cudnn")
    if r is not None and ours_plain is not None:
        ctx.rec.add(
            sec, "rel. error ours plain vs diffusers (same weights)", note=f"{rel_err(ours_plain, r[1]):.2e}"
        )
    ours_fw = ctx.rec.find(sec, f"ours FantasyWorld conditional forward, attention {best}")
    if r is not None and ours_fw is not None:
        ctx.rec.add(
            sec,
            "ours FantasyWorld conditional / diffusers plain",
            note=f"{ours_fw.time_s / r[0].median_s:.3f}x (target <= 1.15x)",
        )
    ref = None
    free_cuda()


def _offload(ctx: Context, model, cond: Callable[[], torch.Tensor], flops: float) -> None:
    t0 = time.perf_counter()
    swap = enable_block_swap(model, ctx.device, prefetch=1)
    free_cuda()
    setup = time.perf_counter() - t0
    resident = torch.cuda.memory_allocated(ctx.device) / 1024**3 if ctx.device.type == "cuda" else 0.0
    timed(
        ctx,
        "offload",
        f"FantasyWorld conditional forward, block swap, attention {ctx.best_backend}",
        cond,
        flops,
        ctx.best_backend,
        warmup=1,
        reps=2,
        note=f"setup {setup:.1f}s, {swap.host_bytes / 1024**3:.1f} GiB pinned host, {resident:.1f} GiB resident",
    )
    swap.remove()


def offload(ctx: Context) -> None:
    """Stand-alone offload run (only when the i2v14 section did not already do it)."""
    if ctx.shared.get("offload_done") or "i2v14" in ctx.opts.sections:
        return
    cfg, size = fw14_config(ctx.opts.small), _size(ctx, I2V_SIZE)
    grid = token_grid(cfg.dit, size.frames, size.height, size.width)
    model = build_fantasy(cfg, ctx.device, ctx.dtype, ctx.opts.seed)
    inp = wan_inputs(cfg.dit, size, ctx.device, ctx.dtype)
    camera = model.encode_camera(plucker_input(size, ctx.device, ctx.dtype))

    def cond() -> torch.Tensor:
        return model(
            inp["x"], inp["t"], inp["context"], clip_fea=inp["clip_fea"], y=inp["y"], camera=camera
        ).velocity

    _offload(ctx, model, cond, fantasy_flops(cfg, grid).total)


# ---------------------------------------------------------------------------------------------- 7
def _compiled(
    ctx: Context, sec: str, label: str, model, fn: Callable[[], torch.Tensor], flops: float
) -> None:
    best = ctx.best_backend
    eager = timed(ctx, sec, f"{label} eager, attention {best}", fn, flops, best)

    def first() -> None:
        n = compile_blocks(model)
        with attention_backend(best):
            out, seconds = wall(fn, ctx.device)
        ctx.rec.add(sec, f"{label} first call incl. compilation of {n} blocks", seconds)
        ctx.shared[f"{label}_compiled_out"] = out

    if ctx.attempt(sec, f"{label} compile", first) is None and f"{label}_compiled_out" not in ctx.shared:
        return
    r = timed(ctx, sec, f"{label} regional torch.compile, attention {best}", fn, flops, best)
    if r is not None and eager is not None:
        ctx.rec.add(sec, f"{label} rel. error compiled vs eager", note=f"{rel_err(r[1], eager[1]):.2e}")
        ctx.rec.add(sec, f"{label} speed-up from compile", note=f"{eager[0].median_s / r[0].median_s:.3f}x")


def compile_blocks_section(ctx: Context) -> None:
    import torch._dynamo

    torch._dynamo.reset()
    sec, dev, dt, small = "compile", ctx.device, ctx.dtype, ctx.opts.small
    cfg, size = wan13_config(small), _size(ctx, T2V_SIZE)
    grid = token_grid(cfg, size.frames, size.height, size.width)
    ours = build_wan(cfg, dev, dt, ctx.opts.seed)
    inp = wan_inputs(cfg, size, dev, dt)
    _compiled(
        ctx,
        sec,
        "Wan 1.3B DiT",
        ours,
        lambda: ours(inp["x"], inp["t"], inp["context"]),
        wan_dit_flops(cfg, grid).total,
    )
    d = ctx.shared.get("diffusers13_s")
    row = ctx.rec.find(sec, f"Wan 1.3B DiT regional torch.compile, attention {ctx.best_backend}")
    if d and row:
        ctx.rec.add(
            sec,
            "speed-up compiled ours vs diffusers default",
            note=f"{d / row.time_s:.3f}x (target >= 1.15x)",
        )
    ours = None  # frees the model (closures see None)
    free_cuda()
    if ctx.rec.time_left() < (2 if small else 150):
        ctx.rec.add(
            sec,
            "FantasyWorld 1.3B compile",
            note=f"skipped by the time guard ({ctx.rec.time_left():.0f} s left)",
        )
        return
    fcfg = fw13_config(small)
    model = build_fantasy(fcfg, dev, dt, ctx.opts.seed)
    finp = wan_inputs(fcfg.dit, size, dev, dt)
    camera = model.encode_camera(plucker_input(size, dev, dt))
    _compiled(
        ctx,
        sec,
        "FantasyWorld 1.3B conditional",
        model,
        lambda: model(finp["x"], finp["t"], finp["context"], camera=camera).velocity,
        fantasy_flops(fcfg, grid).total,
    )
    model = None
    free_cuda()
