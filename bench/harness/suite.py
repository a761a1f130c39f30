"""The GPU benchmark: one run, one card, every number side by side (issue: GPU performance).

Sections, in priority order (each skipped when the time guard says it cannot finish):

1. ``ceiling``  — measured bf16 matmul rate (the denominator of "% of ceiling") and copy bandwidth.
2. ``wan13``    — Wan2.1-T2V-1.3B DiT forward at 81×480×832: ours under each attention backend vs
   diffusers' ``WanTransformer3DModel`` on the same weights; batch 2 (both guidance passes) vs one.
3. ``fw13``     — FantasyWorld ``wan2.1-t2v-1.3b`` conditional / negative passes, heads, batched CFG.
4. ``generate`` — the pipeline end to end (text encoding, camera, N guided steps, heads, VAE decode),
   extrapolated to 50 steps and compared with a 50-step guided diffusers loop (100 measured forwards).
5. ``i2v14``    — FantasyWorld ``wan2.1-i2v-14b`` at 81×336×592 vs diffusers' I2V forward.
6. ``offload``  — the 14B forward with block swapping, peak memory and cost.
7. ``compile``  — regional ``torch.compile`` of the 1.3B DiT (and FantasyWorld if time is left).

Every measurement is wrapped so that one failure leaves the others; rows go to ``results.json`` as they
come. ``small=True`` runs the same code on toy configs (CPU smoke test).
"""

from __future__ import annotations

import dataclasses
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.harness import ALL_SECTIONS, DEFAULT_SECTIONS, attention_table, like_for_like, sections
from bench.harness.record import Recorder
from bench.harness.weights import free_cuda
from fantasy_world.models.wan.attention import attention_backend, set_attention_backend

# Rough full-size cost of each section on an H100 (seconds), used by the time guard.
FULL_COST_S: dict[str, float] = {
    "ceiling": 8,
    "wan13": 60,
    "fw13": 60,
    "generate": 70,
    "i2v14": 90,
    "offload": 60,
    "compile": 120,
    # issue 12 sections, on an H200 (model builds included)
    "l4l13": 60,
    "l4l14": 150,
    "e2e14": 70,
    "tinyworld": 45,
    "fp8": 60,
    "attn": 40,
    "profile14": 20,
}


@dataclass(frozen=True)
class BenchOptions:
    device: str = "cuda"
    small: bool = False
    out_dir: Path = Path("bench/out")
    budget_s: float = 510.0
    sections: tuple[str, ...] = DEFAULT_SECTIONS
    gen_steps: int = 4
    reps: int = 3
    seed: int = 0


@dataclass
class Context:
    """What sections share: options, recorder, device, and facts later sections reuse (best backend...)."""

    opts: BenchOptions
    rec: Recorder
    device: torch.device
    dtype: torch.dtype = torch.bfloat16
    best_backend: str = "auto"
    shared: dict = dataclasses.field(default_factory=dict)

    def cost(self, section: str) -> float:
        return 1.0 if self.opts.small else FULL_COST_S.get(section, 30.0)

    def attempt(self, section: str, name: str, fn: Callable[[], object], note: str = "") -> object:
        """Run one measurement; on failure record the error (first line) and free memory."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - one failed measurement must not lose the others
            msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            self.rec.add(section, name, note=note, error=msg)
            traceback.print_exc()
            free_cuda()
            return None


def environment(device: torch.device) -> dict[str, object]:
    env: dict[str, object] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update(
            card=p.name,
            sm_count=p.multi_processor_count,
            memory_gib=round(p.total_memory / 1024**3, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        env["card"] = f"CPU ({platform.processor() or platform.machine()})"
    try:
        import diffusers

        env["diffusers"] = diffusers.__version__
    except ImportError:
        env["diffusers"] = None
    return env


RUNNERS: dict[str, Callable[[Context], None]] = {
    "ceiling": sections.ceiling,
    "wan13": sections.wan13,
    "fw13": sections.fw13,
    "generate": sections.generate,
    "i2v14": sections.i2v14,
    "offload": sections.offload,
    "compile": sections.compile_blocks_section,
    "l4l13": like_for_like.l4l13,
    "l4l14": like_for_like.l4l14,
    "e2e14": like_for_like.e2e14,
    "tinyworld": like_for_like.tinyworld,
    "fp8": like_for_like.fp8,
    "attn": attention_table.attn,
    "profile14": attention_table.profile14,
}


def run_suite(opts: BenchOptions) -> Recorder:
    """Run the selected sections within ``opts.budget_s`` seconds and return the recorder."""
    device = torch.device(opts.device)
    rec = Recorder(opts.out_dir, opts.budget_s)
    rec.meta.update(environment(device), small=opts.small, options={k: str(v) for k, v in vars(opts).items()})
    rec.save()
    ctx = Context(opts, rec, device)
    torch.manual_seed(opts.seed)
    with torch.no_grad():  # not inference_mode: block swapping re-points parameters
        for name in opts.sections:
            if name not in RUNNERS:
                rec.add(name, "section", error=f"unknown section; expected one of {', '.join(ALL_SECTIONS)}")
                continue
            if name not in ("fw13", "generate"):
                ctx.shared.pop("fw13_model", None)  # kept by fw13 for generate only
            if name not in ("profile14", "e2e14", "fp8", "tinyworld"):
                ctx.shared.pop("fw14_model", None)  # kept by l4l14 for e2e14 (and fp8)
            if rec.time_left() < ctx.cost(name):
                rec.add(name, "section", note=f"skipped by the time guard ({rec.time_left():.0f} s left)")
                print(
                    f"== section {name} SKIPPED by the time guard ({rec.time_left():.0f} s left)", flush=True
                )
                continue
            t0 = time.monotonic()
            ctx.attempt(name, "section", lambda name=name: RUNNERS[name](ctx))
            set_attention_backend("auto")
            free_cuda()
            print(f"== section {name} took {time.monotonic() - t0:.1f} s", flush=True)
    rec.meta["best_backend"] = ctx.best_backend
    rec.meta["wall_s"] = round(time.monotonic() - rec.start, 1)
    rec.save()
    return rec


__all__ = ["ALL_SECTIONS", "BenchOptions", "Context", "attention_backend", "run_suite"]
