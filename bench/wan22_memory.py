"""Peak device memory and expert-switch time of FantasyWorld on Wan2.2-Fun-A14B, end to end, random weights.

The run goes through the wired pipeline (``FantasyWorldPipeline`` with a two-expert ``LoadedModel``),
exactly as a generation from a Wan2.2 folder would, with random weights at full size:

1. build: umT5-XXL and the Wan VAE on the card; both 16.5 B experts built on the card one after the
   other and parked in pinned host memory (``ExpertResidency``: one expert on the card at a time);
2. the pipeline call: prompt and the (empty) negative prompt through umT5, first + last frame through the
   VAE (mask 1 on both, 36 DiT input channels), then three sampling steps across the switch
   (``step_window``: steps 16, 17, 18 of a 50-step schedule at shift 5 -> high, high, low), CFG 5 with two
   passes, each expert's own control-adapter camera features, geometry from the low expert on the last
   step; then the tiled VAE decode (tiles 30x52, stride 15x26, as official).

Per step the peak allocated memory since the previous step is recorded (the first row includes the
conditioning, the decode row the end of the last step); the switch time is the residency's own record
(high off, low uploaded from pinned memory). ``--budget`` cancels the sampling before a step that would
start past it.

    python bench/wan22_memory.py --out bench/results/wan22_memory              # full size, one H200
    python bench/wan22_memory.py --small --out /tmp/wan22_small                # reduced widths, CPU

Prints a table; writes ``wan22_memory.json`` (one row per phase plus a summary row) to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fantasy_world.errors import GenerationCancelled  # noqa: E402
from fantasy_world.model_folder import WAN22_DEFAULTS, LoadedModel  # noqa: E402
from fantasy_world.models.fantasy.config import fantasy_world_config, reduced  # noqa: E402
from fantasy_world.models.fantasy.expert_residency import ExpertResidency, park_on_host  # noqa: E402
from fantasy_world.models.fantasy.experts import WAN22_FUN_EXPERTS  # noqa: E402
from fantasy_world.models.fantasy.model import FantasyWorldModel  # noqa: E402
from fantasy_world.models.wan.umt5 import UMT5_PRESETS, UMT5Encoder  # noqa: E402
from fantasy_world.models.wan.vae import WanVAE, wan_vae_config  # noqa: E402
from fantasy_world.pipeline import FantasyWorldPipeline, StepInfo  # noqa: E402

GB = 1024**3


@torch.no_grad()
def randomize(module: nn.Module, seed: int) -> None:
    """Fan-in-scaled matrices, norm weights near 1, small biases: finite activations, no zero gates."""
    gen = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    for name, p in module.named_parameters():
        noise = torch.randn(p.shape, generator=gen, device=p.device, dtype=torch.float32)
        if p.ndim >= 2 and "modulation" not in name:
            p.copy_(noise / math.sqrt(max(1, math.prod(p.shape[1:]))))
        elif name.endswith("weight"):
            p.copy_(1.0 + 0.05 * noise)
        else:
            p.copy_(0.05 * noise)


def build(factory, device: torch.device, dtype: torch.dtype, seed: int) -> nn.Module:  # noqa: ANN001
    """Construct directly on ``device`` in ``dtype`` (a 16.5 B expert never exists in float32), randomise."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            module = factory()
    finally:
        torch.set_default_dtype(before)
    randomize(module, seed)
    return module.eval()


class HashedUMT5(UMT5Encoder):
    """umT5 with a stand-in tokenizer (words hashed into the vocabulary): no tokenizer files on the box,
    and with random weights the ids do not matter, only the lengths (prompt ~24 tokens, empty one 1)."""

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.max_length
        ids = torch.zeros(len(prompts), n, dtype=torch.long)
        mask = torch.zeros(len(prompts), n, dtype=torch.long)
        for row, text in enumerate(prompts):
            words = [zlib.crc32(w.encode()) % (self.cfg.vocab - 3) + 3 for w in text.split()][: n - 1] + [1]
            ids[row, : len(words)] = torch.tensor(words)
            mask[row, : len(words)] = 1
        return ids, mask


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gb(device: torch.device, reset: bool = True) -> dict[str, float]:
    """Peak allocated / reserved since the last reset (CUDA only), then reset."""
    if device.type != "cuda":
        return {}
    out = {
        "peak_allocated_gb": round(torch.cuda.max_memory_allocated(device) / GB, 2),
        "peak_reserved_gb": round(torch.cuda.max_memory_reserved(device) / GB, 2),
        "allocated_now_gb": round(torch.cuda.memory_allocated(device) / GB, 2),
    }
    if reset:
        torch.cuda.reset_peak_memory_stats(device)
    return out


def show(row: dict) -> None:
    extra = {
        k: v for k, v in row.items() if k not in ("phase", "seconds", "peak_allocated_gb", "peak_reserved_gb")
    }
    print(
        f"{row['phase']:<26} {row.get('seconds', float('nan')):>8.2f} s  "
        f"peak {row.get('peak_allocated_gb', float('nan')):>7.2f} GB  "
        f"reserved {row.get('peak_reserved_gb', float('nan')):>7.2f} GB  "
        + " ".join(f"{k}={v}" for k, v in extra.items()),
        flush=True,
    )


def maybe_fp8(module: nn.Module, wanted: bool) -> nn.Module:
    """``--fp8``: quantise with ``fantasy_world.quant.selection.quantize_model`` when that module exists."""
    if not wanted:
        return module
    try:
        from fantasy_world.quant.selection import quantize_model
    except ImportError:
        raise SystemExit("--fp8: fantasy_world.quant.selection is not in this checkout") from None
    return quantize_model(module, fp8=True) or module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="reduced widths, small video, CPU-sized")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--first-step", type=int, default=16, help="first of the 3 steps (50-step schedule)")
    parser.add_argument(
        "--budget", type=float, default=230.0, help="seconds; sampling stops before passing it"
    )
    parser.add_argument(
        "--fp8", action="store_true", help="FP8 experts (needs fantasy_world.quant.selection)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    device = torch.device(args.device)
    dtype = torch.bfloat16
    pin = device.type == "cuda"
    if args.small:
        cfg = reduced(fantasy_world_config("wan2.2-fun-a14b"), context_dim=64)
        text_cfg = dataclasses.replace(UMT5_PRESETS["umt5-test"], text_len=cfg.dit.text_len)
        vae_cfg = wan_vae_config("tiny")
        height, width, frames = args.height or 64, args.width or 96, args.frames or 9
        dtype = torch.float32 if device.type == "cpu" else dtype
    else:
        cfg = fantasy_world_config("wan2.2-fun-a14b")
        text_cfg = UMT5_PRESETS["umt5-xxl"]
        vae_cfg = wan_vae_config("wan2.1")
        height, width, frames = args.height or 480, args.width or 832, args.frames or 81
    rows: list[dict] = []
    print(f"device {device} | {cfg.name} | {frames}x{height}x{width} | torch {torch.__version__}", flush=True)

    # 1. build: text encoder and VAE on the card, both experts parked in (pinned) host memory
    sync(device)
    t0 = time.perf_counter()
    text = build(lambda: HashedUMT5(text_cfg), device, dtype, seed=1)
    vae = build(lambda: WanVAE(vae_cfg), device, torch.float32, seed=2)
    experts = {}
    for seed, name in enumerate(WAN22_FUN_EXPERTS.names, start=10):
        model = maybe_fp8(build(lambda: FantasyWorldModel(cfg), device, dtype, seed=seed), args.fp8)
        park_on_host(model, pin)
        experts[name] = model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    residency = ExpertResidency(experts, WAN22_FUN_EXPERTS, device=device, pin=pin)
    loaded = LoadedModel(
        name=cfg.name,
        model=experts[WAN22_FUN_EXPERTS.low],
        vae=vae,
        text_encoder=text,
        image_encoder=None,
        defaults=WAN22_DEFAULTS,
        trained=False,
        tiled_decode=not args.small,
        experts=residency,
    )
    pipe = FantasyWorldPipeline(loaded, device, dtype)
    sync(device)
    n_params = sum(p.numel() for p in experts["high"].parameters())
    rows.append(
        {
            "phase": "build",
            "seconds": round(time.perf_counter() - t0, 2),
            **peak_gb(device),
            "params_per_expert": n_params,
            "host_gb_per_expert": round(residency.expert_bytes("high") / GB, 2),
        }
    )
    show(rows[-1])

    # 2. one generation through the pipeline, three steps across the switch
    gen = np.random.default_rng(0)
    first = Image.fromarray(gen.integers(0, 256, (height, width, 3), dtype=np.uint8))
    last = Image.fromarray(gen.integers(0, 256, (height, width, 3), dtype=np.uint8))
    window = (args.first_step, args.first_step + 3)
    step_start = [time.perf_counter()]
    step_times: list[float] = []

    def on_step(info: StepInfo) -> None:
        sync(device)
        now = time.perf_counter()
        label = f"step {info.step - 1}" + (" (+conditioning)" if not step_times else "")
        step_times.append(now - step_start[0])
        row = {"phase": label, "seconds": round(now - step_start[0], 2), **peak_gb(device)}
        row |= {"expert": info.expert, "t": round(info.timestep, 3)}
        row["t_model"] = WAN22_FUN_EXPERTS.model_timestep(info.timestep)
        if info.expert == WAN22_FUN_EXPERTS.low and len(residency.switches) > 1:
            row["switch_seconds"] = round(residency.switches[-1].seconds, 3)
        rows.append(row)
        show(row)
        step_start[0] = time.perf_counter()

    def out_of_time() -> bool:
        typical = max(step_times, default=0.0)
        return time.perf_counter() - started + typical > args.budget

    peak_gb(device)
    t0 = time.perf_counter()
    world = None
    try:
        world = pipe(
            "a quiet street with old houses and trees at sunset, the camera moves forward slowly",
            camera="dolly_in",
            image=first,
            end_image=last,
            steps=50,
            guidance=5.0,
            shift=5.0,
            frames=frames,
            height=height,
            width=width,
            step_window=window,
            on_step=on_step,
            cancel=out_of_time,
        )
    except GenerationCancelled as exc:
        print(f"stopped by --budget {args.budget:.0f} s: {exc}", flush=True)
    sync(device)
    if world is not None:
        rows.append(
            {
                "phase": "decode (+end of last step)",
                "seconds": round(world.timings.get("decode", 0.0), 2),
                **peak_gb(device),
                "video_shape": list(world.images.shape),
                "finite_depth": bool(np.isfinite(world.depths).all()),
            }
        )
        show(rows[-1])
    switches = [s for s in residency.switches if s.offloaded is not None]
    overall = max((r.get("peak_allocated_gb", 0.0) for r in rows), default=0.0)
    summary = {
        "phase": "summary",
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "config": cfg.name,
        "fp8": args.fp8,
        "video": [frames, height, width],
        "steps": list(range(*window)),
        "plan": None if world is None else world.meta["experts"],
        "geometry_expert": None if world is None else world.meta["geometry_expert"],
        "peak_allocated_gb": overall,
        "switch_seconds": round(switches[0].seconds, 3) if switches else None,
        "switch_gb": round(switches[0].bytes_moved / GB, 2) if switches else None,
        "timings": None if world is None else {k: round(v, 2) for k, v in world.timings.items()},
        "generation_seconds": round(time.perf_counter() - t0, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
        "completed": world is not None,
        "torch": torch.__version__,
    }
    rows.append(summary)
    print(json.dumps(summary), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "wan22_memory.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
