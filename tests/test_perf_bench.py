"""Benchmark plumbing on the CPU: seeded weights, diffusers parity, results file/section, the CLI."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from bench.harness.bench_models import HashTokenizer, param_names
from bench.harness.cli import _options, add_bench_parser, markdown_report, run_bench
from bench.harness.diffusers_ref import build_diffusers_wan, diffusers_forward
from bench.harness.record import Recorder, write_results_section
from bench.harness.timing import Timing, measure
from bench.harness.weights import build, seeded_randomize
from fantasy_world.errors import InputError
from fantasy_world.models.wan.config import wan_dit_config
from fantasy_world.models.wan.dit import WanDiT


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench", *argv])


def test_seeded_weights_are_keyed_by_name_and_never_zero() -> None:
    cfg = wan_dit_config("tiny", num_layers=2)
    a = build(lambda: WanDiT(cfg), torch.device("cpu"), torch.float32)
    b = build(lambda: WanDiT(cfg), torch.device("cpu"), torch.float32)
    seeded_randomize(a, 3)
    seeded_randomize(b, 3, key=lambda n: n)
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), na
        assert pa.abs().min() > 0 or pa.numel() > 1000, na
    assert not torch.equal(a.blocks[0].self_attn.q.weight, a.blocks[1].self_attn.q.weight)
    assert a.head.head.weight.abs().sum() > 0  # Wan's zero-initialised head is randomised too


@pytest.mark.parametrize("image", [False, True])
def test_diffusers_reference_gets_the_same_weights(image: bool) -> None:
    kw = dict(dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=24, text_len=512, freq_dim=32)
    if image:
        kw.update(in_dim=36, image_input=True, clip_dim=40, clip_tokens=257)
    cfg = wan_dit_config("tiny", **kw)
    dev = torch.device("cpu")
    ours = build(lambda: WanDiT(cfg), dev, torch.float32)
    seeded_randomize(ours, 5)
    ref = build_diffusers_wan(cfg, param_names(ours), dev, torch.float32, 5)
    x, t, ctx = torch.randn(1, 16, 2, 4, 6), torch.tensor([300.0]), torch.randn(1, 512, 24)
    extra = {"clip_fea": torch.randn(1, 257, 40), "y": torch.randn(1, 20, 2, 4, 6)} if image else {}
    with torch.no_grad():
        a, b = ours(x, t, ctx, **extra), diffusers_forward(ref, x, t, ctx, **extra)
    assert ((a - b).norm() / b.norm()).item() < 1e-4


def test_measure_and_recorder(tmp_path) -> None:
    t = measure(lambda: torch.randn(64, 64) @ torch.randn(64, 64), torch.device("cpu"), warmup=1, reps=3)
    assert isinstance(t, Timing) and len(t.times_s) == 3 and t.min_s <= t.median_s <= t.max_s
    rec = Recorder(tmp_path, budget_s=100)
    rec.ceiling = 1e12
    row = rec.add("s", "fwd", Timing(0.5, 0.4, 0.6, [0.5], 2.0), flops=2.5e11, note="n")
    assert row.tflops == pytest.approx(0.5) and row.pct_ceiling == pytest.approx(50.0)
    rec.add("s", "broken", error="RuntimeError: x")
    assert rec.find("s", "fwd") is row and rec.find("s", "broken") is None
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in data["rows"]] == ["fwd", "broken"]
    table = rec.table()
    assert "| s | fwd | 0.500 | 0 | 50 | 2.0 | n |" in table and "ERROR: RuntimeError: x" in table
    assert "NVIDIA H200" in markdown_report({"card": "NVIDIA H200"}, table)


def test_results_section_replaced_in_place(tmp_path) -> None:
    path = tmp_path / "RESULTS.md"
    write_results_section(path, "first")
    assert (
        path.read_text().startswith("# Benchmark results")
        and "## GPU performance\n\nfirst" in path.read_text()
    )
    path.write_text("# R\n\n## CPU\n\nkeep me\n\n## GPU performance\n\nold\n\n## Later\n\nkeep too\n")
    write_results_section(path, "new table")
    text = path.read_text()
    assert "keep me" in text and "keep too" in text and "new table" in text and "old" not in text
    assert text.index("## CPU") < text.index("## GPU performance") < text.index("## Later")


def test_hash_tokenizer_pads_like_transformers() -> None:
    tok = HashTokenizer(100)
    out = tok(["a b c"], max_length=6, padding="max_length", return_tensors="pt", truncation=True)
    assert out["input_ids"].shape == (1, 6) and out["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0]]
    assert int(out["input_ids"].max()) < 100 and tok(["a b c"])["input_ids"] == [
        out["input_ids"][0, :4].tolist()
    ]


def test_bench_options_are_checked() -> None:
    with pytest.raises(InputError, match="--sections"):
        _options(_parse("--sections", "wan13,warp"))
    with pytest.raises(InputError, match="--steps"):
        _options(_parse("--steps", "2"))
    with pytest.raises(InputError, match="--device"):
        _options(_parse("--device", "tpu"))
    opts = _options(_parse("--device", "cpu", "--small", "--sections", "wan13", "--reps", "1"))
    assert opts.sections == ("wan13",) and opts.small and opts.reps == 1
    opts = _options(_parse("--sections", "issue12", "--fp8"))
    assert opts.sections == ("attn", "l4l13", "l4l14", "profile14", "e2e14", "tinyworld", "fp8")


def test_like_for_like_small_cpu_run(tmp_path, monkeypatch) -> None:
    """Ours and diffusers, both eager and both compiled block by block (dynamo's eager backend on a CPU);
    the FP8 hook leaves a row saying why it was skipped when fantasy_world.quant.selection is missing."""
    import sys

    monkeypatch.setitem(
        sys.modules, "fantasy_world.quant.selection", None
    )  # import fails as when it is absent
    args = _parse(
        "--device", "cpu", "--small", "--sections", "l4l13", "--fp8", "--reps", "1", "--out", str(tmp_path),
    )  # fmt: skip
    assert run_bench(args) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    by_name = {r["name"]: r for r in rows}
    label = "Wan2.1-T2V-1.3B forward"
    for kind in ("ours eager", "diffusers eager", "ours compiled", "diffusers compiled"):
        row = by_name[f"{label}, {kind}"]
        assert row["error"] is None and row["time_s"] > 0, row
    ratio = by_name[f"{label}: speed-up ours vs diffusers, both compiled"]
    assert ratio["extra"]["ratio"] > 0
    assert float(by_name[f"{label}: rel. error ours vs diffusers, eager"]["note"]) < 2e-2
    assert "not importable" in by_name["FP8 forwards"]["note"]


def test_small_cpu_run_writes_results(tmp_path) -> None:
    md = tmp_path / "RESULTS.md"
    args = _parse(
        "--device", "cpu", "--small", "--sections", "ceiling,wan13", "--reps", "1",
        "--out", str(tmp_path / "out"), "--results-md", str(md),
    )  # fmt: skip
    assert run_bench(args) == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    names = {r["name"] for r in rows if r["error"] is None}
    assert {"ours, attention auto", "diffusers WanTransformer3DModel (default attention)"} <= names
    parity = next(r for r in rows if r["name"].startswith("rel. error ours auto vs diffusers"))
    assert float(parity["note"]) < 2e-2  # bf16 on both sides
    assert "## GPU performance" in md.read_text() and (tmp_path / "out" / "table.md").is_file()
