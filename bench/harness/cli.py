"""``python -m fantasy_world bench``: GPU timings of our models against diffusers and the matmul ceiling.

Wire-up in ``fantasy_world/cli.py``: ``add_bench_parser(sub)`` in ``build_parser`` and ``run_bench`` in the
handler table. ``--small --device cpu`` runs every section on toy configs (a smoke test, no GPU needed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fantasy_world.errors import InputError


def add_bench_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from bench.harness import ALL_SECTIONS, DEFAULT_SECTIONS  # no torch import at parse time

    p = sub.add_parser("bench", help="GPU benchmark: ours vs diffusers vs the measured matmul ceiling")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default: cuda)")
    p.add_argument("--small", action="store_true", help="toy configs (CPU smoke test of every section)")
    p.add_argument("--out", default="bench/out", help="folder for results.json and table.md")
    p.add_argument("--budget", type=float, default=510.0, help="time guard in seconds (default 510)")
    p.add_argument(
        "--sections",
        default=",".join(DEFAULT_SECTIONS),
        help=f"comma-separated subset of {','.join(ALL_SECTIONS)} in run order, or 'issue12' for the "
        f"like-for-like sections (default: {','.join(DEFAULT_SECTIONS)})",
    )
    p.add_argument(
        "--fp8",
        action="store_true",
        help="also time the 14B forwards after fantasy_world.quant.selection.quantize_model (section fp8; "
        "skipped with a note when that module is missing)",
    )
    p.add_argument("--steps", type=int, default=4, help="guided steps actually run in 'generate' (>= 3)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions per measurement")
    p.add_argument(
        "--results-md", default=None, help="also write the table into this RESULTS.md's GPU section"
    )
    p.add_argument(
        "--wheels",
        default=None,
        help="bare GPU node: install these carried wheels first (folder of .whl, e.g. .train_state/whl)",
    )
    p.add_argument(
        "--text-pack",
        default=None,
        help="bare GPU node: rebuild the tiny model's MiniLM text encoder from this pack (.train_state/minilm_pack)",
    )
    return p


def _options(args: argparse.Namespace):
    from bench.harness import ALL_SECTIONS, ISSUE12_SECTIONS
    from bench.harness.suite import BenchOptions

    names: list[str] = []
    for s in args.sections.split(","):
        names += list(ISSUE12_SECTIONS) if s.strip() == "issue12" else [s.strip()] if s.strip() else []
    if getattr(args, "fp8", False) and "fp8" not in names:
        names.append("fp8")
    sections = tuple(dict.fromkeys(names))
    bad = [s for s in sections if s not in ALL_SECTIONS]
    if bad:
        raise InputError(f"--sections {','.join(bad)}: expected names from {','.join(ALL_SECTIONS)}")
    if args.steps < 3 or args.reps < 1 or args.budget <= 0:
        raise InputError("--steps must be >= 3, --reps >= 1 and --budget > 0")
    if not args.device.startswith(("cuda", "cpu")):
        raise InputError(f"--device {args.device!r}: expected cuda, cuda:N or cpu")
    return BenchOptions(
        device=args.device,
        small=args.small,
        out_dir=Path(args.out),
        budget_s=args.budget,
        sections=sections,
        gen_steps=args.steps,
        reps=args.reps,
    )


def markdown_report(meta: dict, table: str) -> str:
    """The text that goes under "## GPU performance": card and software, then the table."""
    card = meta.get("card", "?")
    lines = [
        f"Card: **{card}** ({meta.get('memory_gib', '?')} GiB), torch {meta.get('torch')}, CUDA {meta.get('cuda')}, "
        f"cuDNN {meta.get('cudnn')}, diffusers {meta.get('diffusers')}; run {meta.get('time')}, "
        f"{meta.get('wall_s')} s. Measured bf16 matmul ceiling: {meta.get('ceiling_tflops')} TFLOP/s; "
        f"copy {meta.get('copy_tb_s')} TB/s. Fastest attention backend for ours: {meta.get('best_backend')}.",
        "",
        "Weights are seeded random values at the real sizes (the same values in ours and diffusers). "
        "Times are medians of CUDA-event timings after a warm-up; peak GiB is the allocator's peak during the "
        "timed calls (weights included). FLOPs: `bench/harness/flops.py` (matmul 2·M·N·K, attention 4·Lq·Lk·d).",
        "",
        table,
    ]
    return "\n".join(lines)


def run_bench(args: argparse.Namespace) -> int:
    import torch

    from bench.harness.record import write_results_section
    from bench.harness.suite import run_suite

    opts = _options(args)
    if getattr(args, "wheels", None) or getattr(args, "text_pack", None):
        from bench.train_device_env import prepare_node

        prepare_node(args.text_pack, args.wheels)
        from fantasy_world.models.wan import flash3

        flash3.load()  # an FA3 build may have just been unpacked
    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device here; use --device cpu --small for a smoke test")
    rec = run_suite(opts)
    report = markdown_report(rec.meta, rec.table())
    (opts.out_dir / "table.md").write_text(report + "\n")
    if args.results_md:
        write_results_section(Path(args.results_md), report)
    print(report)
    print(json.dumps({"results": str(opts.out_dir / "results.json")}))
    return 0
