"""bf16 against fp32, per output, for FantasyWorld ``wan2.1-i2v-14b`` with seeded weights (issue 18).

    python bench/precision_bench.py --out OUT [--small] [--device cuda|cpu] [--timesteps 500 92.5]

Full size (default): the official 14B structure at 81×336×592 on one GPU, weights seeded (``perf.weights``)
and rounded through bf16, so the fp32 reference and the bf16 model hold the same values and only the
arithmetic differs (a real checkpoint is stored in bf16 as well). Inputs are bf16-exact too. Sections:

1. ``e2e``: the whole model in fp32 (TF32 off) is the reference; it is then cast to bf16 in place and run
   in each variant (:func:`variant`): ``before`` (the code before issue 18), ``heads-only`` (the policy of
   the heads and pose encoder, bf16 geometry stream), ``on`` (this code: also the fp32 geometry stream)
   and ``fp32-heads`` (heads and pose encoder wholly fp32: the bound). Error per output and timestep:
   rel = ‖a − b‖ / ‖b − mean(b)‖, the measure of issue 18, whose official bf16 numbers are printed
   beside. ``--unrounded`` adds an fp32 reference with un-rounded seeded weights, if time allows.
2. ``heads``: the intermediates captured in the last ``on`` run, rounded to bf16, and the Plücker maps
   through the heads and pose encoder alone, against the same modules computing in fp32, with the policy
   ``plain`` (before), ``on``, and on CUDA ``autocast`` (ours under CUDA autocast with the policy off: the
   official code's head policy). Time and extra peak memory of each (they run once per video).

If the fp32 14B model does not fit the card, section 1 is skipped and section 2 runs on full-size heads
with seeded random intermediates; the output says so. ``--small`` runs everything at toy width on the CPU
(seconds) to check the script. Writes ``precision.json`` to ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.harness.bench_models import I2V_SIZE, VideoSize, fw14_config  # noqa: E402
from bench.harness.timing import measure  # noqa: E402
from bench.harness.weights import build, free_cuda, seeded_randomize  # noqa: E402
from fantasy_world.models.fantasy.config import FantasyWorldConfig, fantasy_world_config, reduced  # noqa: E402
from fantasy_world.models.fantasy.heads import CameraHead, DPTHead  # noqa: E402
from fantasy_world.models.fantasy.layers.geometry_block import GeometryBlock  # noqa: E402
from fantasy_world.models.fantasy.model import FantasyWorldModel  # noqa: E402
from fantasy_world.models.fantasy.pose_encoder import CameraPoseEncoder  # noqa: E402
from fantasy_world.models.fantasy.precision import precision_policy  # noqa: E402

SMALL_SIZE = VideoSize(5, 32, 48)  # two latent frames: the causal upsamplers still produce 4 new frames
OUTPUTS = ("velocity", "pose_enc", "depth", "depth_conf", "world_points", "world_points_conf", "camera")
# Issue 18's measurement of the official code in bf16 against its fp32 (t=500 / t=92.5), for reference.
OFFICIAL_BF16 = {
    "velocity": (1.82e-2, 1.85e-2),
    "pose_enc": (1.09e-2, 1.18e-2),
    "depth": (5.47e-2, 4.28e-2),
    "depth_conf": (2.60e-2, 2.99e-2),
    "world_points_conf": (2.84e-2, 2.53e-2),
    "camera": (8.05e-3,),  # independent of t
}


VARIANTS = ("before", "official", "heads-only", "fp32-heads", "on")


@contextlib.contextmanager
def variant(name: str, model: FantasyWorldModel | None = None):
    """``before``: the code before issue 18 (plain bf16 heads and pose encoder, bf16 geometry stream);
    ``official``: the official code's policy (as ``before``, with the heads and the pose encoder under
    CUDA autocast; needs ``model``); ``heads-only``: the heads/pose-encoder policy with the bf16 geometry
    stream; ``on``: this code (policy and fp32 geometry stream); ``fp32-heads``: as ``on`` with the heads
    and pose encoder wholly fp32."""
    policy = {"before": "plain", "official": "plain", "heads-only": "on", "on": "on", "fp32-heads": "fp32"}[
        name
    ]
    GeometryBlock.fp32_stream = name not in ("before", "official", "heads-only")
    patched: dict[str, object] = {}
    if name == "official" and model is not None:
        for attr in ("decode_geometry", "encode_camera"):
            inner = getattr(model, attr)
            patched[attr] = model.__dict__.get(attr)
            setattr(model, attr, _under_autocast(inner, next(model.parameters()).device.type))
    try:
        with precision_policy(policy):
            yield
    finally:
        GeometryBlock.fp32_stream = True
        for attr, old in patched.items():
            if old is None:
                delattr(model, attr)
            else:
                setattr(model, attr, old)


def _under_autocast(fn, device_type: str):
    def wrapped(*args, **kwargs):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return fn(*args, **kwargs)

    return wrapped


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b − mean(b)‖ in float64 on ``b``'s device."""
    a, b = a.to(b.device, torch.float64), b.double()
    return float((a - b).norm() / (b - b.mean()).norm())


def strict_fp32() -> None:
    """No TF32 anywhere: the fp32 reference must be real fp32."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def default_tf32() -> None:
    """PyTorch's defaults, which the pipeline keeps: no TF32 in matmuls, TF32 in cuDNN convolutions."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("highest")


def weight_key(name: str) -> str:
    return name[4:] if name.startswith("dit.") else "fw." + name


def make_inputs(cfg: FantasyWorldConfig, size: VideoSize, device: torch.device, seed: int) -> dict:
    """fp32 inputs whose values bf16 stores exactly, so both precisions see the same inputs."""
    g = torch.Generator(device=device).manual_seed(seed)
    d = cfg.dit
    f, h, w = size.latent()

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=device).bfloat16().float()

    ctx = draw(1, d.text_len, d.text_dim)
    ctx[:, min(d.text_len, 96) :] = 0.0
    return {
        "x": draw(1, d.out_dim, f, h, w),
        "context": ctx,
        "clip_fea": draw(1, d.clip_tokens, d.clip_dim),
        "y": draw(1, d.in_dim - d.out_dim, f, h, w),
        "plucker": draw(1, size.frames, size.height, size.width, 6),
    }


class Capture:
    """Wraps ``model.decode_geometry`` to keep the last intermediates it was given."""

    def __init__(self, model: FantasyWorldModel) -> None:
        self.args: tuple | None = None
        self.orig = model.decode_geometry
        model.decode_geometry = self._call  # type: ignore[method-assign]

    def _call(self, intermediates, token_hw, image_hw):
        self.args = (intermediates, token_hw, image_hw)
        return self.orig(intermediates, token_hw, image_hw)


@torch.no_grad()
def run_model(model: FantasyWorldModel, inputs: dict, t: float, dtype: torch.dtype) -> dict:
    dev = inputs["x"].device
    cam = model.encode_camera(inputs["plucker"].to(dtype))
    out = model(
        inputs["x"].to(dtype),
        torch.tensor([t], device=dev),
        inputs["context"].to(dtype),
        clip_fea=inputs["clip_fea"].to(dtype),
        y=inputs["y"].to(dtype),
        camera=cam,
        return_geometry=True,
    )
    geo = out.geometry
    res = {"velocity": out.velocity, "camera": cam}
    res.update({k: getattr(geo, k) for k in OUTPUTS[1:6]})
    return {k: v.float() for k, v in res.items()}


def to_host(out: dict) -> dict:
    return {k: v.cpu() for k, v in out.items()}


def sync_time(device: torch.device, fn):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def e2e_rows(got: dict, ref: dict, reference: str, policy: str, t: float) -> list[dict]:
    return [
        {
            "section": "e2e",
            "reference": reference,
            "policy": policy,
            "t": t,
            "output": k,
            "rel": rel(got[k], ref[k]),
        }
        for k in OUTPUTS
    ]


def end_to_end(model, inputs, args, device, rows, keep: dict) -> tuple[tuple, list[float]]:
    """Section 1. Leaves ``model`` in bf16; returns the intermediates captured in the last ``on`` run
    and the fp32 forward times. With ``keep`` given, the bf16 outputs are kept there (host) by
    (policy, t) for the un-rounded comparison."""
    refs, fp32_s = {}, []
    for t in args.timesteps:
        out, s = sync_time(device, lambda t=t: run_model(model, inputs, t, torch.float32))
        refs[t] = to_host(out)
        fp32_s.append(s)
        print(f"  fp32 reference t={t}: {s:.1f} s", flush=True)
    del out
    model.to(torch.bfloat16)
    free_cuda()
    default_tf32()  # the bf16 variants run as the pipeline runs them (their fp32 convolutions may use TF32)
    capture = Capture(model)
    for policy in VARIANTS:  # "on" last: its intermediates feed section 2
        if policy == "official" and device.type != "cuda" and not args.cpu_autocast:
            continue  # CPU autocast keeps norms in bf16: not the official CUDA policy
        for t in args.timesteps:
            with variant(policy, model):
                out, s = sync_time(device, lambda t=t: run_model(model, inputs, t, torch.bfloat16))
            ref = {k: v.to(device) for k, v in refs[t].items()}
            rows += e2e_rows(out, ref, "fp32, bf16-rounded weights", policy, t)
            if args.unrounded:
                keep[(policy, t)] = to_host(out)
            print(f"  bf16 {policy} t={t}: {s:.1f} s", flush=True)
            del out, ref
    model.decode_geometry = capture.orig  # type: ignore[method-assign]
    return capture.args, fp32_s


def unrounded(model, inputs, args, device, rows, keep: dict) -> None:
    """The fp32 reference again with the seeded weights not rounded through bf16 (storage error included)."""
    model.float()
    free_cuda()
    strict_fp32()
    seeded_randomize(model, args.seed, key=weight_key)
    for t in args.timesteps:
        ref = run_model(model, inputs, t, torch.float32)
        for (policy, tk), got in keep.items():
            if tk == t:
                rows += e2e_rows(
                    {k: v.to(device) for k, v in got.items()}, ref, "fp32, un-rounded weights", policy, t
                )


def heads_section(heads: FantasyWorldModel, captured, plucker, args, device, rows, notes) -> None:
    """Section 2: bf16 heads and pose encoder vs the same modules computing in fp32, time and memory."""
    inter, token_hw, image_hw = captured
    # the same bf16 values for every variant (unused layers are zero-stride stand-ins: leave them)
    inter = [t if 0 in t.stride() else t.bfloat16() for t in inter]
    plucker = plucker.to(torch.bfloat16)

    def heads_out() -> dict:
        geo = heads.decode_geometry(inter, token_hw, image_hw)
        res = {k: getattr(geo, k) for k in OUTPUTS[1:6]}
        res["camera"] = heads.encode_camera(plucker)
        return res

    with torch.no_grad():
        strict_fp32()
        with precision_policy("fp32"):
            ref = heads_out()
        default_tf32()  # the variants run as the pipeline runs them
        variants: list[tuple[str, contextlib.AbstractContextManager]] = [
            ("fp32", precision_policy("fp32")),
            ("plain", precision_policy("plain")),
            ("on", precision_policy("on")),
        ]
        if device.type == "cuda" or args.cpu_autocast:
            variants.append(("autocast", _autocast_plain(device.type)))
        for name, ctx in variants:
            try:
                with ctx:
                    out = heads_out()
                    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
                    geo_t = measure(
                        lambda: heads.decode_geometry(inter, token_hw, image_hw), device, 1, args.reps
                    )
                    cam_t = measure(lambda: heads.encode_camera(plucker), device, 1, args.reps)
            except RuntimeError as exc:  # keep the other variants' numbers
                notes.append(f"heads variant {name} failed: {str(exc).splitlines()[0][:200]}")
                continue
            for k in OUTPUTS[1:]:
                rows.append(
                    {
                        "section": "heads",
                        "reference": "same modules computing in fp32 (TF32 off)",
                        "policy": name,
                        "t": args.timesteps[-1],
                        "output": k,
                        "rel": rel(out[k], ref[k]),
                    }
                )
            rows.append(
                {
                    "section": "time",
                    "policy": name,
                    "heads_s": geo_t.median_s,
                    "pose_encoder_s": cam_t.median_s,
                    "heads_extra_peak_gib": max(0.0, geo_t.peak_gib - base / 1024**3),
                    "pose_encoder_extra_peak_gib": max(0.0, cam_t.peak_gib - base / 1024**3),
                }
            )
            del out


@contextlib.contextmanager
def _autocast_plain(device_type: str):
    """Ours under autocast in bf16 with our policy off: on CUDA, the official code's head policy (CPU
    autocast keeps norms in bf16, so there it is only a smoke test of the code path)."""
    with precision_policy("plain"), torch.autocast(device_type, dtype=torch.bfloat16):
        yield


def seeded_intermediates(cfg: FantasyWorldConfig, size: VideoSize, device: torch.device, seed: int):
    """Stand-in for captured features when the fp32 model does not fit: seeded, bf16, real shapes."""
    f, h, w = size.latent()
    th, tw = h // cfg.dit.patch_size[1], w // cfg.dit.patch_size[2]
    p = cfg.num_special + th * tw
    g = torch.Generator(device=device).manual_seed(seed)
    inter = [
        torch.randn(1, f, p, 2 * cfg.geo_dim, generator=g, device=device).bfloat16()
        for _ in range(cfg.num_irg)
    ]
    return inter, (th, tw), (size.height, size.width)


def table(rows: list[dict]) -> str:
    lines = []
    for section, ref in (
        ("e2e", "fp32, bf16-rounded weights"),
        ("e2e", "fp32, un-rounded weights"),
        ("heads", None),
    ):
        sel = [r for r in rows if r["section"] == section and (ref is None or r["reference"] == ref)]
        if not sel:
            continue
        policies = list(dict.fromkeys(r["policy"] for r in sel))
        ts = list(dict.fromkeys(r["t"] for r in sel))
        head = f"[{section}] vs {sel[0]['reference']}  (t = {' / '.join(str(t) for t in ts)})"
        lines += ["", head, f"{'output':18s}" + "".join(f"{p:>22s}" for p in policies)]
        if section == "e2e":
            lines[-1] += f"{'issue 18 official bf16':>26s}"
        for k in OUTPUTS:
            cells = []
            for p in policies:
                vals = [r["rel"] for r in sel if r["policy"] == p and r["output"] == k]
                cells.append(" / ".join(f"{v:.2e}" for v in vals) if vals else "-")
            if all(c == "-" for c in cells):
                continue
            line = f"{k:18s}" + "".join(f"{c:>22s}" for c in cells)
            if section == "e2e" and k in OFFICIAL_BF16:
                line += f"{' / '.join(f'{v:.2e}' for v in OFFICIAL_BF16[k]):>26s}"
            lines.append(line)
    times = [r for r in rows if r["section"] == "time"]
    if times:
        lines += ["", "[time] heads (depth+points+camera) and pose encoder, bf16 weights, median", ""]
        lines.append(
            f"{'policy':10s}{'heads s':>10s}{'encoder s':>11s}{'heads +GiB':>12s}{'encoder +GiB':>14s}"
        )
        for r in times:
            lines.append(
                f"{r['policy']:10s}{r['heads_s']:10.3f}{r['pose_encoder_s']:11.4f}"
                f"{r['heads_extra_peak_gib']:12.2f}{r['pose_encoder_extra_peak_gib']:14.2f}"
            )
    return "\n".join(lines)


class HeadsOnly(torch.nn.Module):
    """The heads and pose encoder of a config without the 14B trunk (the fallback when fp32 does not fit);
    parameter names match the full model's, so the seeded weights are the same."""

    decode_geometry = FantasyWorldModel.decode_geometry
    encode_camera = FantasyWorldModel.encode_camera

    def __init__(self, cfg: FantasyWorldConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.depth_head = DPTHead(cfg.depth_head)
        self.point_head = DPTHead(cfg.point_head)
        self.camera_head = CameraHead(cfg.camera_head)
        self.pose_encoder = CameraPoseEncoder(
            in_channels=cfg.plucker_channels,
            downscale=cfg.pose_downscale,
            mid_dim=cfg.pose_in_dim,
            embed_dim=cfg.pose_embed_dim,
            fc_hidden=cfg.pose_fc_hidden,
            context_dim=cfg.plucker_fea_dim,
            patch_size=cfg.dit.patch_size,
            groups=cfg.pose_groups,
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for precision.json")
    p.add_argument(
        "--small", action="store_true", help="toy widths and 5x32x48 on the CPU (checks the script)"
    )
    p.add_argument("--device", default=None, help="default: cuda if available (cpu with --small)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timesteps", type=float, nargs="+", default=[500.0, 92.5])
    p.add_argument("--reps", type=int, default=3, help="timed repetitions per variant")
    p.add_argument("--unrounded", action="store_true", help="also an fp32 reference with un-rounded weights")
    p.add_argument("--heads-only", action="store_true", help="skip section 1 (seeded random intermediates)")
    p.add_argument("--cpu-autocast", action="store_true", help="run the autocast variant on the CPU too")
    p.add_argument("--budget", type=float, default=230.0, help="seconds; --unrounded is skipped past it")
    args = p.parse_args(argv)
    started = time.perf_counter()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.small else "cpu"))
    strict_fp32()
    cfg = reduced(fantasy_world_config("wan2.1-i2v-14b")) if args.small else fw14_config(False)
    size = SMALL_SIZE if args.small else I2V_SIZE
    if args.small:  # toy sizes are dispatch-bound: one thread avoids spin-waits on a shared CPU
        args.reps = min(args.reps, 1)
        torch.set_num_threads(1)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    notes: list[str] = []
    print(f"precision bench: {cfg.name} at {size.frames}x{size.height}x{size.width} on {device}", flush=True)
    inputs = make_inputs(cfg, size, device, args.seed + 1)
    mode, captured, model, keep = "full model", None, None, {}
    fp32_s: list[float] = []
    if not args.heads_only:
        try:
            model, s = sync_time(device, lambda: build(lambda: FantasyWorldModel(cfg), device, torch.float32))
            seeded_randomize(model, args.seed, key=weight_key, round_to=torch.bfloat16)
            print(f"  built the fp32 model in {s:.1f} s", flush=True)
            captured, fp32_s = end_to_end(model, inputs, args, device, rows, keep)
        except torch.cuda.OutOfMemoryError:
            mode = "heads only on seeded random intermediates: the fp32 model did not fit this card"
            model = captured = None
            rows.clear()
            keep.clear()
        free_cuda()  # after the except block, whose traceback holds the failed frames' tensors
    else:
        mode = "heads only on seeded random intermediates (--heads-only)"
    if captured is None:
        notes.append(mode)
        print(f"  {mode}", flush=True)
        model = build(lambda: HeadsOnly(cfg), device, torch.float32)
        seeded_randomize(model, args.seed, key=weight_key, round_to=torch.bfloat16)
        model = model.to(torch.bfloat16)
        captured = seeded_intermediates(cfg, size, device, args.seed + 2)
    heads_section(model, captured, inputs["plucker"], args, device, rows, notes)
    del captured
    if keep:
        projected = 1.3 * sum(fp32_s) + 30
        if time.perf_counter() - started + projected > args.budget:
            notes.append(
                f"un-rounded reference skipped: ~{projected:.0f} s more would pass --budget {args.budget:.0f}"
            )
        else:
            unrounded(model, inputs, args, device, rows, keep)
    result = {
        "model": cfg.name,
        "size": dataclasses.asdict(size),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "mode": mode,
        "notes": notes,
        "seconds": time.perf_counter() - started,
        "rows": rows,
    }
    (out_dir / "precision.json").write_text(json.dumps(result, indent=1))
    print(table(rows))
    for n in notes:
        print(f"note: {n}")
    print(f"total {result['seconds']:.0f} s on {result['device']}; rows in {out_dir / 'precision.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
