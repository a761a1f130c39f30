"""Small GPU measurements of the parts of a denoising step that issue 12's remaining gap is made of.

Why: each candidate saving (the feed-forward's GELU in the GEMM epilogue, step-invariant projections, the
geometry read-out to numpy, one GEMM for q/k/v, key smoothing for FP8 attention, inductor options) is
measured alone first, at the real 14B shapes, before it is worth building into the model; the per-block
kernel profile (``--only-profile``) shows where a compiled block spends its time. Prints one JSON object
per row and writes them to ``--out``/step_parts.json.

    python bench/step_parts.py --out OUT [--only GROUP[,GROUP...]] [--wheels .train_state/whl]

GROUP: ffn invariants fusion profile options gaps qk fp8ffn fp8attn geometry readout idle (see --help).
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


def kernel_times(fn) -> dict[str, float]:
    """CUDA time per kernel name (ms) of one call of ``fn`` (called once before, to warm up)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    times: dict[str, float] = {}
    for e in prof.events():
        if e.device_type.name == "CUDA":
            times[e.name] = times.get(e.name, 0.0) + e.device_time_total / 1e3
    return times


def kernel_names(fn) -> list[str]:
    return sorted(kernel_times(fn))


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


def projection_rows(tokens: int, dim: int, label: str) -> None:
    """q, k, v of self-attention as three GEMMs against one GEMM on the concatenated weights, bf16 and FP8."""
    from fantasy_world.quant.fp8_linear import enable_fp8_gemm, fp8_linear, quantize_weight

    gen = torch.Generator(device="cuda").manual_seed(3)
    x = torch.randn(tokens, dim, device="cuda", generator=gen).bfloat16()
    ws = [(torch.randn(dim, dim, device="cuda", generator=gen) / dim**0.5).bfloat16() for _ in range(3)]
    bs = [(torch.randn(dim, device="cuda", generator=gen) * 0.1).bfloat16() for _ in range(3)]
    w_cat, b_cat = torch.cat(ws), torch.cat(bs)
    flops = 2.0 * tokens * dim * dim * 3

    def split() -> list[torch.Tensor]:
        return [F.linear(x, w, b) for w, b in zip(ws, bs, strict=True)]

    def fused() -> tuple[torch.Tensor, ...]:
        return F.linear(x, w_cat, b_cat).split(dim, dim=-1)

    for name, fn in (("three GEMMs", split), ("one GEMM, concatenated weights", fused)):
        s = cuda_time(fn)
        row(f"{label} q/k/v projections bf16: {name}", s, tflops=round(flops / s / 1e12, 1))
    row(
        f"{label}: rel. diff fused vs three GEMMs, bf16",
        err=rel(torch.cat(fused(), -1), torch.cat(split(), -1)),
    )
    if not enable_fp8_gemm():
        row(f"{label}: FP8 rows skipped", note="no FP8 GEMM on this GPU")
        return
    q8 = [quantize_weight(w) for w in ws]
    qw_cat, qs_cat = torch.cat([q for q, _ in q8]), torch.cat([s for _, s in q8])

    @torch.compile(dynamic=False)
    def split8(x: torch.Tensor) -> list[torch.Tensor]:
        xs = F.layer_norm(x.float(), (dim,)).bfloat16()  # the op the quantisation is fused into in the model
        return [fp8_linear(xs, q, s, b) for (q, s), b in zip(q8, bs, strict=True)]

    @torch.compile(dynamic=False)
    def fused8(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        xs = F.layer_norm(x.float(), (dim,)).bfloat16()
        return fp8_linear(xs, qw_cat, qs_cat, b_cat).split(dim, dim=-1)

    for name, fn in (("three GEMMs", split8), ("one GEMM, concatenated weights", fused8)):
        s = cuda_time(lambda fn=fn: fn(x))
        row(
            f"{label} layer norm + q/k/v projections FP8, compiled: {name}",
            s,
            tflops=round(flops / s / 1e12, 1),
        )
    row(
        f"{label}: rel. diff fused vs three GEMMs, FP8",
        err=rel(torch.cat(fused8(x), -1), torch.cat(split8(x), -1)),
    )


def _block_gemms(tokens: int, dim: int, hidden: int, seed: int):
    """(label, input, weight, bias, FLOPs) for each GEMM shape of a 14B block (bf16, random values)."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    for n, k, what in ((dim, dim, "q/k/v/o"), (hidden, dim, "FFN in"), (dim, hidden, "FFN out")):
        x = torch.randn(tokens, k, device="cuda", generator=gen).bfloat16()
        w = (torch.randn(n, k, device="cuda", generator=gen) / k**0.5).bfloat16()
        b = (torch.randn(n, device="cuda", generator=gen) * 0.1).bfloat16()
        yield f"14B GEMM {what} {tokens}x{k}->{n}", x, w, b, 2.0 * tokens * n * k


def block_gemm_rows(tokens: int = 16317, dim: int = 5120, hidden: int = 13824) -> None:
    """Each GEMM shape of a 14B block alone (bias, bf16): what cuBLAS reaches without the rest of the model."""
    for label, x, w, b, flops in _block_gemms(tokens, dim, hidden, 4):
        s = cuda_time(lambda x=x, w=w, b=b: F.linear(x, w, b))
        row(label, s, tflops=round(flops / s / 1e12, 1))


def fp8_attention_rows(tokens: int = 16317, heads: int = 40, head_dim: int = 128) -> None:
    """FA3's FP8 attention at the 14B self-attention shape with and without key smoothing: time and error."""
    from bench.harness.attention_table import _inputs, _reference
    from fantasy_world.models.wan import flash3

    if not flash3.source():
        row("FP8 attention rows skipped", note="no FlashAttention-3 build loaded")
        return
    q, k, v = _inputs(1, heads, head_dim, tokens, tokens, torch.device("cuda"), 0)
    ref = _reference(q, k, v)
    flops = 4.0 * heads * head_dim * tokens * tokens

    def unsmoothed(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        (q8, qs), (k8, ks), (v8, vs) = (flash3.quantize_heads(t) for t in (q, k, v))
        return flash3._fwd[0](
            q8, k8, v8, softmax_scale=head_dim**-0.5, q_descale=qs, k_descale=ks, v_descale=vs
        )[0]

    variants = (
        ("FA3 bf16", flash3.attention),
        ("FA3 FP8, keys not smoothed (before)", torch.compile(unsmoothed, dynamic=False)),
        ("FA3 FP8, keys smoothed", torch.compile(flash3.fp8_attention, dynamic=False)),
    )
    for name, fn in variants:
        out = fn(q, k, v)
        s = cuda_time(lambda fn=fn: fn(q, k, v), reps=10)
        row(
            f"14B self-attention {name} (quantisation compiled)",
            s,
            tflops=round(flops / s / 1e12, 1),
            err=rel(out, ref),
        )


def _cut_i2v14b(layers: int):
    """An I2V-14B DiT cut to ``layers`` blocks (seeded bf16 weights) and its no-grad forward at 336x592x81."""
    import dataclasses

    from bench.harness.bench_models import I2V_SIZE, build_wan, wan_inputs
    from fantasy_world.models.wan.config import wan_dit_config

    cfg = dataclasses.replace(wan_dit_config("wan2.1-i2v-14b"), num_layers=layers)
    dev = torch.device("cuda")
    model = build_wan(cfg, dev, torch.bfloat16, 0).eval()
    inputs = wan_inputs(cfg, I2V_SIZE, dev, torch.bfloat16)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return model(**inputs)

    return model, forward


def _precision_modes(model):
    """Switch ``model`` to bf16 (as built), then FP8, then FP8 + FP8 attention, compiling its blocks each time;
    yields each mode's name."""
    from fantasy_world.accel.compile import compile_blocks
    from fantasy_world.quant.selection import quantize_model, set_fp8_attention

    for mode in ("bf16", "FP8", "FP8 + FP8 attention"):
        if mode == "FP8":
            quantize_model(model)
        if mode == "FP8 + FP8 attention":
            set_fp8_attention(model, True)
        compile_blocks(model)
        yield mode


def _kernel_rows(mode: str, fn, per: str, divisor: int, top: int) -> None:
    """One call of ``fn`` profiled: total kernel time and the ``top`` kernels, each divided by ``divisor``."""
    times = kernel_times(fn)
    row(f"{mode}: kernel time {per} (ms)", sum(times.values()) / divisor)
    for name, ms in sorted(times.items(), key=lambda kv: -kv[1])[:top]:
        row(f"{mode}: kernel", ms / divisor, kernel=name[:160])


def block_profile_rows(layers: int = 4) -> None:
    """Kernels of a compiled I2V-14B forward cut to ``layers`` blocks, per block: bf16, FP8, FP8 + FP8 attention.

    Why: the FP8 forward spends ~0.08 s more than bf16 outside the GEMMs and attention (issue 12's profile);
    this lists each kernel's time per block so that the extra passes can be named.
    """
    model, forward = _cut_i2v14b(layers)
    for mode in _precision_modes(model):
        for _ in range(2):
            forward()
        s = cuda_time(forward, reps=5, warmup=1)
        row(f"I2V-14B cut to {layers} blocks, compiled, {mode}: forward", s)
        _kernel_rows(mode, forward, "per block", layers, 24)


def _cut_fw14_config(irg: int):
    """FantasyWorld-14B (I2V) with one preconditioning block and ``irg`` >= 4 IRG blocks, camera adapters on all."""
    import dataclasses

    from bench.harness.bench_models import fw14_config

    cfg = fw14_config(False)
    dit = dataclasses.replace(cfg.dit, num_layers=irg + 1)
    layers = tuple(range(irg - 1, irg - 5, -1))  # the heads read the last four IRG blocks
    heads = {
        name: dataclasses.replace(getattr(cfg, name), intermediate_layer_idx=layers)
        for name in ("depth_head", "point_head")
    }
    return dataclasses.replace(cfg, dit=dit, n_pcb=1, camera_adapter_blocks=(0, irg), **heads)


def geometry_profile_rows(irg: int = 4) -> None:
    """Where the geometry branch's time goes: FantasyWorld-14B cut to ``irg`` IRG blocks, compiled, its
    conditional forward against its own plain DiT forward (the difference per IRG block is the geometry
    branch), and the conditional forward's kernels, in bf16, FP8 and FP8 + FP8 attention.

    Why: FantasyWorld minus plain Wan is 0.265 s in bf16 and 0.258 s in FP8 (issue 12, fifth session): the
    branch (135 TFLOP: 48.5 in linears, 87 in attention) does not get faster in FP8, and the FantasyWorld FP8
    forward misses 1.35x by that much."""
    from bench.harness.bench_models import I2V_SIZE, build_fantasy, plucker_input, wan_inputs

    cfg = _cut_fw14_config(irg)
    dev, dt = torch.device("cuda"), torch.bfloat16
    model = build_fantasy(cfg, dev, dt, 0).eval()
    inp = wan_inputs(cfg.dit, I2V_SIZE, dev, dt)
    x, t, c, clip, y = inp["x"], inp["t"], inp["context"], inp["clip_fea"], inp["y"]
    with torch.no_grad():
        camera = model.encode_camera(plucker_input(I2V_SIZE, dev, dt))

    def cond() -> torch.Tensor:
        with torch.no_grad():
            return model(x, t, c, clip_fea=clip, y=y, camera=camera).velocity

    def plain() -> torch.Tensor:
        with torch.no_grad():
            return model.dit(x, t, c, clip_fea=clip, y=y)

    for mode in _precision_modes(model):
        for fn in (cond, cond, plain, plain):
            fn()
        s_fw, s_plain = cuda_time(cond, reps=5, warmup=1), cuda_time(plain, reps=5, warmup=1)
        row(
            f"FantasyWorld-14B cut to {irg} IRG blocks, compiled, {mode}: conditional forward",
            s_fw,
            plain_dit_s=s_plain,
            geometry_ms_per_irg_block=round((s_fw - s_plain) / irg * 1e3, 2),
        )
        _kernel_rows(mode, cond, "of the conditional forward", 1, 30)


def idle_rows(layers: int = 40) -> None:
    """The compiled I2V-14B forward (all 40 blocks): its time against the kernels' busy time, the wait from
    the call to the first kernel, and the gaps between kernels grouped by the kernels around them.

    Why: the cut 4-block forward has ~1 ms more wall time than kernel time, and the 40-block forward is
    ~10 ms slower than 40 cut blocks predict; the 14B >= 1.1x target needs 17 ms. If that time is idle GPU
    (host launches, syncs), it is recoverable without faster kernels. H200, sixth session: there is none,
    the kernels are busy for the whole span (``bench/results/issue12_h200_2026-12-03_s6_call1_*``)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from fantasy_world.accel.compile import compile_blocks

    model, forward = _cut_i2v14b(layers)
    compile_blocks(model)
    for _ in range(2):
        forward()
    s = cuda_time(forward, reps=3, warmup=1)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    forward()
    torch.cuda.synchronize()
    lone = time.perf_counter() - t0
    row(f"I2V-14B {layers} blocks compiled, bf16: forward", s, lone_wall_s=round(lone, 5))
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        with record_function("fw_forward_call"):
            forward()
        torch.cuda.synchronize()
    events = prof.events()
    call = [e for e in events if e.name == "fw_forward_call" and e.device_type.name == "CPU"]
    kernels = sorted(
        (e.time_range.start, e.time_range.end, e.name) for e in events if e.device_type.name == "CUDA"
    )
    busy, end, gaps = 0.0, kernels[0][0], []
    for (start, stop, name), prev in zip(kernels, [None, *kernels[:-1]], strict=True):
        if prev is not None and start > end:
            gaps.append((start - end, prev[2][:60], name[:60]))
        busy += max(0.0, stop - max(start, end))
        end = max(end, stop)
    span = end - kernels[0][0]
    row(
        "profiled forward: kernels' busy time vs span (ms)",
        busy / 1e3,
        span_ms=round(span / 1e3, 3),
        idle_ms=round((span - busy) / 1e3, 3),
        call_to_first_kernel_ms=round((kernels[0][0] - call[0].time_range.start) / 1e3, 3) if call else None,
        kernels=len(kernels),
    )
    by_pair: dict[tuple[str, str], list[float]] = {}
    for gap, a, b in gaps:
        by_pair.setdefault((a, b), []).append(gap)
    for (a, b), g in sorted(by_pair.items(), key=lambda kv: -sum(kv[1]))[:15]:
        row(
            "gap between kernels (ms, total)",
            sum(g) / 1e3,
            count=len(g),
            max_us=round(max(g), 1),
            after=a,
            before=b,
        )


def cross_attention_rows(tokens: int = 16317, heads: int = 40, head_dim: int = 128) -> None:
    """The I2V cross-attention (512 text + 257 image keys, two softmaxes summed) as two FA3 calls, as one FA3
    call over a batch of two (the query shared by a zero batch stride, the image keys padded and cut by
    ``seqused_k``), and through cuDNN. Why: the two short calls run at 290-490 TFLOP/s, ~26 ms per forward."""
    from fantasy_world.models.wan import flash3

    fwd = flash3._fwd[0]
    if fwd is None:
        row("cross-attention rows skipped", note="no FlashAttention-3 build loaded")
        return
    gen = torch.Generator(device="cuda").manual_seed(6)

    def rnd(n: int) -> torch.Tensor:
        return torch.randn(1, n, heads, head_dim, device="cuda", generator=gen).bfloat16()

    q, kt, vt, ki, vi = rnd(tokens), rnd(512), rnd(512), rnd(257), rnd(257)
    kb = torch.zeros(2, 512, heads, head_dim, device="cuda", dtype=torch.bfloat16)
    vb = torch.zeros_like(kb)
    kb[0], vb[0], kb[1, :257], vb[1, :257] = kt[0], vt[0], ki[0], vi[0]
    used = torch.tensor([512, 257], device="cuda", dtype=torch.int32)
    scale = head_dim**-0.5

    def two_calls() -> torch.Tensor:
        return flash3.attention(q, kt, vt) + flash3.attention(q, ki, vi)

    def one_call() -> torch.Tensor:
        out = fwd(q.expand(2, -1, -1, -1), kb, vb, seqused_k=used, softmax_scale=scale, causal=False)[0]
        return out[0] + out[1]

    def one_call_copied() -> torch.Tensor:
        out = fwd(q.expand(2, -1, -1, -1).contiguous(), kb, vb, seqused_k=used, softmax_scale=scale)[0]
        return out[0] + out[1]

    def cudnn() -> torch.Tensor:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            qt = q.transpose(1, 2)
            a = F.scaled_dot_product_attention(qt, kt.transpose(1, 2), vt.transpose(1, 2))
            b = F.scaled_dot_product_attention(qt, ki.transpose(1, 2), vi.transpose(1, 2))
            return (a + b).transpose(1, 2)

    flops = 4.0 * heads * head_dim * tokens * (512 + 257)
    want = two_calls()
    for name, fn in (
        ("two FA3 calls (now)", two_calls),
        ("one FA3 call, batch of two", one_call),
        ("one FA3 call, batch of two, query copied", one_call_copied),
        ("cuDNN", cudnn),
    ):
        try:
            got = fn()
            s = cuda_time(fn)
            row(
                f"14B text + image cross-attention: {name}",
                s,
                tflops=round(flops / s / 1e12, 1),
                err=rel(got, want),
            )
        except Exception as exc:  # noqa: BLE001 - one variant failing must not lose the others
            row(f"14B text + image cross-attention: {name}", note=f"{type(exc).__name__}: {exc}")


def _rope_half(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Wan's RoPE for heads whose channels are stored (even ones, odd ones) instead of interleaved."""
    b, s, h, d = x.shape
    cs = torch.view_as_real(freqs).view(1, s, 1, d // 2, 2)
    cos, sin = cs[..., 0], cs[..., 1]
    xf = x.float()
    x0, x1 = xf[..., : d // 2], xf[..., d // 2 :]
    return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).to(x.dtype)


def qk_rope_rows(tokens: int = 16317, heads: int = 40, head_dim: int = 128) -> None:
    """The compiled q/k RMS norm + RoPE of a 14B self-attention (0.63 ms per block in the profile, ~1 TB/s):
    Wan's interleaved channel pairs against the same maths with each head's channels stored as (evens, odds),
    which a permutation of the q/k weight rows would give; alone and feeding FA3."""
    from fantasy_world.models.wan import flash3, norm_rope
    from fantasy_world.models.wan.rope import apply_rope, wan_rope_freqs

    dim = heads * head_dim
    gen = torch.Generator(device="cuda").manual_seed(8)
    ql, kl, vl = (torch.randn(1, tokens, dim, device="cuda", generator=gen).bfloat16() for _ in range(3))
    wq, wk = ((1 + 0.1 * torch.randn(dim, device="cuda", generator=gen)).bfloat16() for _ in range(2))
    freqs = wan_rope_freqs(head_dim, (21, 21, 37), "cuda")
    perm = torch.arange(dim, device="cuda").view(heads, head_dim // 2, 2).transpose(1, 2).reshape(dim)
    qh, kh, wqh, wkh = ql[..., perm], kl[..., perm], wq[perm], wk[perm]
    v = vl.view(1, tokens, heads, head_dim)

    def heads_of(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (dim,), w, 1e-6).view(1, tokens, heads, head_dim)

    def interleaved(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return apply_rope(heads_of(q, wq), freqs), apply_rope(heads_of(k, wk), freqs)

    def half(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _rope_half(heads_of(q, wqh), freqs), _rope_half(heads_of(k, wkh), freqs)

    def norm_only(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return heads_of(q, wq), heads_of(k, wk)

    fr = torch.view_as_real(freqs)

    def kernel(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        op = norm_rope.rms_norm_rope
        return op(q, wq, fr, 1e-6, heads), op(k, wk, fr, 1e-6, heads)

    moved = 4.0 * tokens * dim * 2
    want = interleaved(ql, kl)[0]
    for name, fn, args in (
        ("interleaved pairs (Wan, now)", interleaved, (ql, kl)),
        ("(evens, odds) per head", half, (qh, kh)),
        ("RMS norm only, no RoPE (floor)", norm_only, (ql, kl)),
        ("Triton kernel (norm_rope.py)", kernel, (ql, kl)),
    ):
        comp = torch.compile(fn, dynamic=False)
        got = comp(*args)[0]
        if fn is half:
            got = got.flatten(2)[..., torch.argsort(perm)].view_as(got)
        s = cuda_time(lambda comp=comp, args=args: comp(*args))
        row(
            f"14B q/k RMS norm + RoPE, compiled: {name}",
            s,
            tb_per_s=round(moved / s / 1e12, 2),
            err=rel(got, want),
        )
        if flash3.source():

            def attend(q: torch.Tensor, k: torch.Tensor, fn=fn) -> torch.Tensor:
                qr, kr = fn(q, k)
                return flash3.attention(qr, kr, v)

            comp = torch.compile(attend, dynamic=False)
            comp(*args)
            row(
                f"14B q/k RMS norm + RoPE + FA3, compiled: {name}",
                cuda_time(lambda comp=comp, args=args: comp(*args)),
            )
    chosen = norm_rope.NUM_WARPS
    try:
        for warps in (4, 8, 16):
            norm_rope.NUM_WARPS = warps
            s = cuda_time(lambda: kernel(ql, kl))
            row(f"14B q/k Triton kernel, {warps} warps", s, tb_per_s=round(moved / s / 1e12, 2))
    finally:
        norm_rope.NUM_WARPS = chosen


def _switched_rows(forward, switch, what: str, label: str, base: float | None = None) -> None:
    """``forward`` timed with ``switch(True)`` and ``switch(False)`` (each recompiles), then switched on again:
    one row each (with the speed-up over ``base``, the bf16 forward, when given) and their relative difference."""
    outs = {}
    try:
        for on in (True, False):
            switch(on)
            for _ in range(2):
                outs[on] = forward()
            s = cuda_time(forward, reps=10, warmup=1)
            extra = {} if base is None else {"speed_up_vs_bf16": round(base / s, 3)}
            row(f"{label}, {what} {'on' if on else 'off'}: forward", s, **extra)
    finally:
        switch(True)
    row(f"{label}: rel. diff {what} on vs off", err=rel(outs[True], outs[False]))


def _cut_bf16_base(layers: int):
    """The cut I2V-14B model compiled, its forward, and the bf16 forward's time (a row)."""
    from fantasy_world.accel.compile import compile_blocks

    model, forward = _cut_i2v14b(layers)
    compile_blocks(model)
    forward()
    base = cuda_time(forward, reps=10, warmup=1)
    row(f"I2V-14B cut to {layers} blocks, compiled, bf16: forward", base)
    return model, forward, base


def qk_block_rows(layers: int = 4) -> None:
    """The compiled I2V-14B forward cut to ``layers`` blocks with the q/k kernel and without it (recompiles):
    the kernel's saving inside the model, and how far the two forwards are apart."""
    from fantasy_world.models.wan import norm_rope

    _, forward, base = _cut_bf16_base(layers)
    _switched_rows(forward, norm_rope.set_enabled, "q/k kernel", f"I2V-14B cut to {layers} blocks, compiled")


def fp8_ffn_rows(tokens: int = 16317, hidden: int = 13824) -> None:
    """The FP8 feed-forward's tanh-GELU + row quantisation of the 14B hidden activation: inductor's fused
    kernel (compiled torch expressions, 0.82 ms per block in the profile) against the Triton kernel
    (``quant/fp8_gelu.py``): time, scales and e4m3 values compared, and the kernel's warps."""
    from fantasy_world.quant import fp8_gelu

    gen = torch.Generator(device="cuda").manual_seed(9)
    x = (torch.randn(tokens, hidden, device="cuda", generator=gen) * 2).bfloat16()
    moved = tokens * hidden * 3.0  # bf16 in, e4m3 out
    compiled = torch.compile(fp8_gelu.reference, dynamic=False)
    want_q, want_s = compiled(x)
    got_q, got_s = fp8_gelu.gelu_tanh_quantize_rows(x)
    for name, fn in (
        ("inductor, compiled expressions (now)", compiled),
        ("Triton kernel", fp8_gelu.gelu_tanh_quantize_rows),
    ):
        s = cuda_time(lambda fn=fn: fn(x))
        row(f"14B FP8 GELU + e4m3 rows, {name}", s, tb_per_s=round(moved / s / 1e12, 2))
    eager_q, eager_s = fp8_gelu.reference(x)
    for name, (q, sc) in (("Triton kernel", (got_q, got_s)), ("eager torch", (eager_q, eager_s))):
        row(
            f"14B FP8 GELU + e4m3 rows: {name} vs inductor",
            err=rel(q.float() * sc, want_q.float() * want_s),
            scale_err=rel(sc, want_s),
            values_differing=float((q.float() != want_q.float()).float().mean()),
        )
    chosen = fp8_gelu._warps
    try:
        for warps in (8, 16, 32):
            fp8_gelu._warps = lambda n, w=warps: w
            s = cuda_time(lambda: fp8_gelu.gelu_tanh_quantize_rows(x))
            row(
                f"14B FP8 GELU + e4m3 rows, Triton kernel, {warps} warps",
                s,
                tb_per_s=round(moved / s / 1e12, 2),
            )
    finally:
        fp8_gelu._warps = chosen


def fp8_block_rows(layers: int = 4) -> None:
    """The compiled I2V-14B forward cut to ``layers`` blocks: bf16, FP8, FP8 + FP8 attention, the FP8 ones with
    the GELU + quantisation kernel on and off (recompiles): its saving in the model, and the FP8 ratios."""
    from fantasy_world.quant import fp8_gelu
    from fantasy_world.quant.selection import quantize_model, set_fp8_attention

    model, forward, base = _cut_bf16_base(layers)
    quantize_model(model)
    for attn in (False, True):
        set_fp8_attention(model, attn)
        label = f"I2V-14B cut to {layers} blocks, compiled, {'FP8 + FP8 attention' if attn else 'FP8'}"
        _switched_rows(forward, fp8_gelu.set_enabled, "GELU kernel", label, base)


def fp8_heads_rows(tokens: int = 16317, heads: int = 40, head_dim: int = 128) -> None:
    """FP8 attention's input quantisation at the 14B self-attention shape (q, smoothed k, v to e4m3 with one
    scale per head): compiled torch expressions against the two Triton passes (``fp8_heads.py``); times,
    and whether values and scales agree."""
    from fantasy_world.models.wan import flash3, fp8_heads

    gen = torch.Generator(device="cuda").manual_seed(10)
    q, k, v = (
        torch.randn(1, tokens, heads, head_dim, device="cuda", generator=gen).bfloat16() for _ in range(3)
    )
    k = (k + 0.5).bfloat16()
    outs = {}
    try:
        for on in (False, True):
            fp8_heads.set_enabled(on)
            fn = torch.compile(flash3._quantized_inputs, dynamic=False)
            outs[on] = fn(q, k, v)
            name = "two Triton passes" if on else "inductor, compiled expressions (before)"
            row(
                f"14B FP8 attention inputs (q, k smoothed, v) to e4m3 per head: {name}",
                cuda_time(lambda fn=fn: fn(q, k, v)),
            )
            torch._dynamo.reset()
    finally:
        fp8_heads.set_enabled(True)
    for t, (a, b) in zip("qkv", zip(outs[True], outs[False])):
        row(
            f"14B FP8 attention inputs, {t}: kernels vs inductor",
            values_differing=float((a[0].view(torch.uint8) != b[0].view(torch.uint8)).float().mean()),
            scale_err=rel(a[1], b[1]),
        )


def fp8_attention_block_rows(layers: int = 4) -> None:
    """The compiled I2V-14B forward cut to ``layers`` blocks in FP8 + FP8 attention, the input quantisation
    kernels on and off (recompiles), against the bf16 forward."""
    from fantasy_world.models.wan import fp8_heads
    from fantasy_world.quant.selection import quantize_model, set_fp8_attention

    model, forward, base = _cut_bf16_base(layers)
    quantize_model(model)
    set_fp8_attention(model, True)
    label = f"I2V-14B cut to {layers} blocks, compiled, FP8 + FP8 attention"
    _switched_rows(forward, fp8_heads.set_enabled, "input kernels", label, base)


def blas_library_rows(tokens: int = 16317, dim: int = 5120, hidden: int = 13824) -> None:
    """Each 14B block GEMM (bias, bf16) under cuBLAS and under cuBLASLt: the FFN output GEMM runs at 707
    TFLOP/s where the square ones reach 798, and the two libraries' heuristics may pick other kernels."""
    before = torch.backends.cuda.preferred_blas_library()
    try:
        for label, x, w, b, flops in _block_gemms(tokens, dim, hidden, 7):
            for lib in ("cublas", "cublaslt"):
                torch.backends.cuda.preferred_blas_library(lib)
                s = cuda_time(lambda x=x, w=w, b=b: F.linear(x, w, b))
                names = kernel_names(lambda x=x, w=w, b=b: F.linear(x, w, b))
                row(f"{label}, {lib}", s, tflops=round(flops / s / 1e12, 1), kernels=names)
    finally:
        torch.backends.cuda.preferred_blas_library(before)


COMPILE_OPTIONS: dict[str, dict[str, object]] = {
    "default": {},
    "multi_kernel": {"triton.multi_kernel": 1},
    "coordinate_descent_tuning": {"coordinate_descent_tuning": True},
    "multi_kernel + coordinate_descent_tuning": {"triton.multi_kernel": 1, "coordinate_descent_tuning": True},
}


def compile_option_rows(layers: int = 4) -> None:
    """Inductor options for the compiled blocks (I2V-14B cut to ``layers`` blocks): forward time, time of
    the fused element-wise kernels per block, first call; bf16 and FP8.

    Why: in the per-block profile the norm/modulation/residual reductions ran at a third to a half of the
    card's memory bandwidth. (The cause was the channel-major token stream, since fixed in ``WanDiT.embed``;
    these options won back at most 1 %.)
    """
    from fantasy_world.accel.compile import compile_blocks, uncompile_blocks
    from fantasy_world.quant.selection import quantize_model

    model, forward = _cut_i2v14b(layers)
    for precision in ("bf16", "FP8"):
        if precision == "FP8":
            quantize_model(model)
        first = None
        for label, options in COMPILE_OPTIONS.items():
            uncompile_blocks(model)
            torch._dynamo.reset()
            compile_blocks(model, options=options)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = forward()
            torch.cuda.synchronize()
            compile_s = time.perf_counter() - t0
            first = out if first is None else first
            s = cuda_time(forward, reps=5, warmup=1)
            triton_ms = sum(ms for name, ms in kernel_times(forward).items() if name.startswith("triton_"))
            row(
                f"I2V-14B cut to {layers} blocks, {precision}, compiled with {label}",
                s,
                first_call_s=round(compile_s, 1),
                triton_ms_per_block=round(triton_ms / layers, 3),
                rel_diff_vs_default=rel(out, first),
            )


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


# --only NAME: (what it measures, the row functions); without --only every group runs
PARTS: dict[str, tuple[str, list]] = {
    "ffn": (
        "the fused feed-forward GEMM",
        [
            lambda: ffn_rows(16317, 5120, 13824, "14B 336x592x81"),
            lambda: ffn_rows(32760, 1536, 8960, "1.3B 480x832x81"),
        ],
    ),
    "invariants": ("the step-invariant projections", [invariant_rows]),
    "fusion": (
        "one GEMM for q/k/v, block GEMMs alone, FP8 attention with and without key smoothing",
        [
            lambda: projection_rows(16317, 5120, "14B"),
            lambda: projection_rows(32760, 1536, "1.3B"),
            block_gemm_rows,
            fp8_attention_rows,
        ],
    ),
    "profile": ("per-block kernel times, bf16 / FP8 / FP8 attention", [block_profile_rows]),
    "options": ("inductor options for the blocks", [compile_option_rows]),
    "gaps": (
        "one FA3 call for the cross-attention, cuBLAS vs cuBLASLt",
        [cross_attention_rows, blas_library_rows],
    ),
    "qk": (
        "the q/k RMS norm + RoPE: compiled layouts, the Triton kernel, the kernel in the cut model",
        [qk_rope_rows, qk_block_rows],
    ),
    "fp8ffn": (
        "the FP8 feed-forward's GELU + row quantisation: inductor vs the Triton kernel, in the cut model",
        [fp8_ffn_rows, fp8_block_rows],
    ),
    "fp8attn": (
        "FP8 attention's input quantisation: inductor vs two Triton passes, in the cut model",
        [fp8_heads_rows, fp8_attention_block_rows],
    ),
    "geometry": (
        "the geometry branch: cut FantasyWorld-14B against its plain DiT, kernels, bf16 / FP8 / FP8 attention",
        [geometry_profile_rows],
    ),
    "readout": ("geometry read-out and frames to the host", [readout_rows]),
    "idle": ("the full compiled 14B forward: idle GPU time and the gaps between kernels", [idle_rows]),
}


def _group(name: str) -> str:
    if name not in PARTS:
        raise argparse.ArgumentTypeError(f"unknown group {name!r}: expected one of {', '.join(PARTS)}")
    return name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--only",
        type=lambda v: [_group(g) for g in v.split(",")],
        help="groups of rows, comma-separated: " + "; ".join(f"{k}: {v[0]}" for k, v in PARTS.items()),
    )
    ap.add_argument(
        "--wheels", help="bare GPU node: install these carried wheels first (e.g. .train_state/whl)"
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.wheels:
        from bench.train_device_env import prepare_node
        from fantasy_world.models.wan import flash3

        prepare_node(None, args.wheels)
        flash3.load()
    row("device", note=f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    for fn in [p for g in (args.only or PARTS) for p in PARTS[g][1]]:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one failed part must not lose the others
            row("error", note=f"{type(exc).__name__}: {exc}")
    (args.out / "step_parts.json").write_text(json.dumps(ROWS, indent=1))


if __name__ == "__main__":
    main()
