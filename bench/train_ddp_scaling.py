"""Data-parallel training of the tiny model on N GPUs against one GPU (issue 15), with the real trainer.

One launch, ``torchrun --nproc_per_node=N bench/train_ddp_scaling.py --out OUT --budget 300
--text-pack .train_state/minilm_pack``, measures with the recipe's task (default stage 2) and trainer:

1. **throughput**: clips/s of rank 0 alone (no DDP) and of all N ranks under DDP, with the same batch
   per GPU; scaling = N-GPU clips/s ÷ 1-GPU clips/s (target ≥ 0.85 × N);
2. **loss curve**: K steps on one GPU with the global batch (N × b) against K steps on N GPUs with b
   each, same seeds, same bank order (``ClipBank`` deals the global batch, ``Draws`` the global noise);
   max relative loss difference over the K steps (fp32 by default, so the difference is DDP's own);
3. **resume**: the N-GPU run's checkpoint loads into a one-GPU trainer built from a different seed; its
   weights must equal the N-GPU weights exactly, and one more step on one GPU (global batch) must give
   the loss the N-GPU run gives for that step.

CPU smoke test (gloo, 2 processes, tiny sizes; not performance)::

    torchrun --nproc_per_node=2 bench/train_ddp_scaling.py --device cpu --small --out /tmp/ddp
"""

from __future__ import annotations

import os

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast stays off unless the machine says otherwise
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_SCALING = 0.85  # × N


def _sync(device) -> None:  # noqa: ANN001
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Runs:
    """Builds trainers of one phase that share the process's clip bank (rendered once, latents cached)."""

    def __init__(self, args: argparse.Namespace, info) -> None:  # noqa: ANN001
        from fantasy_world.training.config import DataConfig
        from fantasy_world.training.recipe import Recipe, RecipeConfig

        self.args, self.info = args, info
        if args.small:
            data = DataConfig(num_frames=5, height=32, width=48, bank_size=args.bank, refresh_workers=0)
        else:
            data = DataConfig(bank_size=args.bank, refresh_workers=0)
        self.rc = RecipeConfig(out_dir=tempfile.mkdtemp(prefix="ddp_scaling_"), data=data, samples=False)
        recipe = Recipe(self.rc, info)
        t0 = time.perf_counter()
        self.bank = recipe._source(args.batch)  # a ClipBank dealt over this run's N ranks
        self.bank_s = time.perf_counter() - t0
        self.text = recipe.text
        self._latents_cached = False

    def trainer(self, info, batch: int, steps: int, precision: str, seed: int, run_dir: Path):  # noqa: ANN001, ANN201
        """A fresh model (``seed``) and trainer on ``info``'s ranks, ``batch`` clips per rank."""
        from fantasy_world.training.recipe import Recipe
        from fantasy_world.training.trainer import Trainer

        phase = self.args.phase
        tcfg = self.rc.phase(phase)
        tcfg = dataclasses.replace(
            tcfg,
            seed=0,
            compile=self.args.compile and info.device.type == "cuda",
            precision=precision,
            max_steps=steps,
            time_budget_s=None,
            log_every=1,
            ckpt_every=0,
            sample_every=0,
            data=dataclasses.replace(tcfg.data, batch_size=batch),
        )
        recipe = Recipe(dataclasses.replace(self.rc, phases=(phase,), seed=seed), info)
        recipe.text = self.text
        model, vae = recipe._initial()
        model, vae = model.to(info.device), vae.to(info.device)
        self.bank.rank, self.bank.world_size = info.rank, info.world_size
        self.bank.reset(batch)
        if phase != "vae" and not self._latents_cached:
            self.bank.cache_latents(lambda v: vae.encode(v))  # the initial VAE is the same for every seed
            self._latents_cached = True
        task = recipe._task(phase, tcfg, model, vae)
        return Trainer(tcfg, task, self.bank, info, run_dir)


def throughput(runs: Runs, info, steps: int, warmup: int) -> float:  # noqa: ANN001
    """Clips/s over ``steps`` timed steps (all ranks of ``info`` together)."""
    with tempfile.TemporaryDirectory() as tmp:
        tr = runs.trainer(info, runs.args.batch, 10_000, runs.args.precision, 0, Path(tmp))
        for _ in range(warmup):
            tr.train_step()
        _sync(info.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            tr.train_step()
        _sync(info.device)
        return steps * runs.args.batch * info.world_size / (time.perf_counter() - t0)


def run_steps(tr, steps: int) -> list[float]:  # noqa: ANN001
    """``steps`` optimiser steps; the loss of each, averaged over the ranks (the global-batch loss)."""
    from fantasy_world.training.distributed import all_reduce_mean

    return [float(all_reduce_mean(tr.train_step().float(), tr.info)) for _ in range(steps)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK) or cpu (gloo smoke test)")
    p.add_argument("--phase", default="stage2", choices=["t2v", "stage1", "stage2"])
    p.add_argument("--batch", type=int, default=16, help="clips per GPU")
    p.add_argument("--steps", type=int, default=20, help="timed steps per throughput run")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--loss-steps", type=int, default=20, help="K: steps of the loss-curve comparison")
    p.add_argument("--loss-batch", type=int, default=4, help="clips per GPU in the loss-curve runs")
    p.add_argument("--loss-precision", default="fp32", choices=["fp32", "bf16", "auto"])
    p.add_argument("--precision", default="auto", choices=["fp32", "bf16", "auto"], help="throughput runs")
    p.add_argument("--bank", type=int, default=128, help="clips in the bank (raised to one global batch)")
    p.add_argument("--compile", action="store_true", help="regional compile in the throughput runs")
    p.add_argument(
        "--budget", type=float, default=300.0, help="seconds; later sections are skipped when short"
    )
    p.add_argument("--text-pack", default=None)
    p.add_argument("--wheels", default=None)
    p.add_argument("--small", action="store_true", help="CPU smoke test: tiny clips, batch 1, few steps")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    from train_device_env import prepare_node

    prepare_node(args.text_pack, args.wheels)
    import torch
    import torch.distributed as dist

    from fantasy_world.training.distributed import DistInfo, init_distributed, shutdown

    if args.small:
        args.batch, args.steps, args.warmup, args.loss_steps, args.loss_batch = 1, 2, 1, 3, 1
        args.bank = max(4, 2 * int(os.environ.get("WORLD_SIZE", "1")))
    deadline = time.monotonic() + args.budget
    info = init_distributed(args.device)
    args.bank = max(args.bank, info.world_size * max(args.batch, args.loss_batch))
    if not info.enabled:
        raise SystemExit("error: launch with torchrun --nproc_per_node=N (N >= 2)")
    if info.device.type == "cpu":
        torch.set_num_threads(1)
    solo = DistInfo(0, 1, info.local_rank, info.device)  # rank 0 alone, no DDP
    n = info.world_size
    runs = Runs(args, info)
    rows: dict[str, object] = {
        "world_size": n,
        "device": info.device.type,
        "card": torch.cuda.get_device_name(info.device) if info.device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "phase": args.phase,
        "bank_clips": len(runs.bank),
        "bank_render_s": round(runs.bank_s, 2),
        "small": args.small,
    }
    out = Path(args.out)

    def save() -> None:
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "train_ddp_scaling.json").write_text(json.dumps(rows, indent=1))

    def left() -> float:
        t = torch.tensor([deadline - time.monotonic()], device=info.device)
        dist.broadcast(t, src=0)
        return float(t.item())

    # 1. throughput, same batch per GPU
    one = throughput(runs, solo, args.steps, args.warmup) if info.is_main else 0.0
    dist.barrier()
    many = throughput(runs, info, args.steps, args.warmup)
    scaling = many / one if info.is_main else 0.0
    rows.update(
        {
            "batch_per_gpu": args.batch,
            "precision": args.precision,
            "clips_per_s_1gpu": one,
            f"clips_per_s_{n}gpu": many,
            "scaling": scaling,
            "scaling_target": TARGET_SCALING * n,
            "scaling_met": scaling >= TARGET_SCALING * n,
        }
    )
    save()

    # 2. loss curve at the same global batch, 3. resume on one GPU
    if left() > (0 if args.small else 60):
        k, b = args.loss_steps, args.loss_batch
        root = Path(tempfile.mkdtemp(prefix="ddp_loss_"))
        ref = None
        if info.is_main:
            # every run is configured for k + 1 steps (same LR schedule); the (k+1)-th step of this
            # uninterrupted run is the reference for the step resumed from the N-GPU checkpoint
            tr1 = runs.trainer(solo, b * n, k + 1, args.loss_precision, 0, root / "one")
            ref = run_steps(tr1, k + 1)
            tr1 = None
        dist.barrier()
        trn = runs.trainer(info, b, k + 1, args.loss_precision, 0, root / "many")
        curve = run_steps(trn, k)
        trn.save_checkpoint(root / "many" / "checkpoint")  # rank 0 writes
        dist.barrier()
        if info.is_main:
            assert ref is not None
            diffs = [abs(a - r) / max(abs(r), 1e-12) for a, r in zip(curve, ref)]
            want = {k2: v.detach().clone() for k2, v in trn.task.saved.state_dict().items()}
            tr_res = runs.trainer(solo, b * n, k + 1, args.loss_precision, 12345, root / "resumed")
            before = sum(
                float((v.float() - want[k2].float()).abs().max())
                for k2, v in tr_res.task.saved.state_dict().items()
            )
            tr_res.resume(root / "many" / "checkpoint")
            got = tr_res.task.saved.state_dict()
            identical = all(torch.equal(got[k2], want[k2]) for k2 in want) and set(got) == set(want)
            loss_next = float(tr_res.train_step())
            rows.update(
                {
                    "loss_steps": k,
                    "loss_batch_per_gpu": b,
                    "loss_global_batch": b * n,
                    "loss_precision": args.loss_precision,
                    "loss_1gpu": ref[:k],
                    f"loss_{n}gpu": curve,
                    "loss_max_rel_diff": max(diffs),
                    "resume_fresh_weights_differed": before > 0,
                    "resume_weights_identical": identical,
                    "resume_step": tr_res.step,
                    "resume_loss_next_step_1gpu": loss_next,
                    "uninterrupted_1gpu_loss_at_that_step": ref[k],
                    "resume_next_step_rel_diff": abs(loss_next - ref[k]) / max(abs(ref[k]), 1e-12),
                }
            )
            if not identical:
                print("error: weights loaded on one GPU differ from the N-GPU weights", file=sys.stderr)
        dist.barrier()
    else:
        rows["loss_curve"] = "skipped: budget"
    rows["seconds"] = round(args.budget - (deadline - time.monotonic()), 1)
    save()
    if info.is_main:
        print(json.dumps({k2: v for k2, v in rows.items() if not isinstance(v, list)}, indent=1))
        print("\n| measurement | value | target |\n|---|---|---|")
        print(f"| clips/s, 1 GPU, batch {args.batch} | {one:.2f} | |")
        print(f"| clips/s, {n} GPUs, batch {args.batch} each | {many:.2f} | |")
        print(f"| scaling | {scaling:.2f}x | >= {TARGET_SCALING * n:.2f}x |")
        if "loss_max_rel_diff" in rows:
            print(
                f"| loss curve max rel. diff over {rows['loss_steps']} steps | {rows['loss_max_rel_diff']:.2e} | |"
            )
            print(
                f"| {n}-GPU checkpoint loads on 1 GPU with identical weights | {rows['resume_weights_identical']} | True |"
            )
            print(f"| resumed step vs uninterrupted, rel. diff | {rows['resume_next_step_rel_diff']:.2e} | |")
    ok = rows.get("resume_weights_identical", True)
    shutdown(info)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
