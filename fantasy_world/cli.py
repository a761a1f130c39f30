"""``python -m fantasy_world``: generate, reconstruct and camera-path commands.

User mistakes print one line ``error: ...`` and exit with code 2; there is never a traceback for them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from fantasy_world.errors import FantasyWorldError, GenerationCancelled, InputError
from fantasy_world.limits import MAX_CAMERA_FRAMES

log = logging.getLogger("fantasy_world")

EXIT_USER_ERROR = 2


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="tiny", help="'tiny' (bundled) or a model folder (default: tiny)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32")
    add_speed_switches(p)


def add_speed_switches(p: argparse.ArgumentParser) -> None:
    """--no-compile, --keep-encoders, --fp8, --fp8-attention: shared by the CLI and ``python app.py``."""
    p.add_argument(
        "--no-compile",
        action="store_true",
        help="run eagerly (on CUDA the model's blocks are compiled by default; the first run compiles)",
    )
    p.add_argument(
        "--keep-encoders",
        action="store_true",
        help="keep the text and image encoders on the GPU (by default they leave it once used)",
    )
    p.add_argument(
        "--fp8",
        action="store_true",
        help="FP8 (e4m3) linear layers in the DiT and geometry branch: half the weight memory, faster GEMMs "
        "on sm89+ GPUs (emulated on the CPU); see README 'FP8 mode'",
    )
    p.add_argument(
        "--fp8-attention",
        action="store_true",
        help="--fp8 and FP8 attention too, where FlashAttention-3 runs (about 7%% faster on an H200, with a "
        "larger error; see README 'FP8 mode')",
    )


def _add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-points", type=int, default=300_000, help="cap of points.ply / scene.glb (default 300000)"
    )
    p.add_argument(
        "--conf-percentile",
        type=float,
        default=20.0,
        help="drop this percentage of least-confident points (default 20)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fantasy_world", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="prompt (+ start image) + camera path → video and geometry bundle")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative-prompt", default=None)
    gen.add_argument("--camera", default="orbit", help="preset name (orbit, dolly_in, ...) or a camera file")
    gen.add_argument("--image", default=None, help="start image (image-to-world models)")
    gen.add_argument(
        "--end-image",
        default=None,
        help="last frame (optional; first/last-frame models such as wan2.2-fun-a14b)",
    )
    gen.add_argument("--frames", type=int, default=None, help="1+4k video frames")
    gen.add_argument("--height", type=int, default=None)
    gen.add_argument("--width", type=int, default=None)
    gen.add_argument("--steps", type=int, default=None)
    gen.add_argument("--guidance", type=float, default=None)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument(
        "--scene-scale",
        type=float,
        default=1.0,
        help="divide camera-file translations by this (scene units per file unit)",
    )
    gen.add_argument("--out", required=True, help="output folder for the bundle")
    gen.add_argument(
        "--gpus",
        type=int,
        default=None,
        help="GPUs to use: 2 runs the two guidance passes on two GPUs (default: 1, or torchrun's world size)",
    )
    _add_model_args(gen)
    _add_export_args(gen)

    rec = sub.add_parser("reconstruct", help="depth, points and cameras of an existing video")
    rec.add_argument("--video", required=True)
    rec.add_argument("--out", required=True)
    rec.add_argument("--prompt", default="", help="optional description of the video")
    rec.add_argument("--frames", type=int, default=None, help="use the first N frames (1+4k)")
    _add_model_args(rec)
    _add_export_args(rec)

    cam = sub.add_parser("camera", help="make a camera path from a preset or convert a camera file")
    src = cam.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="preset name")
    src.add_argument("--input", help="camera file to convert (WorldScore, RE10K, nerfstudio or ours)")
    cam.add_argument("--frames", type=int, required=True)
    cam.add_argument("--out", required=True)
    cam.add_argument("--format", default="native", choices=["native", "worldscore", "re10k", "nerfstudio"])
    cam.add_argument("--width", type=int, default=832)
    cam.add_argument("--height", type=int, default=480)

    from fantasy_world.cli_train import add_eval_parser, add_train_parser

    add_train_parser(sub)
    add_eval_parser(sub)
    harness = _bench_harness()
    if harness is not None:
        harness.add_bench_parser(sub)
    else:
        sub.add_parser("bench", help="GPU benchmark (needs a repository checkout: bench/ is not installed)")
    return parser


def _bench_harness() -> ModuleType | None:
    """``bench.harness.cli`` from the repository checkout this package runs from, or None when installed.

    The benchmark harness is repository tooling (``bench/``), not part of the installed package.
    """
    try:
        return importlib.import_module("bench.harness.cli")
    except ModuleNotFoundError as exc:
        if exc.name not in ("bench", "bench.harness", "bench.harness.cli"):
            raise
    root = Path(__file__).resolve().parents[1]
    if not (root / "bench" / "harness" / "cli.py").is_file():
        return None
    sys.path.insert(0, str(root))
    return importlib.import_module("bench.harness.cli")


def _check_output_args(args: argparse.Namespace) -> None:
    """Export options and the output folder, checked before any model loads (not after a long run)."""
    if args.max_points < 0:
        raise InputError(f"--max-points {args.max_points}: expected a non-negative number of points")
    if not math.isfinite(args.conf_percentile) or not 0.0 <= args.conf_percentile <= 100.0:
        raise InputError(f"--conf-percentile {args.conf_percentile}: expected a percentage in [0, 100]")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {args.out}: exists and is not a folder; expected a folder for the bundle")


def _load_pipeline(args: argparse.Namespace):  # noqa: ANN202 - FantasyWorldPipeline (imported lazily)
    from fantasy_world.pipeline import FantasyWorldPipeline

    return FantasyWorldPipeline.from_pretrained(
        args.model,
        device=args.device,
        dtype=args.dtype,
        compile=not args.no_compile,
        keep_encoders=True if args.keep_encoders else None,
        fp8=args.fp8,
        fp8_attention=args.fp8_attention,
    )


def _run_generate(args: argparse.Namespace) -> int:
    from fantasy_world.accel import launch

    _check_output_args(args)
    gpus = launch.world_size() if args.gpus is None else args.gpus
    launch.check_gpus(gpus, args.device)
    if gpus > 1 and not launch.under_torchrun():
        return launch.relaunch(gpus, args.argv)  # this command again, one process per GPU
    if gpus > 1:
        return _run_generate_rank(args, gpus)
    pipe = _load_pipeline(args)
    return _generate_with(pipe, args)


def _run_generate_rank(args: argparse.Namespace, gpus: int) -> int:
    """One rank of ``generate --gpus N`` (under torchrun): same call everywhere, rank 0 writes and prints."""
    from fantasy_world.accel import distributed_pipeline, launch

    if launch.world_size() != gpus:
        raise InputError(f"--gpus {gpus}: torchrun started {launch.world_size()} processes; expected {gpus}")
    cpu = launch.wants_cpu(args.device)
    try:
        pipe, _ = distributed_pipeline.parallel_pipeline(args.model, dtype=args.dtype, cpu=cpu)
        return _generate_with(pipe, args, main_rank=launch.is_main_rank())
    finally:
        distributed_pipeline.close()


def _generate_with(pipe, args: argparse.Namespace, main_rank: bool = True) -> int:  # noqa: ANN001
    from tqdm import tqdm

    bar = tqdm(total=None, desc="denoising", unit="step", file=sys.stderr, disable=not main_rank)

    def on_step(info) -> None:  # noqa: ANN001 - StepInfo
        bar.total = info.total
        if info.phase != "denoising":  # a notice before the steps: "compiling (once)", or eager fallback
            bar.reset(total=info.total)
            bar.set_description(info.message or info.phase)
            return
        if getattr(bar, "desc", "denoising") != "denoising":  # a disabled bar (ranks > 0) has no desc
            bar.set_description("denoising")
        bar.update(1)

    try:
        world = pipe(
            args.prompt,
            camera=args.camera,
            image=args.image,
            end_image=args.end_image,
            negative_prompt=args.negative_prompt,
            seed=args.seed,
            steps=args.steps,
            guidance=args.guidance,
            frames=args.frames,
            height=args.height,
            width=args.width,
            scene_scale=args.scene_scale,
            on_step=on_step,
        )
    finally:
        bar.close()
    if not main_rank:
        return 0
    paths = world.save(args.out, max_points=args.max_points, conf_percentile=args.conf_percentile)
    t = world.timings
    print(
        f"wrote {len(paths)} files to {Path(args.out).resolve()} "
        f"(denoise {t.get('denoise', 0):.1f}s, decode {t.get('decode', 0):.1f}s, total {t.get('total', 0):.1f}s)"
    )
    return 0


def _run_reconstruct(args: argparse.Namespace) -> int:
    from fantasy_world.geometry.video import read_video
    from fantasy_world.video_input import fit_video

    _check_output_args(args)
    video, fps = read_video(args.video)
    pipe = _load_pipeline(args)
    clip = fit_video(video, pipe.loaded.limits(pipe.device), frames=args.frames, source=args.video)
    world = pipe.reconstruct(clip, prompt=args.prompt, fps=fps)
    paths = world.save(args.out, max_points=args.max_points, conf_percentile=args.conf_percentile)
    print(
        f"wrote {len(paths)} files to {Path(args.out).resolve()} ({clip.shape[0]} frames {clip.shape[1]}x{clip.shape[2]})"
    )
    return 0


def _run_camera(args: argparse.Namespace) -> int:
    from fantasy_world.camera import resolve_camera, save_camera_file

    frames = args.frames
    if not 2 <= frames <= MAX_CAMERA_FRAMES:
        raise InputError(f"--frames {frames}: expected between 2 and {MAX_CAMERA_FRAMES} camera frames")
    source = args.preset if args.preset else Path(args.input)
    traj = resolve_camera(source, frames, args.width, args.height)
    save_camera_file(traj, args.out, format=args.format)
    print(f"wrote {args.format} camera path with {traj.c2w.shape[0]} frames to {Path(args.out).resolve()}")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from fantasy_world.cli_train import run_train

    return run_train(args)


def _run_eval(args: argparse.Namespace) -> int:
    from fantasy_world.cli_train import run_eval

    return run_eval(args)


def _run_bench(args: argparse.Namespace) -> int:
    harness = _bench_harness()
    if harness is None:
        raise InputError(
            "bench: the benchmark harness is repository tooling (bench/) and is not installed; "
            "run `python -m fantasy_world bench` from a clone of the repository"
        )
    return harness.run_bench(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # --gpus N re-launches the same command
    if unknown and not (args.command == "bench" and _bench_harness() is None):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")  # what parse_args would say
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    handlers = {
        "generate": _run_generate,
        "reconstruct": _run_reconstruct,
        "camera": _run_camera,
        "train": _run_train,
        "eval": _run_eval,
        "bench": _run_bench,
    }
    from fantasy_world.accel.launch import finish_rank, is_main_rank

    try:
        return finish_rank(handlers[args.command](args))
    except FantasyWorldError as exc:
        if is_main_rank():  # every rank of a --gpus run finds the same mistake; one line is enough
            print(f"error: {exc}", file=sys.stderr)
        return finish_rank(EXIT_USER_ERROR)
    except GenerationCancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("cancelled: interrupted", file=sys.stderr)
        return 130
