"""Run ``python -m fantasy_world eval`` on a bare GPU node (text pack + carried wheels, see train_device_env).

    python bench/train_eval.py --text-pack .train_state/minilm_pack --wheels .train_state/whl -- \
        eval --suite synthetic --json $OUT/eval.json --model /tmp/run/stage2/final
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text-pack", default=None)
    p.add_argument("--wheels", default=None)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of fantasy_world.cli_train after --")
    args = p.parse_args()
    from train_device_env import prepare_node

    prepare_node(args.text_pack, args.wheels)
    logging.getLogger("fantasy_world.checkpoints.io").setLevel(logging.WARNING)
    from fantasy_world.cli_train import main as cli_main

    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return cli_main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
