"""Run the GPU benchmark without the CLI wiring: ``python bench/gpu_bench.py [bench options]``.

Same options as ``python -m fantasy_world bench`` (see ``bench/harness/cli.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness.cli import add_bench_parser, run_bench  # noqa: E402
from fantasy_world.errors import FantasyWorldError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/gpu_bench.py")
    sub = parser.add_subparsers(dest="command", required=True)
    add_bench_parser(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run_bench(args)
    except FantasyWorldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
