"""``train`` and ``eval`` subcommands (wired into ``python -m fantasy_world``; also runnable alone).

    python -m fantasy_world train --phases vae,t2v,stage1,stage2 --out runs/tiny [--time-budget 300]
    python -m fantasy_world train --phases stage1 --init runs/tiny/t2v/final --out runs/s1 --steps 2000
    torchrun --nproc_per_node=2 -m fantasy_world train --phases stage2 --init ... --out ...
    python -m fantasy_world eval --suite synthetic --json out.json [--model tiny] [--clips 64]

``cli.py`` adds them with :func:`add_train_parser` / :func:`add_eval_parser` and dispatches to
:func:`run_train` / :func:`run_eval`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from fantasy_world.errors import FantasyWorldError, InputError

log = logging.getLogger(__name__)

_PHASE_ALIASES = {
    "vae": "vae",
    "t2v": "t2v",
    "stage1": "stage1",
    "stage2": "stage2",
    "1": "stage1",
    "2": "stage2",
}


def add_train_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train", help="train the VAE, the base DiT, or geometry stage 1 / 2 (torchrun for GPUs)"
    )
    p.add_argument("--phases", default="stage1", help="comma list of vae, t2v, stage1, stage2 (run in order)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, metrics.jsonl, <phase>/final")
    p.add_argument("--init", default=None, help="model folder to start from (default: fresh tiny weights)")
    p.add_argument("--steps", type=int, default=None, help="max optimiser steps per phase")
    p.add_argument("--time-budget", type=float, default=None, help="seconds per phase")
    p.add_argument("--batch-size", type=int, default=None, help="clips per process and step")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=192)
    p.add_argument(
        "--bank-size", type=int, default=0, help="pre-render this many clips on the device (0: stream)"
    )
    p.add_argument(
        "--seed-offset", type=int, default=0, help="first training world (index into the train seeds)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--ckpt-every", type=int, default=0)
    p.add_argument("--sample-every", type=int, default=0)
    p.add_argument("--export-dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    return p


def add_eval_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("eval", help="metrics of a model on held-out worlds, as JSON")
    p.add_argument("--suite", default="synthetic", choices=["synthetic"])
    p.add_argument("--json", required=True, help="output file")
    p.add_argument("--model", default="tiny")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--clips", type=int, default=64)
    p.add_argument("--start", type=int, default=0, help="first held-out world")
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--no-generation", action="store_true")
    p.add_argument("--no-reconstruction", action="store_true")
    p.add_argument("--no-vae", action="store_true")
    return p


def _phases(text: str) -> tuple[str, ...]:
    out = []
    for item in text.split(","):
        key = item.strip().lower()
        if key not in _PHASE_ALIASES:
            raise InputError(f"--phases: unknown phase {item!r}; expected vae, t2v, stage1 or stage2")
        out.append(_PHASE_ALIASES[key])
    return tuple(out)


def build_recipe_config(args: argparse.Namespace):  # noqa: ANN201 - RecipeConfig (lazy import)
    """A :class:`RecipeConfig` from the ``train`` arguments (unset options keep the recipe's values)."""
    from fantasy_world.training.config import DataConfig
    from fantasy_world.training.recipe import RecipeConfig

    data = DataConfig(
        num_frames=args.frames,
        height=args.height,
        width=args.width,
        bank_size=args.bank_size,
        bank_time_s=None,
        seed_offset=args.seed_offset,
    )
    cfg = RecipeConfig(
        out_dir=args.out,
        phases=_phases(args.phases),
        init=args.init,
        seed=args.seed,
        data=data,
        export_dtype=args.export_dtype,
        samples=args.sample_every > 0,
    )
    for phase in cfg.phases:
        tc = cfg.phase(phase)
        changes: dict[str, object] = {
            "device": args.device,
            "precision": args.precision,
            "grad_checkpointing": args.grad_checkpointing,
            "log_every": args.log_every,
            "ckpt_every": args.ckpt_every,
            "sample_every": args.sample_every,
            "data": dataclasses.replace(data, batch_size=args.batch_size or tc.data.batch_size),
        }
        if args.steps is not None:
            changes["max_steps"] = args.steps
            changes["time_budget_s"] = args.time_budget
        elif args.time_budget is not None:
            changes["time_budget_s"] = args.time_budget
        if args.lr is not None:
            changes["optim"] = dataclasses.replace(tc.optim, lr=args.lr)
        setattr(cfg, phase, dataclasses.replace(tc, **changes))
    return cfg


def run_train(args: argparse.Namespace) -> int:
    """Run the requested phases; each leaves ``<out>/<phase>/final`` (a model folder) behind."""
    from fantasy_world.training.distributed import init_distributed, shutdown
    from fantasy_world.training.recipe import Recipe

    cfg = build_recipe_config(args)
    info = init_distributed(args.device)
    try:
        summary = Recipe(cfg, info).run()
    finally:
        shutdown(info)
    if info.is_main:
        for phase, result in summary["phases"].items():
            print(
                f"{phase}: {result['steps']} steps in {result['seconds']:.0f}s, loss {result.get('loss', math.nan):.4g}"
            )
        print(f"model folder: {Path(cfg.out_dir) / cfg.phases[-1] / 'final'}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate a model on the synthetic suite, write JSON and print the targets table."""
    from fantasy_world.evaluation.suite import SuiteConfig, run_synthetic_suite
    from fantasy_world.pipeline import FantasyWorldPipeline

    if args.clips < 1:
        raise InputError(f"--clips={args.clips}: expected at least 1")
    pipe = FantasyWorldPipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    cfg = SuiteConfig(
        clips=args.clips,
        start=args.start,
        frames=args.frames,
        height=args.height,
        width=args.width,
        steps=args.steps,
        guidance=args.guidance,
        generation=not args.no_generation,
        reconstruction=not args.no_reconstruction,
        vae=not args.no_vae,
    )
    result = run_synthetic_suite(pipe, cfg)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    for key, row in result["targets"].items():
        status = {True: "pass", False: "FAIL", None: "n/a"}[row["pass"]]
        value = row["value"]
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{key:32s} {shown:>10s}  (target {row['target']})  {status}")
    print(f"wrote {out.resolve()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry: ``python -m fantasy_world.cli_train train|eval ...``."""
    parser = argparse.ArgumentParser(prog="python -m fantasy_world.cli_train")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_eval_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return run_train(args) if args.command == "train" else run_eval(args)
    except FantasyWorldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
