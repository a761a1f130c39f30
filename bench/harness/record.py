"""Benchmark results: rows written to JSON after every measurement, and the Markdown table.

Why incremental: a device run has a hard time limit; whatever finished before a failure or the time
guard must survive. Every row names what was timed; derived numbers say so in their note.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.harness.timing import Timing


@dataclass
class Row:
    section: str
    name: str
    time_s: float | None = None
    tflops: float | None = None
    pct_ceiling: float | None = None
    peak_gib: float | None = None
    note: str = ""
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Collects rows and environment facts; ``ceiling`` (FLOP/s) turns FLOP counts into % of ceiling."""

    def __init__(self, out_dir: Path, budget_s: float) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.rows: list[Row] = []
        self.meta: dict[str, Any] = {}
        self.ceiling: float | None = None

    def time_left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def add(
        self,
        section: str,
        name: str,
        timing: Timing | float | None = None,
        flops: float | None = None,
        note: str = "",
        error: str | None = None,
        **extra: Any,
    ) -> Row:
        row = Row(section, name, note=note, error=error, extra=extra)
        if isinstance(timing, Timing):
            row.time_s, row.peak_gib = timing.median_s, timing.peak_gib or None
            row.extra.setdefault("times_s", [round(t, 5) for t in timing.times_s])
        elif timing is not None:
            row.time_s = float(timing)
        if flops and row.time_s:
            row.tflops = flops / row.time_s / 1e12
            if self.ceiling:
                row.pct_ceiling = 100.0 * flops / row.time_s / self.ceiling
            row.extra.setdefault("tflop", flops / 1e12)
        self.rows.append(row)
        self.save()
        status = f"ERROR {error}" if error else f"{row.time_s if row.time_s is not None else '-'} s"
        print(f"[{time.monotonic() - self.start:7.1f}s] {section} | {name} | {status} | {note}", flush=True)
        return row

    def find(self, section: str, name: str) -> Row | None:
        for row in self.rows:
            if row.section == section and row.name == name and row.error is None:
                return row
        return None

    def save(self) -> None:
        data = {"meta": self.meta, "rows": [asdict(r) for r in self.rows]}
        (self.out_dir / "results.json").write_text(json.dumps(data, indent=1, default=str))

    def table(self) -> str:
        """Markdown table of every row (errors and skips included, so nothing silently disappears)."""
        lines = [
            "| section | measurement | time (s) | TFLOP/s | % ceiling | peak GiB | notes |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            note = r.note if r.error is None else f"{r.note} ERROR: {r.error}".strip()
            lines.append(
                f"| {r.section} | {r.name} | {_fmt(r.time_s, 3)} | {_fmt(r.tflops, 0)} | "
                f"{_fmt(r.pct_ceiling, 0)} | {_fmt(r.peak_gib, 1)} | {note.replace('|', '/')} |"
            )
        return "\n".join(lines)


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


SECTION_TITLE = "## GPU performance"


def write_results_section(path: Path, body: str) -> None:
    """Create ``path`` or replace its "GPU performance" section (up to the next ``## `` heading)."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    block = f"{SECTION_TITLE}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(SECTION_TITLE)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text)
