"""Issue 12 sections ``attn`` and ``profile14``: attention kernels at the models' shapes, and where a
compiled FantasyWorld-14B forward spends its GPU time.

``attn`` times, for every attention call shape of the 1.3B and 14B models, PyTorch's SDPA choice (cuDNN on
an H200), FlashAttention-3 in bf16, and FA3's FP8 kernel (with the per-head quantisation of q, k, v eager,
compiled, and the kernel alone on inputs quantised beforehand). Errors are against an fp32 SDPA of the
same bf16 inputs; the FP8 emulation (``flash3.emulated_fp8_attention``, what CPU runs use) is compared
with the kernel on the first query rows. Without an FA3 build the FA3 rows say why they are missing.

``profile14`` runs one compiled FantasyWorld-14B conditional forward (the model ``l4l14`` built, with the
attention backend the run uses) under ``torch.profiler`` and records CUDA time per kernel family
(attention, GEMM, fused element-wise from inductor, other) and the largest kernels.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from bench.harness.bench_models import I2V_SIZE, fw14_config, plucker_input, wan_inputs
from bench.harness.sections import _size, rel_err
from bench.harness.timing import measure
from bench.harness.weights import free_cuda
from fantasy_world.models.wan import flash3
from fantasy_world.models.wan.attention import attention, attention_backend

if TYPE_CHECKING:
    from bench.harness.suite import Context

# (label, batch, heads, head_dim, query tokens, key tokens): every attention call shape of the models at
# the bench sizes (1.3B 81×480×832, 14B 81×336×592).
FULL_SHAPES = [
    ("wan 1.3B self-attn", 1, 12, 128, 32760, 32760),
    ("fw 1.3B bicross", 1, 12, 96, 32760, 32865),
    ("wan 14B self-attn", 1, 40, 128, 16317, 16317),
    ("wan 14B text cross-attn", 1, 40, 128, 16317, 512),
    ("wan 14B image cross-attn", 1, 40, 128, 16317, 257),
    ("fw 14B bicross", 1, 12, 96, 16317, 16422),
    ("fw 14B global geometry", 1, 16, 64, 16422, 16422),
    ("fw 14B frame geometry", 21, 16, 64, 782, 782),
]
SMALL_SHAPES = [("toy self-attn", 1, 2, 32, 96, 96), ("toy bicross", 1, 2, 48, 96, 111)]
CHECK_ROWS = 1024  # query rows on which the FP8 emulation is compared with the kernel


def _inputs(b: int, h: int, d: int, lq: int, lk: int, device: torch.device, seed: int):
    """Inputs like the models make them: RMS-normalised q and k (unit rms per head), Gaussian v, bf16."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def rnd(n: int) -> torch.Tensor:
        return torch.randn(b, n, h, d, generator=gen, device=device)

    q, k, v = rnd(lq), rnd(lk), rnd(lk)
    # a few strong directions shared by q and k give peaked attention rows, as trained models have
    shared = torch.randn(1, 1, h, d, generator=gen, device=device)
    q = q + 2.0 * shared
    k = k + 2.0 * shared
    return tuple(t.to(torch.bfloat16) for t in (q, k, v))


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """fp32 attention of the bf16 inputs, [B, L, H, D] (SDPA's fp32 kernel, query chunks bound memory)."""
    outs = []
    kt, vt = k.float().transpose(1, 2), v.float().transpose(1, 2)
    for start in range(0, q.shape[1], 8192):
        qt = q[:, start : start + 8192].float().transpose(1, 2)
        outs.append(F.scaled_dot_product_attention(qt, kt, vt).transpose(1, 2))
    return torch.cat(outs, dim=1)


def attn(ctx: Context) -> None:
    sec = "attn"
    ctx.rec.add(sec, "FlashAttention-3 build", note=flash3.source() or "none loaded (SDPA only)")
    cuda = ctx.device.type == "cuda"
    quant = torch.compile(flash3.quantize_heads, dynamic=False) if cuda else flash3.quantize_heads
    for shape in SMALL_SHAPES if ctx.opts.small else FULL_SHAPES:
        _shape_rows(ctx, quant, *shape)
        free_cuda()


def _shape_rows(ctx: Context, quant: Callable, label: str, b: int, h: int, d: int, lq: int, lk: int) -> None:
    sec, dev = "attn", ctx.device
    q, k, v = _inputs(b, h, d, lq, lk, dev, ctx.opts.seed)
    flops = 4.0 * b * h * d * lq * lk
    ref = _reference(q, k, v)

    def row(name: str, fn: Callable[[], torch.Tensor], backend: str = "auto", err: bool = True) -> None:
        def run() -> None:
            with attention_backend(backend):
                out = fn()
                t = measure(fn, dev, warmup=2, reps=5)
            note = f"rel. err vs fp32 {rel_err(out, ref):.2e}" if err else ""
            ctx.rec.add(sec, f"{label}: {name}", t, flops if err else None, note=note)

        ctx.attempt(sec, f"{label}: {name}", run)

    row("SDPA (PyTorch's choice)", lambda: attention(q, k, v), backend="sdpa")
    fwd = flash3._fwd[0]
    if fwd is None or not flash3.can_run(q, k, v):
        ctx.rec.add(sec, f"{label}: FA3", note="FlashAttention-3 cannot run here (no build, no sm90 GPU)")
        return
    row("FA3 bf16", lambda: flash3.attention(q, k, v))
    row("FA3 FP8 incl. eager quantisation", lambda: flash3.fp8_attention(q, k, v))
    row("FP8 quantisation of q, k, v, compiled", lambda: (quant(q), quant(k), quant(v)), err=False)
    (q8, qs), (k8, ks), (v8, vs) = quant(q), quant(k), quant(v)

    def kernel() -> torch.Tensor:
        return fwd(q8, k8, v8, softmax_scale=d**-0.5, q_descale=qs, k_descale=ks, v_descale=vs)[0]

    row("FA3 FP8 kernel alone (inputs quantised before)", kernel)
    rows = min(CHECK_ROWS, lq)

    def emulation_check() -> None:
        emu = flash3.emulated_fp8_attention(q, k, v, rows=rows)
        got = kernel()[:, :rows]
        ctx.rec.add(
            sec,
            f"{label}: FP8 emulation vs FA3 FP8 kernel, first {rows} query rows",
            note=f"rel. diff {rel_err(emu, got):.2e} (kernel vs fp32 there: {rel_err(got, ref[:, :rows]):.2e})",
        )

    ctx.attempt(sec, f"{label}: FP8 emulation check", emulation_check)


# ------------------------------------------------------------------------------------------ profile14
_FAMILIES = (
    ("attention", re.compile(r"flash|fmha|sdpa|attn|attention", re.I)),
    ("GEMM", re.compile(r"gemm|nvjet|xmma|cutlass|matmul|Kernel2|scaled_mm|f8f8|wgmma", re.I)),
    ("fused element-wise (inductor)", re.compile(r"^triton_", re.I)),
)


def _family(name: str) -> str:
    for fam, pattern in _FAMILIES:
        if pattern.search(name):
            return fam
    return "other"


def profile14(ctx: Context) -> None:
    sec, dev, dt = "profile14", ctx.device, ctx.dtype
    model = ctx.shared.get("fw14_model")
    if model is None:
        ctx.rec.add(sec, "profile", note="skipped: no FantasyWorld-14B model left by l4l14")
        return
    cfg, size = fw14_config(ctx.opts.small), _size(ctx, I2V_SIZE)
    inp = wan_inputs(cfg.dit, size, dev, dt)
    camera = model.encode_camera(plucker_input(size, dev, dt))

    def cond() -> torch.Tensor:
        return model(
            inp["x"], inp["t"], inp["context"], clip_fea=inp["clip_fea"], y=inp["y"], camera=camera
        ).velocity

    profile_rows(ctx, sec, cond)


def profile_rows(ctx: Context, sec: str, fn: Callable[[], object]) -> None:
    """One warm call of ``fn`` under ``torch.profiler``: GPU time per kernel family and the top kernels."""
    from torch.profiler import ProfilerActivity, profile

    dev = ctx.device
    cuda = dev.type == "cuda"
    fn()  # warm (compiled already at this size)
    with profile(activities=[ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize(dev)
    per_kernel: dict[str, float] = {}
    for ev in prof.key_averages():
        us = getattr(ev, "device_time_total", None) if cuda else ev.self_cpu_time_total
        if us is None:
            us = getattr(ev, "cuda_time_total", 0.0)
        if us:
            per_kernel[ev.key] = per_kernel.get(ev.key, 0.0) + float(us)
    if cuda:  # keep device kernels only: CPU-side op names also carry device time totals
        names = {e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA}
        per_kernel = {k: v for k, v in per_kernel.items() if k in names}
    total = sum(per_kernel.values()) or 1.0
    families: dict[str, float] = {}
    for name, us in per_kernel.items():
        families[_family(name)] = families.get(_family(name), 0.0) + us
    for fam, us in sorted(families.items(), key=lambda kv: -kv[1]):
        ctx.rec.add(sec, f"kernel family: {fam}", us / 1e6, note=f"{100 * us / total:.1f} % of GPU time")
    for name, us in sorted(per_kernel.items(), key=lambda kv: -kv[1])[:15]:
        short = name if len(name) <= 110 else name[:107] + "..."
        ctx.rec.add(sec, f"kernel: {short}", us / 1e6, note=f"{100 * us / total:.1f} % ({_family(name)})")
    ctx.rec.add(sec, "GPU time of one forward (sum of kernels)", total / 1e6)


__all__ = ["attn", "profile14", "profile_rows"]
