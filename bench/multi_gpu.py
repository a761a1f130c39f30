"""Two-GPU benchmark: guidance parallelism and Ulysses sequence parallelism against one GPU.

Run on a 2-GPU machine (``nvidia-h100-x2``)::

    torchrun --nproc_per_node=2 bench/multi_gpu.py --out bench/out2

or on the CPU as a smoke test: ``torchrun --nproc_per_node=2 bench/multi_gpu.py --device cpu --small``.
Rank 0 first times the one-GPU reference while rank 1 waits, then both time the parallel versions; the
outputs are compared with the one-GPU ones (relative error). Results: ``<out>/multi_gpu.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness.bench_models import (  # noqa: E402
    SMALL_SIZE,
    T2V_SIZE,
    build_fantasy,
    build_wan,
    fw13_config,
    plucker_input,
    wan13_config,
    wan_inputs,
)
from bench.harness.timing import measure  # noqa: E402
from fantasy_world.accel.parallel import GuidanceParallel, init_distributed, sequence_parallel_forward  # noqa: E402
from fantasy_world.sampling.guidance import SequentialGuidance  # noqa: E402


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true")
    p.add_argument("--out", default="bench/out2")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    env = init_distributed("gloo" if args.device == "cpu" else None)
    dev, dt, rank = env.device, torch.bfloat16, env.rank
    size = SMALL_SIZE if args.small else T2V_SIZE
    rows: dict[str, object] = {"world_size": env.world_size}
    if dev.type == "cuda":
        rows["card"] = torch.cuda.get_device_name(dev)

    # FantasyWorld 1.3B guided step: one GPU (rank 0 alone) vs guidance parallelism over two.
    cfg = fw13_config(args.small)
    model = build_fantasy(cfg, dev, dt, seed=0)
    inp = wan_inputs(cfg.dit, size, dev, dt)
    neg = wan_inputs(cfg.dit, size, dev, dt, seed=5)["context"]
    with torch.no_grad():
        camera = model.encode_camera(plucker_input(size, dev, dt))
        kw = {"camera": camera, "image_hw": (size.height, size.width)}

        def step(runner) -> torch.Tensor:
            out, v_u = runner(model, inp["x"], inp["t"], inp["context"], neg, want_geo=False, **kw)
            return torch.cat([out.velocity, v_u])

        ref = None
        if rank == 0:
            ref = step(SequentialGuidance())
            rows["fw13 guided step, 1 GPU (s)"] = measure(
                lambda: step(SequentialGuidance()), dev, 1, args.reps
            ).median_s
        dist.barrier()
        par = step(GuidanceParallel())
        t2 = measure(lambda: step(GuidanceParallel()), dev, 1, args.reps).median_s
        if rank == 0:
            rows["fw13 guided step, guidance parallel (s)"] = t2
            rows["fw13 speed-up"] = rows["fw13 guided step, 1 GPU (s)"] / t2
            rows["fw13 rel. error parallel vs 1 GPU"] = rel(par, ref)
    model = None

    # Wan 1.3B forward: one GPU vs Ulysses over all ranks.
    wcfg = wan13_config(args.small)
    wan = build_wan(wcfg, dev, dt, seed=0)
    winp = wan_inputs(wcfg, size, dev, dt)
    with torch.no_grad():

        def one() -> torch.Tensor:
            return wan(winp["x"], winp["t"], winp["context"])

        def sp() -> torch.Tensor:
            return sequence_parallel_forward(wan, winp["x"], winp["t"], winp["context"])

        if rank == 0:
            ref = one()
            rows["wan13 forward, 1 GPU (s)"] = measure(one, dev, 1, args.reps).median_s
        dist.barrier()
        out = sp()
        t2 = measure(sp, dev, 1, args.reps).median_s
        if rank == 0:
            rows["wan13 forward, Ulysses (s)"] = t2
            rows["wan13 Ulysses speed-up"] = rows["wan13 forward, 1 GPU (s)"] / t2
            rows["wan13 rel. error Ulysses vs 1 GPU"] = rel(out, ref)
    if rank == 0:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "multi_gpu.json").write_text(json.dumps(rows, indent=1))
        for k, v in rows.items():
            print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
