"""Training throughput of the tiny model's four phases: clips/s, model FLOP utilisation, data share.

For each phase (VAE, text-to-video base, stage 1, stage 2) and each setting it trains a few steps of the
real task on a clip bank and reports:

* clips per second (wall clock over timed steps, device synchronised at both ends);
* model FLOP utilisation: the FLOPs of one training step (forward + backward, counted by PyTorch's
  ``FlopCounterMode`` on an eager step: matmuls, convolutions, attention) times steps per second, over
  the bf16 matmul ceiling measured in the same run (8192³, random data);
* the share of step time spent on data (refreshing the bank, assembling the batch, noise and targets),
  measured on extra steps with the device synchronised around the data work.

Settings: ``before`` is the recipe as it trained the previous checkpoint (its batch sizes, the foreach
AdamW, eager); ``after`` is the current recipe (larger batches, fused AdamW, regionally compiled blocks,
and a bank refreshed by CPU render workers). Usage (GPU; ``--small`` runs a CPU smoke test):

    python bench/train_throughput.py --out OUT [--phases vae,t2v,stage1,stage2] [--workers 12]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The previous checkpoint's recipe (commit c8d1d2d): per-phase batch size; foreach AdamW; eager.
BEFORE_BATCH = {"vae": 16, "t2v": 32, "stage1": 16, "stage2": 16}


def matmul_ceiling(device):  # noqa: ANN001, ANN201
    import torch

    if device.type != "cuda":
        return None
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * 10 / (start.elapsed_time(end) / 1e3)


def step_flops(trainer) -> float:  # noqa: ANN001
    """FLOPs of one eager training step (forward + backward) on the trainer's next batch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        trainer.train_step()
    return float(counter.get_total_flops())


def run_setting(phase: str, setting: str, args, rc, bank, info, ceiling) -> dict:  # noqa: ANN001
    import torch

    from fantasy_world.training.recipe import Recipe
    from fantasy_world.training.trainer import Trainer, _param_groups

    tcfg = rc.phase(phase)
    batch = BEFORE_BATCH[phase] if setting == "before" else tcfg.data.batch_size
    if args.small:
        batch = 2
    tcfg = dataclasses.replace(
        tcfg,
        compile=setting == "after" and not args.no_compile and info.device.type == "cuda",
        data=dataclasses.replace(tcfg.data, batch_size=batch),
        time_budget_s=None,
        max_steps=10_000,
        log_every=10_000,
    )
    recipe = Recipe(dataclasses.replace(rc, phases=(phase,)), info)
    recipe.source = bank
    model, vae = recipe._initial()
    dev = info.device
    model, vae = model.to(dev), vae.to(dev)
    source = recipe._source(batch)
    if phase != "vae" and source.latents is None:
        source.cache_latents(lambda v: vae.encode(v))
    task = recipe._task(phase, tcfg, model, vae)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(tcfg, task, source, info, tmp)
        if setting == "before":  # the previous trainer: foreach AdamW
            o = tcfg.optim
            groups = _param_groups(trainer.params, o.weight_decay)
            trainer.optimizer = torch.optim.AdamW(
                groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, foreach=True
            )
        flops = step_flops(trainer) / batch  # per clip; counted eagerly before any compiled call
        sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            trainer.train_step()
        sync()
        warm_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()
        sync()
        timed = time.perf_counter() - t0
        trainer.sync_timing = True
        data0, t1 = trainer.data_seconds, time.perf_counter()
        for _ in range(args.data_steps):
            trainer.train_step()
        sync()
        data_share = (trainer.data_seconds - data0) / (time.perf_counter() - t1)
    clips_s = args.steps * batch / timed
    row = {
        "phase": phase,
        "setting": setting,
        "batch": batch,
        "compile": tcfg.compile,
        "clips_per_s": clips_s,
        "step_s": timed / args.steps,
        "gflop_per_clip": flops / 1e9,
        "tflop_s": flops * clips_s / 1e12,
        "mfu": (flops * clips_s / ceiling) if ceiling else None,
        "data_share": data_share,
        "warmup_s": warm_s,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None,
    }
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--phases", default="vae,t2v,stage1,stage2")
    p.add_argument("--settings", default="before,after")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--data-steps", type=int, default=6)
    p.add_argument("--bank", type=int, default=160, help="clips rendered on the device for the bank")
    p.add_argument("--workers", type=int, default=12, help="CPU render workers refreshing the bank")
    p.add_argument("--text-pack", default=None)
    p.add_argument("--wheels", default=None)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--small", action="store_true", help="CPU smoke test: tiny bank, batch 2, few steps")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    from train_device_env import prepare_node

    prepare_node(args.text_pack, args.wheels)
    import torch

    from fantasy_world.data.render_pool import RenderPool
    from fantasy_world.data.synthetic_dataset import SyntheticWorldDataset
    from fantasy_world.training.config import DataConfig
    from fantasy_world.training.distributed import init_distributed
    from fantasy_world.training.recipe import RecipeConfig
    from fantasy_world.training.sources import RefreshingBank

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    info = init_distributed("auto")
    if args.small:
        args.bank, args.steps, args.warmup, args.data_steps, args.workers = 4, 2, 1, 1, 1
        data = DataConfig(num_frames=5, height=32, width=48, bank_size=args.bank)
    else:
        data = DataConfig(bank_size=args.bank)
    rc = RecipeConfig(out_dir=tempfile.mkdtemp(), data=data, samples=False)
    ceiling = matmul_ceiling(info.device)
    ds = SyntheticWorldDataset("train", data.num_frames, data.height, data.width, device=info.device)
    t0 = time.perf_counter()
    pool = RenderPool(args.workers, (data.num_frames, data.height, data.width), start=5_000_000)
    bank = RefreshingBank(
        lambda i: ds[i], args.bank, 2, info.device, pool, capacity=args.bank * 2, offset=4_000_000
    )
    bank_s = time.perf_counter() - t0
    from fantasy_world.training.recipe import Recipe

    bank.cache_text(Recipe(rc, info).text.encode)
    rows: list[dict] = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    result = {
        "gpu": gpu,
        "torch": torch.__version__,
        "bf16_matmul_ceiling_tflops": ceiling / 1e12 if ceiling else None,
        "bank_render_s": bank_s,
        "bank_clips": args.bank,
        "rows": rows,
    }
    for phase in args.phases.split(","):
        for setting in args.settings.split(","):
            try:
                row = run_setting(phase, setting, args, rc, bank, info, ceiling)
            except Exception as exc:  # noqa: BLE001 - a failed setting is a row, not the end of the run
                row = {"phase": phase, "setting": setting, "error": f"{type(exc).__name__}: {exc}"[:300]}
            rows.append(row)
            print(json.dumps(row), flush=True)
            result["refresh_arrived"] = bank.arrived
            # Written after every row: a run stopped at its time limit keeps what it measured.
            (out / "train_throughput.json").write_text(json.dumps(result, indent=1))
    bank.close()
    print(f"\n{gpu}, bf16 ceiling {result['bf16_matmul_ceiling_tflops']} TFLOP/s, bank {bank_s:.1f}s")
    print("| phase | setting | batch | compile | clips/s | GFLOP/clip | TFLOP/s | MFU | data share |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['phase']} | {r['setting']} | error: {r['error']} |")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        print(
            f"| {r['phase']} | {r['setting']} | {r['batch']} | {r['compile']} | {r['clips_per_s']:.1f} | "
            f"{r['gflop_per_clip']:.1f} | {r['tflop_s']:.1f} | {mfu} | {100 * r['data_share']:.1f}% |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
