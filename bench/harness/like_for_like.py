"""Issue 12 sections: like-for-like forwards, the 14B image-to-world video end to end, the tiny model.

* ``l4l13`` / ``l4l14``: ours and diffusers on the same seeded weights, both eager and both compiled the
  same way (every transformer block compiled in place with ``module.compile()``; ours through
  ``compile_blocks``, which does exactly that), Wan2.1-T2V-1.3B at 81×480×832 and Wan2.1-I2V-14B at
  81×336×592. ``l4l14`` also times the FantasyWorld-14B conditional forward eager and compiled and divides
  it by the compiled diffusers I2V forward (target ≤ 1.2×). Both models stay resident (the card holds
  37 + 33 GB), so the diffusers rows see the same card state.
* ``e2e14``: the full-size image-to-world pipeline (umT5-XXL, CLIP ViT-H, the Wan VAE and FantasyWorld-14B,
  random weights) with the defaults a user gets on CUDA: compiled blocks and encoders off the card once
  used. Three guided steps are measured; a 50-step video is extrapolated from the measured pieces
  (conditioning incl. text encoding, the guided step, the last step's geometry read-out, VAE decode)
  and compared with the official code's 183 s on an H200 (issue 12). Peak memory covers the whole call.
* ``tinyworld``: the bundled tiny model's seconds per world with its default settings, warm.
* ``fp8``: the same 14B forwards after ``fantasy_world.quant.selection.quantize_model`` (skipped, with a row
  saying why, when that module is missing).

``small=True`` runs every section on toy configs on the CPU, where compilation uses dynamo's ``eager``
backend (tracing only: the point there is that the code runs, not its speed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from bench.harness.attention_table import profile_rows
from bench.harness.bench_models import (
    I2V_SIZE,
    T2V_SIZE,
    build_fantasy,
    build_umt5,
    build_vae,
    build_wan,
    fw14_config,
    param_names,
    plucker_input,
    wan13_config,
    wan_inputs,
)
from bench.harness.diffusers_ref import active_backend, build_diffusers_wan, diffusers_forward, use_fa3
from bench.harness.flops import fantasy_flops, token_grid, wan_dit_flops
from bench.harness.sections import _size, _StepClock, rel_err, timed
from bench.harness.timing import GIB, sync, wall
from bench.harness.weights import build, free_cuda, seeded_randomize
from fantasy_world.accel.compile import compile_blocks, compiled_blocks, uncompile_blocks
from fantasy_world.models.wan import dit, flash3, linear_gelu, norm_rope

if TYPE_CHECKING:
    from bench.harness.suite import Context

OFFICIAL_50_STEP_S = 183.0  # the official code's 50-step guided 14B video on one H200 (issue 12)
TARGET_50_STEP_S = 128.0
TARGET_50_STEP_FP8_S = 95.0
TARGET_PEAK_GIB = 44.0
TARGET_TINY_S = 2.0
IN_GENERATION = "ours compiled, within a generation (step-invariant projections reused)"


def dynamo_for_bench() -> None:
    """Static graphs per size for ours and diffusers alike, and room for every size's graphs."""
    import torch._dynamo

    cfg = torch._dynamo.config
    cfg.automatic_dynamic_shapes = False
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, 64)


def fa3_here(ctx: Context) -> bool:
    """Whether ours runs FlashAttention-3 in this bench (an FA3 build loaded, a CUDA device)."""
    return ctx.device.type == "cuda" and bool(flash3.source())


def _compile_options(ctx: Context) -> dict[str, object]:
    return {} if ctx.device.type == "cuda" else {"backend": "eager"}


def compile_diffusers_blocks(model: torch.nn.Module, **options: object) -> int:
    """diffusers' WanTransformer3DModel compiled like ours: each transformer block in place."""
    for block in model.blocks:
        block.compile(**options)
    return len(model.blocks)


def _first_call(ctx: Context, sec: str, label: str, fn: Callable[[], torch.Tensor]) -> bool:
    """The call that compiles, timed end to end; False (and an error row) when compiling failed."""

    def run() -> bool:
        _, seconds = wall(fn, ctx.device)
        ctx.rec.add(sec, f"{label}: first call incl. compilation", seconds)
        return True

    return bool(ctx.attempt(sec, f"{label}: first call incl. compilation", run))


def _ratio_row(ctx: Context, sec: str, name: str, num: str, den: str, target: str) -> float | None:
    a, b = ctx.rec.find(sec, num), ctx.rec.find(sec, den)
    if a is None or b is None:
        ctx.rec.add(sec, name, note=f"missing rows ({num} / {den})")
        return None
    ratio = a.time_s / b.time_s
    ctx.rec.add(sec, name, note=f"{ratio:.3f}x ({target}); = [{num}] / [{den}]", ratio=ratio)
    return ratio


# ---------------------------------------------------------------------------------------------- l4l13
def l4l13(ctx: Context) -> None:
    dynamo_for_bench()
    sec, dev, dt, seed = "l4l13", ctx.device, ctx.dtype, ctx.opts.seed
    cfg, size = wan13_config(ctx.opts.small), _size(ctx, T2V_SIZE)
    flops = wan_dit_flops(cfg, token_grid(cfg, size.frames, size.height, size.width)).total
    inp = wan_inputs(cfg, size, dev, dt)
    ours = build_wan(cfg, dev, dt, seed)
    ref = build_diffusers_wan(cfg, param_names(ours), dev, dt, seed)
    label = "Wan2.1-T2V-1.3B forward"

    def o() -> torch.Tensor:
        return ours(inp["x"], inp["t"], inp["context"])

    def d() -> torch.Tensor:
        return diffusers_forward(ref, inp["x"], inp["t"], inp["context"])

    _four_way(ctx, sec, label, ours, o, ref, d, flops, before=_unfused_eager_row)
    ours = ref = None
    free_cuda()


def _unfused_eager_row(
    ctx: Context, sec: str, label: str, o: Callable[[], torch.Tensor], flops: float
) -> None:
    """Ours eager with the old separate float32 element-wise passes (``dit._fused`` off): the eager gain."""
    name = f"{label}, ours eager, unfused element-wise (before issue 12)"
    real = dit._fused
    dit._fused = lambda layer: False
    try:
        timed(ctx, sec, name, o, flops)
    finally:
        dit._fused = real
    _ratio_row(
        ctx,
        sec,
        f"{label}: speed-up of the fused eager element-wise steps",
        name,
        f"{label}, ours eager",
        "predicted ~1.1x",
    )


def _switched_off_row(
    ctx: Context,
    sec: str,
    name: str,
    o: Callable[[], torch.Tensor],
    flops: float,
    switch: Callable[[bool], None],
    variant: str,
    what: str,
) -> None:
    """The same compiled forward with one of our speed-ups switched off (``switch(False)``; recompiles once):
    what it brings. The GELU epilogue (``linear_gelu``), the row-major token stream (``dit``) and the q/k
    RMS norm + RoPE kernel (``norm_rope``)."""
    off = f"{name}, {variant}"
    switch(False)
    try:
        timed(ctx, sec, off, o, flops)
    finally:
        switch(True)
    _ratio_row(ctx, sec, f"{name}: speed-up of {what}", off, name, "for reference")


def _timed_in_generation(
    ctx: Context, sec: str, name: str, model: torch.nn.Module, fn: Callable[[], torch.Tensor], flops: float
):
    """``fn`` timed as a step inside a generation: in one ``step_invariants`` scope, so the warm-up call
    builds the context keys/values and camera projections and the timed calls reuse them, as steps 2-50
    of a video do (the pipeline opens that scope around its steps)."""
    with model.step_invariants():
        return timed(ctx, sec, name, fn, flops)


def _four_way(
    ctx: Context,
    sec: str,
    label: str,
    ours: torch.nn.Module,
    o: Callable[[], torch.Tensor],
    ref: torch.nn.Module,
    d: Callable[[], torch.Tensor],
    flops: float,
    compile_ours: bool = True,
    before: Callable[..., None] | None = None,
) -> None:
    """Ours and diffusers eager, then both compiled block by block; times, ratios and errors as rows."""
    names = {
        k: f"{label}, {k}" for k in ("ours eager", "diffusers eager", "ours compiled", "diffusers compiled")
    }
    r_oe = timed(ctx, sec, names["ours eager"], o, flops)
    if before is not None:
        before(ctx, sec, label, o, flops)
    r_de = timed(ctx, sec, names["diffusers eager"], d, flops, note=f"diffusers backend {active_backend()}")
    if r_oe is not None and r_de is not None:
        ctx.rec.add(
            sec, f"{label}: rel. error ours vs diffusers, eager", note=f"{rel_err(r_oe[1], r_de[1]):.2e}"
        )
    _ratio_row(
        ctx,
        sec,
        f"{label}: speed-up ours vs diffusers, eager",
        names["diffusers eager"],
        names["ours eager"],
        "target >= 1.0x",
    )
    opts = _compile_options(ctx)
    if compile_ours:
        ctx.attempt(sec, f"{label}: compile ours", lambda: compile_blocks(ours, **opts))
    if compiled_blocks(ours) and _first_call(ctx, sec, f"{label}, ours", o):
        r_oc = timed(ctx, sec, names["ours compiled"], o, flops)
        if r_oc is not None and r_oe is not None:
            ctx.rec.add(
                sec, f"{label}: rel. error ours compiled vs eager", note=f"{rel_err(r_oc[1], r_oe[1]):.2e}"
            )
        if fa3_here(ctx):  # the same compiled blocks with PyTorch's SDPA: what FA3 brings (recompiles once)
            timed(ctx, sec, f"{names['ours compiled']}, attention sdpa", o, flops, backend="sdpa")
        if ctx.device.type == "cuda":
            speed_ups = (
                (linear_gelu.set_enabled, "GELU epilogue off", "the GELU epilogue"),
                (
                    dit.set_row_major_tokens,
                    "token stream channel-major (before)",
                    "the row-major token stream",
                ),
                (norm_rope.set_enabled, "q/k norm + RoPE unfused (before)", "the q/k kernel"),
            )
            for switch, variant, what in speed_ups:
                _switched_off_row(ctx, sec, names["ours compiled"], o, flops, switch, variant, what)
    n = ctx.attempt(sec, f"{label}: compile diffusers", lambda: compile_diffusers_blocks(ref, **opts))
    if n and _first_call(ctx, sec, f"{label}, diffusers", d):
        timed(ctx, sec, names["diffusers compiled"], d, flops, note=f"diffusers backend {active_backend()}")
    _ratio_row(
        ctx,
        sec,
        f"{label}: speed-up ours vs diffusers, both compiled",
        names["diffusers compiled"],
        names["ours compiled"],
        "target >= 1.1x",
    )
    if n and fa3_here(ctx) and ctx.attempt(sec, f"{label}: diffusers FA3 backend", lambda: use_fa3(ref)):
        fa3_row = f"{names['diffusers compiled']}, diffusers' FA3 backend on the same FA3 build"
        timed(ctx, sec, fa3_row, d, flops, note=f"diffusers backend {active_backend()}")
        ctx.attempt(sec, f"{label}: diffusers default backend again", lambda: use_fa3(ref, False))
        _ratio_row(
            ctx,
            sec,
            f"{label}: speed-up ours vs diffusers, both compiled, both on FA3",
            fa3_row,
            names["ours compiled"],
            "same kernels on both sides",
        )


# ---------------------------------------------------------------------------------------------- l4l14
def l4l14(ctx: Context) -> None:
    dynamo_for_bench()
    sec, dev, dt, seed = "l4l14", ctx.device, ctx.dtype, ctx.opts.seed
    cfg, size = fw14_config(ctx.opts.small), _size(ctx, I2V_SIZE)
    grid = token_grid(cfg.dit, size.frames, size.height, size.width)
    f_plain, f_fw = wan_dit_flops(cfg.dit, grid).total, fantasy_flops(cfg, grid).total
    model = build_fantasy(cfg, dev, dt, seed)
    ref = build_diffusers_wan(cfg.dit, param_names(model.dit), dev, dt, seed)
    inp = wan_inputs(cfg.dit, size, dev, dt)
    camera = model.encode_camera(plucker_input(size, dev, dt))
    x, t, c, clip, y = inp["x"], inp["t"], inp["context"], inp["clip_fea"], inp["y"]
    label = "Wan2.1-I2V-14B forward"

    def plain() -> torch.Tensor:
        return model.dit(x, t, c, clip_fea=clip, y=y)

    def cond() -> torch.Tensor:
        return model(x, t, c, clip_fea=clip, y=y, camera=camera).velocity

    def d() -> torch.Tensor:
        return diffusers_forward(ref, x, t, c, clip_fea=clip, y=y)

    fw = "FantasyWorld-14B conditional forward"
    r_fe = timed(ctx, sec, f"{fw}, ours eager", cond, f_fw)
    # compile_blocks(model) compiles the DiT blocks too: the plain forward below runs them compiled
    _four_way(ctx, sec, label, model, plain, ref, d, f_plain, before=_unfused_eager_row)
    if compiled_blocks(model) and _first_call(ctx, sec, fw, cond):
        r_fc = timed(ctx, sec, f"{fw}, ours compiled", cond, f_fw)
        if r_fc is not None and r_fe is not None:
            ctx.rec.add(sec, f"{fw}: rel. error compiled vs eager", note=f"{rel_err(r_fc[1], r_fe[1]):.2e}")
            ctx.shared["fw14_cond_bf16"] = r_fc[1].float().cpu()
        # what a denoising step costs: steps 2-50 of a video reuse the step-invariant projections
        r_fw = _timed_in_generation(ctx, sec, f"{fw}, {IN_GENERATION}", model, cond, f_fw)
        if r_fw is not None and r_fc is not None:
            ctx.rec.add(
                sec, f"{fw}: rel. error, reused vs recomputed", note=f"{rel_err(r_fw[1], r_fc[1]):.2e}"
            )
        _timed_in_generation(ctx, sec, f"{label}, {IN_GENERATION}", model.dit, plain, f_plain)
    _ratio_row(
        ctx,
        sec,
        f"{fw} / compiled diffusers I2V forward",
        f"{fw}, ours compiled",
        f"{label}, diffusers compiled",
        "target <= 1.2x",
    )
    _ratio_row(
        ctx,
        sec,
        f"{fw} / compiled diffusers I2V forward, as a denoising step",
        f"{fw}, {IN_GENERATION}",
        f"{label}, diffusers compiled",
        "target <= 1.2x",
    )
    _ratio_row(
        ctx,
        sec,
        f"{label}: speed-up ours vs diffusers, both compiled, as a denoising step",
        f"{label}, diffusers compiled",
        f"{label}, {IN_GENERATION}",
        "target >= 1.1x",
    )
    _ratio_row(
        ctx,
        sec,
        f"{fw} / compiled ours plain I2V forward",
        f"{fw}, ours compiled",
        f"{label}, ours compiled",
        "official ~1.36x",
    )
    _ratio_row(
        ctx,
        sec,
        f"{fw} / diffusers I2V forward, both eager",
        f"{fw}, ours eager",
        f"{label}, diffusers eager",
        "for reference",
    )
    ref = None
    free_cuda()
    ctx.shared["fw14_model"] = model


# ---------------------------------------------------------------------------------------------- e2e14
def build_clip(clip_dim: int, small: bool, device: torch.device, dtype: torch.dtype, seed: int):
    """Wan's CLIP ViT-H/14 image tower at full size; a 2-layer one with 257 tokens of width ``clip_dim`` at toy size."""
    from fantasy_world.models.wan.clip_vision import ClipVisionConfig, ClipVisionEncoder

    cfg = (
        ClipVisionConfig(
            dim=clip_dim, mlp_dim=2 * clip_dim, num_heads=2, num_layers=2, out_dim=clip_dim, feature_layers=1
        )
        if small
        else None
    )
    enc = build(lambda: ClipVisionEncoder(cfg), device, dtype)
    seeded_randomize(enc, seed)
    return enc


def e2e14(ctx: Context) -> None:
    dynamo_for_bench()
    dev, dt, small, seed = ctx.device, ctx.dtype, ctx.opts.small, ctx.opts.seed
    cfg = fw14_config(small)
    model = ctx.shared.pop("fw14_model", None)
    if model is None:
        model = build_fantasy(cfg, dev, dt, seed)
    if not compiled_blocks(model):
        compile_blocks(model, **_compile_options(ctx))  # the CUDA default; warmed by the first step
    parts = (
        build_vae(small, dev, seed),
        build_umt5(cfg.dit.text_dim, cfg.dit.text_len, small, dev, seed),
        build_clip(cfg.dit.clip_dim, small, dev, dt, seed),
    )
    per_step = _video(ctx, "e2e14", model, parts)
    ctx.shared["e2e14_step_s"] = per_step
    ctx.attempt("e2e14", "VAE decode, tiled vs untiled", lambda: _decode_rows(ctx, "e2e14", parts[0]))
    if "fp8" in ctx.opts.sections:
        ctx.shared["fw14_model"] = model
        ctx.shared["e2e14_parts"] = parts
    model = parts = None
    free_cuda()


def _decode_rows(ctx: Context, sec: str, vae: torch.nn.Module) -> None:
    """The VAE decode alone, untiled and tiled, at the bench size and at 480×832: seconds and the extra
    peak memory over what was allocated before, against ``untiled_decode_bytes``' estimate."""
    dev, cuda = ctx.device, ctx.device.type == "cuda"
    p = next(vae.parameters())
    sizes = [_size(ctx, I2V_SIZE)] + ([] if ctx.opts.small else [T2V_SIZE])
    for size in sizes:
        lat = torch.randn(
            1, vae.cfg.z_dim, 1 + (size.frames - 1) // 4, size.height // 8, size.width // 8, device=dev
        ).to(p.dtype)
        estimate = vae.untiled_decode_bytes(size.height // 8, size.width // 8) / GIB
        for tiled in (False, True):
            free_cuda()
            base = torch.cuda.memory_allocated(dev) if cuda else 0
            if cuda:
                torch.cuda.reset_peak_memory_stats(dev)
            _, seconds = wall(lambda tiled=tiled, lat=lat: vae.decode(lat, tiled=tiled), dev)
            extra = (torch.cuda.max_memory_allocated(dev) - base) / GIB if cuda else 0.0
            ctx.rec.add(
                sec,
                f"VAE decode {'tiled' if tiled else 'untiled'}, {size.frames}x{size.height}x{size.width} ({p.dtype})",
                seconds,
                note=f"extra peak {extra:.2f} GiB (untiled estimate {estimate:.2f} GiB)",
            )


def _video(ctx: Context, sec: str, model: torch.nn.Module, parts: tuple, label: str = "") -> float:
    """Three measured guided steps of the full image-to-world pipeline, extrapolated to the 50-step video;
    returns the guided step's seconds. ``parts`` = (VAE, umT5, CLIP); ``label`` prefixes the video rows."""
    from fantasy_world.model_folder import GenerationDefaults, LoadedModel
    from fantasy_world.pipeline import WAN_NEGATIVE_PROMPT, FantasyWorldPipeline

    dev, dt, size = ctx.device, ctx.dtype, _size(ctx, I2V_SIZE)
    vae, text, clip = parts
    pixels = size.height * size.width
    defaults = GenerationDefaults(
        frames=size.frames,
        height=size.height,
        width=size.width,
        steps=50,
        guidance=5.0,
        negative_prompt=WAN_NEGATIVE_PROMPT,
        max_pixels_cpu=pixels,
        max_pixels_cuda=pixels,
    )
    loaded = LoadedModel(model.cfg.name, model, vae, text, clip, defaults, trained=False, tiled_decode=True)
    pipe = FantasyWorldPipeline(loaded, dev, dt)
    pipe.offload_encoders()  # what from_pretrained does on CUDA
    free_cuda()
    cuda = dev.type == "cuda"
    resident = torch.cuda.memory_allocated(dev) / GIB if cuda else 0.0
    enc_gib = (pipe._text_home.host_bytes + pipe._image_home.host_bytes) / GIB
    ctx.rec.add(
        sec,
        f"{label}resident on the card before the call (DiT, geometry, VAE)",
        note=f"{resident:.1f} GiB; encoders in pinned host memory: {enc_gib:.1f} GiB",
        resident_gib=resident,
        encoders_host_gib=enc_gib,
    )
    prompt = "a stone bridge over a river in a misty forest, cinematic"
    _, text_s = wall(lambda: pipe._encode_prompts(prompt, WAN_NEGATIVE_PROMPT), dev)
    ctx.rec.add(
        sec, f"{label}text encoding, umT5-XXL, prompt + negative prompt (layers streamed from host)", text_s
    )
    pipe._prompt_cache.clear()  # the measured run encodes again
    image = np.random.default_rng(ctx.opts.seed).integers(
        0, 256, (size.height, size.width, 3), dtype=np.uint8
    )
    steps = 3
    clock = _StepClock(dev)
    if cuda:
        sync(dev)
        torch.cuda.reset_peak_memory_stats(dev)

    def run():
        return pipe(prompt, camera="orbit", image=image, steps=steps, guidance=5.0, seed=0, on_step=clock)

    world, total = wall(run, dev)
    peak = torch.cuda.max_memory_allocated(dev) / GIB if cuda else 0.0
    tm = world.timings
    marks = clock.marks
    per_step = marks[1] - marks[0]  # step 2 (step 1 may still warm kernels)
    last = marks[2] - marks[1]  # step 3 = the last: the guided step plus the geometry read-out
    after = total - tm["conditioning"] - tm["denoise"]  # VAE decode, read-out to numpy, result
    ctx.rec.add(
        sec,
        f"{label}{steps}-step image-to-world call, measured",
        total,
        note=f"timings {', '.join(f'{k} {v:.2f}s' for k, v in tm.items())}",
    )
    ctx.rec.add(
        sec, f"{label}conditioning (text, CLIP, VAE encode of the start image, camera)", tm["conditioning"]
    )
    ctx.rec.add(
        sec,
        f"{label}first guided step (approx.: denoise time minus steps 2-3)",
        tm["denoise"] - (marks[2] - marks[0]),
        note="includes any compilation left at this size (l4l14 compiled the forward already)",
    )
    ctx.rec.add(
        sec, f"{label}guided step (conditional + negative pass, both through the full model)", per_step
    )
    ctx.rec.add(sec, f"{label}geometry read-out at the last step (extra over a guided step)", last - per_step)
    ctx.rec.add(sec, f"{label}VAE decode + result", after, note=f"tiled: {world.meta.get('vae_tiled')}")
    e2e = tm["conditioning"] + 49 * per_step + last + after
    target = TARGET_50_STEP_FP8_S if label.startswith("FP8") else TARGET_50_STEP_S
    ctx.rec.add(
        sec,
        f"{label}50-step guided 14B image-to-world video (extrapolated)",
        e2e,
        note=(
            f"conditioning + 49 x guided step + last step + decode = {e2e:.1f}s; {e2e / OFFICIAL_50_STEP_S:.2f}x the "
            f"official {OFFICIAL_50_STEP_S:.0f}s (target <= {target:.0f}s)"
        ),
        per_step_s=per_step,
    )
    ctx.rec.add(
        sec,
        f"{label}peak memory end to end, every model loaded, encoders offloaded",
        note=f"{peak:.1f} GiB (target <= {TARGET_PEAK_GIB:.0f} GiB); keeping the encoders resident adds ~{enc_gib:.1f} GiB",
        peak_gib_e2e=peak,
    )
    return per_step


# ---------------------------------------------------------------------------------------------- tiny
def tinyworld(ctx: Context) -> None:
    from fantasy_world.pipeline import FantasyWorldPipeline

    sec, dev = "tinyworld", ctx.device
    pipe = FantasyWorldPipeline.from_pretrained("tiny", device=dev)  # the defaults a user gets
    kw = {"frames": 5, "height": 64, "width": 96, "steps": 2} if ctx.opts.small else {}
    d = pipe.defaults
    desc = f"{kw.get('frames', d.frames)}x{kw.get('height', d.height)}x{kw.get('width', d.width)}, {kw.get('steps', d.steps)} steps"
    prompt = "a red ball beside a tall blue box"

    def one(seed: int) -> float:
        _, seconds = wall(lambda: pipe(prompt, camera="orbit", seed=seed, **kw), dev)
        return seconds

    first = one(0)
    ctx.rec.add(sec, f"tiny model, first world (compiled: {pipe.compiled}; compiles once), {desc}", first)
    warm = sorted(one(s) for s in (1, 2, 3))
    ctx.rec.add(
        sec,
        f"tiny model seconds per world, warm, default settings ({desc})",
        warm[1],
        note=f"median of 3; compiled: {pipe.compiled}; target <= {TARGET_TINY_S:.0f}s",
        times_s=warm,
    )
    if pipe.compiled:
        pipe.disable_compile()
        eager = sorted(one(s) for s in (4, 5))
        ctx.rec.add(sec, f"tiny model seconds per world, warm, eager ({desc})", eager[0], note="best of 2")
    pipe = None
    free_cuda()


# ---------------------------------------------------------------------------------------------- fp8
def fp8(ctx: Context) -> None:
    sec = "fp8"
    try:
        from fantasy_world.quant.selection import quantize_model, set_fp8_attention
    except ImportError as exc:
        ctx.rec.add(
            sec,
            "FP8 forwards",
            note=f"skipped: fantasy_world.quant.selection.quantize_model not importable ({exc})",
        )
        return
    dynamo_for_bench()
    dev, dt, seed = ctx.device, ctx.dtype, ctx.opts.seed
    cfg, size = fw14_config(ctx.opts.small), _size(ctx, I2V_SIZE)
    grid = token_grid(cfg.dit, size.frames, size.height, size.width)
    model = ctx.shared.pop("fw14_model", None) or build_fantasy(cfg, dev, dt, seed)
    inp = wan_inputs(cfg.dit, size, dev, dt)
    camera = model.encode_camera(plucker_input(size, dev, dt))
    x, t, c, clip, y = inp["x"], inp["t"], inp["context"], inp["clip_fea"], inp["y"]

    def plain() -> torch.Tensor:
        return model.dit(x, t, c, clip_fea=clip, y=y)

    def cond() -> torch.Tensor:
        return model(x, t, c, clip_fea=clip, y=y, camera=camera).velocity

    f_fw, f_plain = fantasy_flops(cfg, grid).total, wan_dit_flops(cfg.dit, grid).total
    bf16_fw = ("l4l14", "FantasyWorld-14B conditional forward, ours compiled")
    bf16_plain = ("l4l14", "Wan2.1-I2V-14B forward, ours compiled")
    if ctx.rec.find(*bf16_fw) is None:  # a call without l4l14: the bf16 references are timed here, same call
        bf16_fw, bf16_plain = (
            (sec, f"{bf16_fw[1]} (bf16 reference)"),
            (sec, f"{bf16_plain[1]} (bf16 reference)"),
        )
        if not compiled_blocks(model):
            compile_blocks(model, **_compile_options(ctx))
        _first_call(ctx, sec, "bf16 FantasyWorld-14B conditional forward", cond)
        r = timed(ctx, sec, bf16_fw[1], cond, f_fw)
        if r is not None:
            ctx.shared["fw14_cond_bf16"] = r[1].float().cpu()
        timed(ctx, sec, bf16_plain[1], plain, f_plain)
    uncompile_blocks(model)
    quantize_model(model)
    ctx.rec.add(
        sec,
        "quantized with fantasy_world.quant.selection.quantize_model(model)",
        note="defaults: FP8 linears, bf16 attention",
    )
    compile_blocks(model, **_compile_options(ctx))
    _first_call(ctx, sec, "FP8 FantasyWorld-14B conditional forward", cond)
    variants = [("FP8", False)] + ([("FP8 + FP8 attention (opt-in)", True)] if fa3_here(ctx) else [])
    for name, attn in variants:
        set_fp8_attention(model, attn)  # a switch of the compiled code: recompiles once
        fw = f"FantasyWorld-14B conditional forward, {name}, compiled"
        wan = f"Wan2.1-I2V-14B forward, {name}, compiled"
        r = timed(ctx, sec, fw, cond, f_fw)
        bf16 = ctx.shared.get("fw14_cond_bf16")
        if r is not None and bf16 is not None:
            ctx.rec.add(
                sec, f"rel. error {name} vs bf16, conditional forward", note=f"{rel_err(r[1], bf16):.2e}"
            )
        timed(ctx, sec, wan, plain, f_plain)
        for row, ref in ((fw, bf16_fw), (wan, bf16_plain)):
            a, b = ctx.rec.find(sec, row), ctx.rec.find(*ref)
            if a is not None and b is not None:
                ctx.rec.add(
                    sec,
                    f"speed-up vs bf16 compiled: {row}",
                    note=f"{b.time_s / a.time_s:.3f}x (target >= 1.35x)",
                )
    set_fp8_attention(model, False)  # where the default FP8 forward spends its GPU time
    ctx.attempt(sec, "FP8 kernel profile", lambda: profile_rows(ctx, "fp8 profile", cond))
    parts = ctx.shared.pop("e2e14_parts", None)
    if parts is not None:  # the FP8 videos measured like the bf16 one (same VAE and encoders)
        for name, attn in variants:
            set_fp8_attention(model, attn)
            ctx.attempt(
                sec, f"{name} video", lambda name=name: _video(ctx, sec, model, parts, label=f"{name} ")
            )
    parts = None
    model = None
    free_cuda()


__all__ = ["compile_diffusers_blocks", "e2e14", "fp8", "l4l13", "l4l14", "tinyworld"]
