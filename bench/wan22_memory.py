"""Peak device memory and expert-switch time of FantasyWorld on Wan2.2-Fun-A14B, end to end, random weights.

Phases, in the order a generation runs them, each with its time and peak allocated/reserved memory:

1. ``text``: umT5-XXL on the card, prompt and (empty) negative prompt encoded, encoder dropped;
2. ``vae_encode``: first + last frame conditioning (mask of 1 on both, 36 DiT input channels in all), VAE
   then parked in host memory;
3. ``experts``: both 16.5 B experts built on the card one after the other and parked in pinned host memory;
4. ``step k``: three sampling steps across the switch (50-step schedule at shift 5, steps 16, 17, 18: high,
   high, low), CFG 5 with two passes, control-adapter camera features per expert, geometry heads on the
   last one; the switch (high off, low on) is timed on its own;
5. ``vae_decode``: expert off the card, VAE back on, tiled decode (tiles 30×52, stride 15×26, as official).

    python bench/wan22_memory.py --out bench/results/wan22_memory            # full size, one H200
    python bench/wan22_memory.py --small --out /tmp/wan22_small              # reduced widths, CPU

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
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fantasy_world.models.fantasy.config import fantasy_world_config, reduced  # noqa: E402
from fantasy_world.models.fantasy.expert_residency import ExpertResidency, park_on_host  # noqa: E402
from fantasy_world.models.fantasy.experts import WAN22_FUN_EXPERTS  # noqa: E402
from fantasy_world.models.fantasy.image_condition import conditioning_mask, conditioning_video  # noqa: E402
from fantasy_world.models.fantasy.model import FantasyWorldModel  # noqa: E402
from fantasy_world.models.wan.text_encoder import zero_past_length  # noqa: E402
from fantasy_world.models.wan.umt5 import UMT5Encoder, umt5_config  # noqa: E402
from fantasy_world.models.wan.vae import WanVAE, wan_vae_config  # noqa: E402
from fantasy_world.sampling.flow_matching import apply_guidance, flow_match_schedule  # noqa: E402

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


def park(module: nn.Module, pin: bool) -> nn.Module:
    """Weights into one flat (pinned) host buffer per dtype, device copies dropped."""
    park_on_host(module, pin)
    return module


class Meter:
    """Wall time and peak device memory per phase."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.rows: list[dict] = []

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start(self) -> float:
        self._sync()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return time.perf_counter()

    def stop(self, phase: str, t0: float, **extra: object) -> dict:
        self._sync()
        row: dict = {"phase": phase, "seconds": round(time.perf_counter() - t0, 3), **extra}
        if self.device.type == "cuda":
            row["peak_allocated_gb"] = round(torch.cuda.max_memory_allocated(self.device) / GB, 2)
            row["peak_reserved_gb"] = round(torch.cuda.max_memory_reserved(self.device) / GB, 2)
            row["allocated_after_gb"] = round(torch.cuda.memory_allocated(self.device) / GB, 2)
        self.rows.append(row)
        print(
            f"{phase:<14} {row['seconds']:>8.2f} s  peak {row.get('peak_allocated_gb', float('nan')):>7.2f} GB"
            f"  reserved {row.get('peak_reserved_gb', float('nan')):>7.2f} GB  "
            + " ".join(f"{k}={v}" for k, v in extra.items()),
            flush=True,
        )
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="reduced widths, small video, CPU-sized")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--first-step", type=int, default=16, help="first of the 3 steps (50-step schedule)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16
    pin = device.type == "cuda"
    if args.small:
        cfg = reduced(fantasy_world_config("wan2.2-fun-a14b"), context_dim=64)
        text_cfg = dataclasses.replace(umt5_config("umt5-test"), dim=64, text_len=cfg.dit.text_len)
        vae_cfg = wan_vae_config("tiny")
        height, width, frames = args.height or 64, args.width or 96, args.frames or 9
    else:
        cfg = fantasy_world_config("wan2.2-fun-a14b")
        text_cfg = umt5_config("umt5-xxl")
        vae_cfg = wan_vae_config("wan2.1")
        height, width, frames = args.height or 480, args.width or 832, args.frames or 81
    lat_f, lat_h, lat_w = 1 + (frames - 1) // 4, height // 8, width // 8
    meter = Meter(device)
    print(f"device {device} | {cfg.name} | {frames}x{height}x{width} | torch {torch.__version__}")

    # 1. text encoder: on the card only while encoding
    t0 = meter.start()
    text = build(lambda: UMT5Encoder(text_cfg), device, dtype, seed=1)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, text_cfg.vocab, (2, text_cfg.text_len), generator=gen).to(device)
    mask = torch.zeros(2, text_cfg.text_len, dtype=torch.long, device=device)
    mask[0, :24], mask[1, :1] = 1, 1  # prompt of 24 tokens; the empty negative prompt is one EOS token
    with torch.no_grad():
        context = zero_past_length(text(ids, mask), mask)
    pos, neg = context[:1], context[1:]
    del text
    if device.type == "cuda":
        torch.cuda.empty_cache()
    meter.stop("text", t0)

    # 2. VAE encode of first and last frame (+ grey frames), mask 1 on both
    t0 = meter.start()
    vae = build(lambda: WanVAE(vae_cfg), device, torch.float32, seed=2)
    first, last = (torch.rand(3, height, width, generator=gen).to(device) * 2 - 1 for _ in range(2))
    video = conditioning_video(first, frames, last)
    with torch.no_grad():
        latent = vae.encode(video)
    msk = conditioning_mask(frames, lat_h, lat_w, last_frame=True, device=device)
    y = torch.cat([msk, latent.float()], dim=1).to(dtype)
    del video, latent
    park(vae, pin)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    meter.stop("vae_encode", t0)

    # 3. both experts, built on the card one at a time, parked in host memory
    t0 = meter.start()
    experts = {}
    for seed, name in enumerate(WAN22_FUN_EXPERTS.names, start=10):
        experts[name] = park(build(lambda: FantasyWorldModel(cfg), device, dtype, seed=seed), pin)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    residency = ExpertResidency(experts, WAN22_FUN_EXPERTS, device=device, pin=pin)
    n_params = sum(p.numel() for p in experts["high"].parameters())
    meter.stop(
        "experts",
        t0,
        params_per_expert=n_params,
        host_gb_per_expert=round(residency.expert_bytes("high") / GB, 2),
    )

    # 4. three steps across the switch (the first expert's upload timed on its own)
    schedule = flow_match_schedule(50, shift=5.0)
    steps = list(range(args.first_step, args.first_step + 3))
    t0 = meter.start()
    residency.activate(WAN22_FUN_EXPERTS.expert_for(schedule.timesteps[steps[0]]))
    meter.stop("upload", t0, loaded=residency.active)
    plucker = torch.randn(1, frames, height, width, 6, generator=gen).to(device, dtype)
    x = torch.randn(1, 16, lat_f, lat_h, lat_w, generator=gen).to(device)
    camera: dict[str, torch.Tensor] = {}
    plan = []
    for i in steps:
        t = schedule.timesteps[i]
        name = WAN22_FUN_EXPERTS.expert_for(t)
        if residency.active is not None and residency.active != name:
            t_switch = meter.start()
            residency.activate(name)
            meter.stop("switch", t_switch, offloaded=residency.switches[-1].offloaded, loaded=name)
        t0 = meter.start()
        _, model = residency.for_timestep(t)
        tm = torch.tensor([WAN22_FUN_EXPERTS.model_timestep(t)], device=device)
        with torch.no_grad():
            if name not in camera:
                camera[name] = model.encode_camera(plucker)
            last = i == steps[-1]
            out = model(x, tm, pos, y=y, camera=camera[name], return_geometry=last, image_hw=(height, width))
            v_neg = model(x, tm, neg, y=y, camera=camera[name]).velocity
            v = apply_guidance(out.velocity, v_neg, 5.0)
            x = schedule.step(x, v, i)
        finite = bool(torch.isfinite(x).all())
        plan.append(name)
        extra = {"expert": name, "t": round(float(t), 3), "t_model": WAN22_FUN_EXPERTS.model_timestep(t)}
        if last:
            extra["depth_shape"] = list(out.geometry.depth.shape)
        meter.stop(f"step {i}", t0, finite=finite, **extra)
        del out, v_neg, v

    # 5. decode
    t0 = meter.start()
    residency.release()
    camera.clear()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    vae.to(device)
    with torch.no_grad():
        frames_out = vae.decode(x, tiled=True, tile_size=(30, 52), tile_stride=(15, 26))
    meter.stop("vae_decode", t0, video_shape=list(frames_out.shape))

    switch = next((r for r in meter.rows if r["phase"] == "switch"), None)
    summary = {
        "phase": "summary",
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "config": cfg.name,
        "video": [frames, height, width],
        "plan": plan,
        "peak_allocated_gb": max((r.get("peak_allocated_gb", 0.0) for r in meter.rows), default=0.0),
        "switch_seconds": switch["seconds"] if switch else None,
        "total_seconds": round(sum(r["seconds"] for r in meter.rows), 2),
        "torch": torch.__version__,
    }
    meter.rows.append(summary)
    print(json.dumps(summary))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "wan22_memory.json").write_text(json.dumps(meter.rows, indent=1))


if __name__ == "__main__":
    main()
