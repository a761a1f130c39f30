"""Timing with device events and peak-memory readings.

Why: CUDA work is asynchronous, so host clocks around a call measure launch time, not work. Every
measurement here warms up first, times each repetition with CUDA events (host clock on CPU), and reports
the median together with the peak memory allocated during the timed calls.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

GIB = 1024**3


@dataclass
class Timing:
    """Median and spread of repeated runs, peak memory in GiB (CUDA only, else 0)."""

    median_s: float
    min_s: float
    max_s: float
    times_s: list[float] = field(default_factory=list)
    peak_gib: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "median_s": self.median_s,
            "min_s": self.min_s,
            "max_s": self.max_s,
            "times_s": list(self.times_s),
            "peak_gib": self.peak_gib,
        }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], device: torch.device, warmup: int = 1, reps: int = 3) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``reps`` timed times; the peak covers the timed runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(reps):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / GIB if cuda else 0.0
    return Timing(statistics.median(times), min(times), max(times), times, peak)


def wall(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    """One call timed end to end with a synchronised host clock (for work that mixes host and device)."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def matmul_ceiling(device: torch.device, n: int = 8192, reps: int = 10, dtype=torch.bfloat16) -> float:
    """Measured dense matmul rate in FLOP/s on random data (never zeros: they run faster than real data)."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    t = measure(lambda: a @ b, device, warmup=3, reps=reps)
    return 2.0 * n**3 / t.median_s


def copy_bandwidth(device: torch.device, gib: float = 2.0, reps: int = 10) -> float:
    """Device-to-device copy rate in bytes/s, counting bytes read plus bytes written."""
    n = int(gib * GIB) // 2
    src = torch.randn(n, device=device, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    t = measure(lambda: dst.copy_(src), device, warmup=2, reps=reps)
    return 2.0 * src.numel() * src.element_size() / t.median_s
