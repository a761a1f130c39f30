"""Several-GPU benchmark (issue 15): guidance parallelism, Ulysses sequence parallelism and both combined.

One launch measures every row the machine allows::

    torchrun --nproc_per_node=N bench/multi_gpu.py --out OUT --budget 540      # N = 2, 4 or 8

Sections (each skipped when the remaining budget is too small; a skipped section is a row that says so):

* ``guidance`` — FantasyWorld 1.3B (``wan2.1-t2v-1.3b``, 480×832×81) and 14B (``wan2.1-i2v-14b``,
  336×592×81) at full size on seeded weights: the two guidance passes on ranks 0 and 1
  (:class:`GuidanceParallel`) against both passes on rank 0 alone. Time per guided step, peak memory per
  rank, and the relative error of the video latents and of every geometry output after a short sampling
  run (2 steps, geometry read at the last) against one GPU.
* ``ulysses`` — one 81-frame forward of the Wan 1.3B and 14B DiT over 2, 4 (and 8) ranks
  (:func:`sequence_parallel_forward`): speed-up and relative error against one GPU. The FantasyWorld
  geometry branch has no sequence-parallel path yet, so this is the DiT (the video stream) only.
* ``combined`` (N ≥ 4) — guidance × sequence parallelism: the conditional pass on ranks ``0..q-1`` and
  the negative pass on ``q..2q-1``, each Ulysses-sharded over its q ranks, velocities exchanged in pairs.
  On 8 ranks (q = 4) the 14B row is the proxy for the issue's "8 GPUs, 14B generation ≥ 6×" target
  (DiT guided step; geometry branch not sharded).

CPU smoke test (gloo, toy widths, not performance)::

    torchrun --nproc_per_node=2 bench/multi_gpu.py --device cpu --small --out /tmp/mg2

Never turns NVLink multicast on: ``NCCL_NVLS_ENABLE=0`` and ``TORCH_SYMM_MEM_DISABLE_MULTICAST=1`` are set
when the environment has not set them. Rows: ``<out>/multi_gpu.json`` (rewritten after every section).
"""

from __future__ import annotations

import os

# Before torch.distributed initialises NCCL: multicast stays off unless the machine says otherwise.
os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness.bench_models import (  # noqa: E402
    I2V_SIZE,
    SMALL_SIZE,
    T2V_SIZE,
    VideoSize,
    build_fantasy,
    build_wan,
    fw13_config,
    fw14_config,
    plucker_input,
    wan_inputs,
)
from bench.harness.timing import measure  # noqa: E402
from bench.harness.weights import free_cuda  # noqa: E402
from fantasy_world.accel.parallel import (  # noqa: E402
    GuidanceParallel,
    ParallelEnv,
    init_distributed,
    sequence_parallel_forward,
)
from fantasy_world.accel.sequence_parallel_fantasy import (  # noqa: E402
    GuidanceSequenceParallel,
    ParallelLayout,
    sequence_parallel_fantasy_forward,
)
from fantasy_world.models.fantasy.config import FantasyWorldConfig, fantasy_world_config, reduced  # noqa: E402
from fantasy_world.models.fantasy.model import GeometryOutput  # noqa: E402
from fantasy_world.models.wan.config import WanDiTConfig, wan_dit_config  # noqa: E402
from fantasy_world.sampling import flow_match_schedule, seeded_noise  # noqa: E402
from fantasy_world.sampling.guidance import SequentialGuidance  # noqa: E402
from fantasy_world.sampling.sampler import PassInputs, sample  # noqa: E402

TARGET_SPEEDUP_2 = 1.8  # 2 GPUs, guided step vs 1 GPU
TARGET_REL_ERR = 1e-2  # bf16, vs 1 GPU
TARGET_SPEEDUP_8 = 6.0  # 8 GPUs, 14B 81-frame generation vs 1 GPU
GUIDANCE_SCALE = 5.0
SAMPLE_STEPS = 2  # short run for the error of latents and geometry (geometry read at the last step)

# Rough full-size seconds on H200s, for the budget guard: "reference" covers building the model on every
# rank and the one-GPU reference (plus everything after it for that model), the others one sub-section.
EST_S = {
    "1.3B": {"reference": 80, "guidance": 15, "ulysses": 8, "combined": 10, "dit": 20},
    "14B": {"reference": 110, "guidance": 20, "ulysses": 10, "combined": 12, "dit": 35},
}


# ------------------------------------------------------------------------------------------------ models
@dataclasses.dataclass(frozen=True)
class Model:
    name: str  # "1.3B" or "14B"
    fantasy: FantasyWorldConfig
    dit: WanDiTConfig
    size: VideoSize


def models(small: bool) -> list[Model]:
    """Full-size configs, or toy widths (heads divisible by 4 and 8 so 4 and 8 ranks can shard them)."""
    if not small:
        fw13, fw14 = fw13_config(False), fw14_config(False)
        return [Model("1.3B", fw13, fw13.dit, T2V_SIZE), Model("14B", fw14, fw14.dit, I2V_SIZE)]
    wan13 = wan_dit_config(
        "tiny", dim=64, ffn_dim=96, num_heads=4, num_layers=2, text_dim=24, text_len=512, freq_dim=32
    )
    fw14 = reduced(fantasy_world_config("wan2.1-i2v-14b"), dim=64, num_heads=8)
    fw14 = dataclasses.replace(fw14, dit=dataclasses.replace(fw14.dit, text_len=512, clip_tokens=257))
    return [Model("1.3B", fw13_config(True), wan13, SMALL_SIZE), Model("14B", fw14, fw14.dit, SMALL_SIZE)]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ in float32."""
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


def geometry_errors(par: GeometryOutput, ref: GeometryOutput) -> dict[str, float]:
    return {f.name: rel(getattr(par, f.name), getattr(ref, f.name)) for f in dataclasses.fields(ref)}


# ------------------------------------------------------------------------------------------------ harness
class Bench:
    """Rows, the shared budget and the collective helpers every section uses."""

    def __init__(self, env: ParallelEnv, args: argparse.Namespace) -> None:
        self.env = env
        self.args = args
        self.dev = env.device
        self.dtype = torch.bfloat16 if env.device.type == "cuda" else torch.float32
        self.deadline = time.monotonic() + args.budget
        self.rows: list[dict[str, object]] = []
        self.out = Path(args.out)
        self.meta: dict[str, object] = {
            "world_size": env.world_size,
            "device": str(env.device.type),
            "dtype": str(self.dtype).replace("torch.", ""),
            "small": bool(args.small),
            "torch": torch.__version__,
            "NCCL_NVLS_ENABLE": os.environ.get("NCCL_NVLS_ENABLE"),
            "TORCH_SYMM_MEM_DISABLE_MULTICAST": os.environ.get("TORCH_SYMM_MEM_DISABLE_MULTICAST"),
        }
        if env.device.type == "cuda":
            self.meta["card"] = torch.cuda.get_device_name(env.device)

    @property
    def rank(self) -> int:
        return self.env.rank

    def allowed(self, section: str, est_s: float) -> bool:
        """Rank 0 decides from its clock whether ``section`` fits the remaining budget; all ranks follow."""
        est = 0.0 if self.args.small else est_s
        ok = torch.tensor([1.0 if self.deadline - time.monotonic() > est else 0.0], device=self.dev)
        dist.broadcast(ok, src=0)
        if ok.item() < 0.5:
            self.row(section, "-", "skipped", None, note=f"budget: needs ~{est:.0f}s more")
        return ok.item() > 0.5

    def row(
        self,
        section: str,
        model: str,
        measurement: str,
        value: float | None,
        *,
        ranks: int | None = None,
        unit: str = "",
        target: str = "",
        met: bool | None = None,
        note: str = "",
    ) -> None:
        if unit == "GiB" and self.dev.type != "cuda":
            value, note = None, (note + "; " if note else "") + "not measured on CPU"
        if self.rank == 0:
            self.rows.append(
                {
                    "section": section,
                    "model": model,
                    "ranks": ranks,
                    "measurement": measurement,
                    "value": value,
                    "unit": unit,
                    "target": target,
                    "met": met,
                    "note": note,
                }
            )

    def peak_row(self, section: str, model: str, label: str, peaks: list[float]) -> None:
        """The largest peak of the ranks that took part, with each rank's in the note."""
        self.row(
            section,
            model,
            f"peak memory per rank, {label}",
            max(peaks),
            ranks=len(peaks),
            unit="GiB",
            note=" ".join(f"{v:.1f}" for v in peaks),
        )

    def peaks(self, mine: float) -> list[float]:
        """Every rank's peak GiB, gathered to all ranks (rank order)."""
        got: list[object] = [None] * self.env.world_size
        dist.all_gather_object(got, round(float(mine), 2))
        return [float(g) for g in got]  # type: ignore[arg-type]

    def save(self) -> None:
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "multi_gpu.json").write_text(json.dumps({**self.meta, "rows": self.rows}, indent=1))

    def measure(self, fn: Callable[[], object]) -> tuple[float, float]:
        t = measure(fn, self.dev, warmup=1, reps=self.args.reps)
        return t.median_s, t.peak_gib


def reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)


def peak_gib(dev: torch.device) -> float:
    return torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else 0.0


# ------------------------------------------------------------------------------------------------ FantasyWorld
@dataclasses.dataclass
class Groups:
    """Every process group of the run, created up front by every rank in the same order."""

    pair: dist.ProcessGroup  # ranks 0, 1: guidance parallelism
    sp: dict[int, dist.ProcessGroup]  # p -> ranks 0..p-1: Ulysses
    combined: dict[int, tuple[list[dist.ProcessGroup], list[dist.ProcessGroup]]]  # q -> (halves, pairs)

    @classmethod
    def build(cls, world: int) -> Groups:
        pair = dist.new_group([0, 1])
        sp = {p: dist.new_group(list(range(p))) for p in (2, 4, 8) if p <= world}
        combined = {}
        for q in (2, 4):
            if 2 * q <= world:
                halves = [dist.new_group(list(range(0, q))), dist.new_group(list(range(q, 2 * q)))]
                combined[q] = (halves, [dist.new_group([i, i + q]) for i in range(q)])
        return cls(pair, sp, combined)

    def layout(self, q: int, rank: int) -> ParallelLayout:
        halves, pairs = self.combined[q]
        half, i = divmod(rank, q)
        return ParallelLayout(q, half, halves[half], pairs[i])


class FantasyCase:
    """One FantasyWorld model at full size on every rank, its inputs, and rank 0's one-GPU reference."""

    def __init__(self, b: Bench, m: Model) -> None:
        dev, dt = b.dev, b.dtype
        self.b, self.m = b, m
        self.model = build_fantasy(m.fantasy, dev, dt, seed=0)
        inp = wan_inputs(m.fantasy.dit, m.size, dev, dt)
        self.x, self.t, self.cond = inp["x"], inp["t"], inp["context"]
        self.neg = wan_inputs(m.fantasy.dit, m.size, dev, dt, seed=5)["context"]
        with torch.no_grad():
            camera = self.model.encode_camera(plucker_input(m.size, dev, dt))
        self.kw = {
            "camera": camera,
            "image_hw": (m.size.height, m.size.width),
            "clip_fea": inp.get("clip_fea"),
            "y": inp.get("y"),
        }
        self.noise = seeded_noise(tuple(self.x.shape), 0, dev)
        self.ref: tuple[torch.Tensor, GeometryOutput] | None = None
        self.ref_forward: torch.Tensor | None = None
        self.step_s = self.forward_s = 0.0

    @torch.no_grad()
    def step(self, runner) -> object:  # noqa: ANN001 - one ordinary guided step (no geometry read)
        return runner(self.model, self.x, self.t, self.cond, self.neg, want_geo=False, **self.kw)

    @torch.no_grad()
    def run(self, runner) -> tuple[torch.Tensor, GeometryOutput]:  # noqa: ANN001
        """A short sampling run from seeded noise: final latents and the last step's geometry."""
        sched = flow_match_schedule(SAMPLE_STEPS, shift=5.0)
        inputs = PassInputs(self.cond, self.neg, **self.kw)
        return sample(
            self.model, runner, sched, self.noise, inputs, guidance=GUIDANCE_SCALE, dtype=self.b.dtype
        )

    @torch.no_grad()
    def forward(self) -> torch.Tensor:
        return self.model(self.x, self.t, self.cond, **self.kw).velocity

    def reference(self) -> None:
        """Rank 0 alone (the others wait): both passes in turn, as on one GPU."""
        b, m = self.b, self.m
        if b.rank == 0:
            reset_peak(b.dev)
            self.ref = self.run(SequentialGuidance())
            sample_peak = peak_gib(b.dev)
            self.step_s, peak = b.measure(lambda: self.step(SequentialGuidance()))
            self.ref_forward = self.forward()
            self.forward_s, _ = b.measure(self.forward)
            b.row("1 GPU", m.name, "guided step (two passes)", self.step_s, ranks=1, unit="s")
            b.row("1 GPU", m.name, "conditional forward", self.forward_s, ranks=1, unit="s")
            b.row("1 GPU", m.name, "peak memory", max(peak, sample_peak), ranks=1, unit="GiB")
        dist.barrier()

    def parallel_guided(
        self, section: str, label: str, ranks: int, make_runner, target: float | None
    ) -> None:  # noqa: ANN001
        """A guided runner over ``ranks`` ranks against the reference: step time, errors, memory."""
        b, m = self.b, self.m
        par, t, pk = None, 0.0, 0.0
        if b.rank < ranks:
            runner = make_runner()
            reset_peak(b.dev)
            par = self.run(runner)
            sample_peak = peak_gib(b.dev)
            t, pk = b.measure(lambda: self.step(runner))
            pk = max(pk, sample_peak)
        peaks = b.peaks(pk)
        if b.rank == 0:
            assert par is not None and self.ref is not None
            speed = self.step_s / t
            b.row(section, m.name, f"guided step, {label}", t, ranks=ranks, unit="s")
            b.row(
                section,
                m.name,
                f"speed-up {label} vs 1 GPU",
                speed,
                ranks=ranks,
                unit="x",
                target="" if target is None else f">= {target}",
                met=None if target is None else speed >= target,
                note=f"ideal {ranks}x",
            )
            err = rel(par[0], self.ref[0])
            b.row(
                section,
                m.name,
                f"rel. error video latents, {label} ({SAMPLE_STEPS} steps)",
                err,
                ranks=ranks,
                target=f"<= {TARGET_REL_ERR:g}",
                met=err <= TARGET_REL_ERR,
            )
            geo = geometry_errors(par[1], self.ref[1])
            worst = max(geo.values())
            b.row(
                section,
                m.name,
                f"rel. error geometry (worst field), {label}",
                worst,
                ranks=ranks,
                target=f"<= {TARGET_REL_ERR:g}",
                met=worst <= TARGET_REL_ERR,
                note=", ".join(f"{k} {v:.2e}" for k, v in geo.items()),
            )
            b.peak_row(section, m.name, label, peaks[:ranks])
        dist.barrier()

    def ulysses(self, p: int, group: dist.ProcessGroup) -> None:
        """The conditional forward (geometry branch included) with the video stream over p ranks."""
        b, m = self.b, self.m
        if m.fantasy.dit.num_heads % p:
            b.row("ulysses FW", m.name, f"forward, Ulysses x{p}", None, ranks=p, note="heads not divisible")
            return
        out, t = None, 0.0
        if b.rank < p:

            def sp() -> torch.Tensor:
                return sequence_parallel_fantasy_forward(
                    self.model, self.x, self.t, self.cond, group=group, **self.kw
                ).velocity

            out = sp()
            t, _ = b.measure(sp)
        if b.rank == 0:
            assert out is not None and self.ref_forward is not None
            err = rel(out, self.ref_forward)
            b.row("ulysses FW", m.name, f"FantasyWorld forward, Ulysses x{p}", t, ranks=p, unit="s")
            b.row(
                "ulysses FW",
                m.name,
                f"speed-up Ulysses x{p} vs 1 GPU",
                self.forward_s / t,
                ranks=p,
                unit="x",
                note=f"ideal {p}x; geometry branch whole on every rank",
            )
            b.row(
                "ulysses FW",
                m.name,
                f"rel. error Ulysses x{p}",
                err,
                ranks=p,
                target=f"<= {TARGET_REL_ERR:g}",
                met=err <= TARGET_REL_ERR,
            )
        dist.barrier()


def fantasy_sections(b: Bench, m: Model, groups: Groups, sections: set[str]) -> None:
    """Reference, guidance parallelism, Ulysses and guidance × Ulysses for one FantasyWorld model."""
    case = FantasyCase(b, m)
    case.reference()
    world = b.env.world_size
    est = EST_S[m.name]
    if "guidance" in sections and b.allowed(f"guidance {m.name}", est["guidance"]):
        run_section(
            b,
            f"guidance {m.name}",
            lambda: case.parallel_guided(
                "guidance",
                "guidance parallel (2)",
                2,
                lambda: GuidanceParallel(groups.pair),
                TARGET_SPEEDUP_2,
            ),
        )
    if "ulysses" in sections:
        for p, group in groups.sp.items():
            if b.allowed(f"ulysses FW x{p} {m.name}", est["ulysses"]):
                run_section(b, f"ulysses FW x{p} {m.name}", lambda p=p, group=group: case.ulysses(p, group))
    if "combined" in sections:
        for q in groups.combined:
            n = 2 * q
            target = TARGET_SPEEDUP_8 if (n == 8 and m.name == "14B") else None
            if b.allowed(f"combined 2x{q} {m.name}", est["combined"]):
                run_section(
                    b,
                    f"combined 2x{q} {m.name}",
                    lambda q=q, n=n, target=target: case.parallel_guided(
                        "combined",
                        f"guidance x Ulysses (2x{q})",
                        n,
                        lambda: GuidanceSequenceParallel(groups.layout(q, b.rank)),
                        target,
                    ),
                )
    del world
    case.model = None
    free_cuda()
    dist.barrier()


# ------------------------------------------------------------------------------------------------ DiT Ulysses
def ulysses_section(b: Bench, m: Model, sp_groups: dict[int, dist.ProcessGroup]) -> None:
    """One Wan DiT forward on rank 0 vs Ulysses over the first p ranks, for every p that divides the heads."""
    section, dev = "ulysses DiT", b.dev
    sizes = [p for p in sp_groups if m.dit.num_heads % p == 0]
    for p in sp_groups:
        if p not in sizes:
            b.row(section, m.name, f"forward, Ulysses x{p}", None, ranks=p, note=f"{m.dit.num_heads} heads")
    top = max(sizes, default=1)
    wan = build_wan(m.dit, dev, b.dtype, seed=0) if b.rank < top else None
    inp = wan_inputs(m.dit, m.size, b.dev, b.dtype) if wan is not None else {}
    extra = {k: inp[k] for k in ("clip_fea", "y") if k in inp}

    @torch.no_grad()
    def one() -> torch.Tensor:
        return wan(inp["x"], inp["t"], inp["context"], **extra)

    ref, one_s = None, 0.0
    if b.rank == 0:
        ref = one()
        one_s, one_peak = b.measure(one)
        b.row(section, m.name, "DiT forward, 1 GPU", one_s, ranks=1, unit="s")
        b.row(section, m.name, "peak memory, 1 GPU", one_peak, ranks=1, unit="GiB")
    dist.barrier()
    for p in sizes:
        group = sp_groups[p]
        out, t, pk = None, 0.0, 0.0
        if b.rank < p:

            @torch.no_grad()
            def sp(group=group) -> torch.Tensor:
                return sequence_parallel_forward(
                    wan, inp["x"], inp["t"], inp["context"], group=group, **extra
                )

            out = sp()
            t, pk = b.measure(sp)
        peaks = b.peaks(pk)
        if b.rank == 0:
            assert out is not None and ref is not None
            err = rel(out, ref)
            b.row(section, m.name, f"DiT forward, Ulysses x{p}", t, ranks=p, unit="s")
            b.row(
                section,
                m.name,
                f"speed-up Ulysses x{p} vs 1 GPU",
                one_s / t,
                ranks=p,
                unit="x",
                note=f"ideal {p}x",
            )
            b.row(
                section,
                m.name,
                f"rel. error Ulysses x{p}",
                err,
                ranks=p,
                target=f"<= {TARGET_REL_ERR:g}",
                met=err <= TARGET_REL_ERR,
            )
            b.peak_row(section, m.name, f"Ulysses x{p}", peaks[:p])
        dist.barrier()
    wan = None
    free_cuda()
    dist.barrier()


# ------------------------------------------------------------------------------------------------ main
def print_table(b: Bench) -> None:
    print(f"\n{json.dumps(b.meta)}")
    print("| section | model | ranks | measurement | value | target | met | note |")
    print("|---|---|---|---|---|---|---|---|")
    for r in b.rows:
        v = r["value"]
        val = "-" if v is None else (f"{v:.3e}" if isinstance(v, float) and abs(v) < 1e-2 else f"{v:.3f}")
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(
            f"| {r['section']} | {r['model']} | {r['ranks'] or ''} | {r['measurement']} | {val} {r['unit']} | "
            f"{r['target']} | {met} | {r['note']} |"
        )


def run_section(b: Bench, name: str, fn: Callable[[], None]) -> None:
    """A section that raises on any rank becomes an error row; the run goes on with the next section."""
    failed = torch.tensor([0.0], device=b.dev)
    message = ""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - a failed section is a row, not the end of the run
        failed += 1.0
        message = f"{type(exc).__name__}: {exc}"[:300]
        print(f"rank {b.rank}: {name} failed: {message}", file=sys.stderr, flush=True)
    dist.all_reduce(failed)
    if failed.item() > 0:
        b.row(name.split()[0], name.split()[-1], "error", None, note=message or "failed on another rank")
        free_cuda()
    b.save()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--small", action="store_true", help="toy widths and sizes (CPU smoke test)")
    p.add_argument("--out", default="bench/out_multi")
    p.add_argument(
        "--budget", type=float, default=540.0, help="seconds; sections that would overrun are skipped"
    )
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--sections", default="guidance,ulysses,combined,dit")
    p.add_argument("--models", default="1.3B,14B")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "error: --device cuda but CUDA is not available; use --device cpu for the smoke test"
        )
    env = init_distributed("gloo" if args.device == "cpu" else None)
    if env.world_size < 2:
        raise SystemExit("error: launch with torchrun --nproc_per_node=N (N >= 2)")
    if env.device.type == "cpu":
        torch.set_num_threads(1)
    b = Bench(env, args)
    groups = Groups.build(env.world_size)  # every rank creates every group, in the same order
    sections = set(args.sections.split(","))
    chosen = [m for m in models(args.small) if m.name in args.models.split(",")]
    for m in chosen:
        if sections & {"guidance", "ulysses", "combined"} and b.allowed(
            f"reference {m.name}", EST_S[m.name]["reference"]
        ):
            run_section(b, f"reference {m.name}", lambda m=m: fantasy_sections(b, m, groups, sections))
    for m in chosen:
        if "dit" in sections and b.allowed(f"ulysses DiT {m.name}", EST_S[m.name]["dit"]):
            run_section(b, f"ulysses DiT {m.name}", lambda m=m: ulysses_section(b, m, groups.sp))
    b.meta["seconds"] = round(args.budget - (b.deadline - time.monotonic()), 1)
    b.save()
    if b.rank == 0:
        print_table(b)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
