"""Issue 17: a visitor who drops mid-run stops their job within a step; a closed tab never runs again.

A stand-in pipeline with fixed 0.25 s steps makes the timing exact: before the fix the dropped run
held the GPU for its remaining steps, so the next visitor's first step waited seconds, not one step.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from app.callbacks import Studio
from app.gpu_queue import PipelineCache
from app.server import BackgroundServer, create_app
from app.sessions import SessionRegistry
from bench.harness.synthetic_world import synthetic_world
from fantasy_world.errors import GenerationCancelled
from fantasy_world.pipeline import StepInfo

STEP_S = 0.25
LONG = 40  # steps of the run that is dropped: 10 s of GPU time


class SlowPipeline:
    """Sleeps ``STEP_S`` per step, honours ``cancel`` before each step, returns a tiny world."""

    def __init__(self) -> None:
        self.started: list[float] = []
        self.cancelled = 0
        self.finished = 0

    def __call__(self, *, steps: int, on_step=None, cancel=None, **_: object):
        self.started.append(time.monotonic())
        t0 = time.monotonic()
        for i in range(steps):
            if cancel is not None and (cancel() if callable(cancel) else cancel.is_set()):
                self.cancelled += 1
                raise GenerationCancelled(f"generation cancelled before step {i + 1} of {steps}")
            time.sleep(STEP_S)
            if on_step is not None:
                on_step(StepInfo(step=i + 1, total=steps, timestep=0.0, elapsed_s=time.monotonic() - t0))
        self.finished += 1
        return synthetic_world(num_frames=1, height=32, width=48)


@pytest.fixture()
def served(tmp_path: Path):
    pipe = SlowPipeline()
    studio = Studio(SessionRegistry(tmp_path / "sessions"), pipelines=PipelineCache(loader=lambda _: pipe))
    app, studio = create_app(studio)
    server = BackgroundServer(app).start()
    yield server, studio, pipe
    server.stop()
    studio.registry.close_all()


def _page(server) -> tuple[httpx.Client, dict[str, int]]:
    client = httpx.Client(base_url=server.url, timeout=120)
    client.get("/")
    config = client.get("/config").json()
    return client, {d["api_name"]: d["id"] for d in config["dependencies"]}


def _join(client: httpx.Client, fn: int, data: list, session_hash: str) -> None:
    body = {
        "data": data,
        "fn_index": fn,
        "session_hash": session_hash,
        "event_data": None,
        "trigger_id": None,
    }
    assert client.post("/gradio_api/queue/join", json=body).status_code == 200


def _watch(client: httpx.Client, session_hash: str, marks: list[str], drop: bool = False) -> list[float]:
    """Read the event stream, noting when each of ``marks`` first appears (in order); returns those
    times. ``drop``: close the connection at the last mark (a tab closed, a script killed), else read
    on until the event completes."""
    seen: list[float] = []
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
        for line in stream.iter_lines():
            if len(seen) < len(marks) and marks[len(seen)] in line:
                seen.append(time.monotonic())
                if drop and len(seen) == len(marks):
                    return seen
            if '"process_completed"' in line:
                assert len(seen) == len(marks), f"finished before {marks[len(seen)]!r}: {line[:300]}"
                return seen
    raise AssertionError("stream ended")


def gen(steps: int) -> list:
    return ["a ball", "", None, "tiny", 5, 32, 48, steps, 1.0, 0, 0, 10_000]


def page_gen(steps: int) -> list:
    """The page's generate inputs: ``gen`` plus the end-image box (empty)."""
    return [*gen(steps), None]


def test_dropped_client_stops_its_run_and_the_next_visitor_starts_within_a_step(served):
    server, studio, pipe = served
    (a, fns), (b, _) = _page(server), _page(server)
    for client, tab in ((a, "tab-a"), (b, "tab-b")):
        _join(client, fns["on_load"], [], tab)
        _watch(client, tab, ["fw-viewer"])

    _join(b, fns["generate"], page_gen(2), "tab-b")  # baseline: first-step latency on an idle GPU
    t0 = time.monotonic()
    baseline = _watch(b, "tab-b", ["Denoising step 1/2", "fw-ok"])[0] - t0

    _join(a, fns["generate"], page_gen(LONG), "tab-a")
    dropped_at = _watch(a, "tab-a", [f"Denoising step 2/{LONG}"], drop=True)[0]  # the client goes away
    a.close()
    _join(b, fns["generate"], page_gen(2), "tab-b")
    t0 = time.monotonic()
    after_drop = _watch(b, "tab-b", ["Denoising step 1/2", "fw-ok"])[0] - t0
    print(f"first step: idle GPU {baseline:.2f} s, right after a dropped {LONG}-step run {after_drop:.2f} s")

    assert pipe.cancelled == 1, "the dropped run was not cancelled"
    assert pipe.started[2] - dropped_at < 4 * STEP_S + 1.5, "the next run waited for the dropped one"
    assert after_drop < baseline + 4 * STEP_S + 1.5, (baseline, after_drop)
    assert not [t for t in threading.enumerate() if t.name == "generation"], (
        "a worker thread is still running"
    )


def test_queued_job_of_a_closed_tab_never_runs_or_recreates_the_session(tmp_path):
    pipe = SlowPipeline()
    studio = Studio(SessionRegistry(tmp_path / "s"), pipelines=PipelineCache(loader=lambda _: pipe))
    try:
        holder = studio.gpu.enter()
        assert holder.acquire(1.0)  # someone else holds the GPU
        studio.on_load(SimpleNamespace(session_hash="gone"))
        job = studio.generate(*gen(3), SimpleNamespace(session_hash="gone"), None)
        first = next(job)
        assert "position 1" in first[0]
        studio.registry.close("gone")  # the tab closed (unload) while its job waited
        rest = list(job)
        holder.release()
        assert "Cancelled" in rest[-1][0] and pipe.started == []
        assert studio.registry.get("gone") is None, "the queued job re-created the closed session"
        late = list(studio.generate(*gen(3), SimpleNamespace(session_hash="gone"), None))
        assert "closed" in json.dumps([str(x) for x in late[-1]]) and pipe.started == []
        assert studio.registry.get("gone") is None
    finally:
        studio.registry.close_all()


def test_session_close_removes_gradio_copies_uploads_and_stray_temp_files(tmp_path, monkeypatch):
    """Issue 17 leaks: Gradio's copies of a session's results and its visitor's uploads go with it."""
    import os

    from app.cleanup import gradio_copy_dir

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    studio = Studio(SessionRegistry(tmp_path / "s"))
    try:
        s = studio.registry.open("k", address="1.2.3.4", visitor="v1")
        visitor = studio.visitors.issue("1.2.3.4")
        s.visitor = visitor.id
        studio.visitors.pin(visitor.id, +1)
        result = s.next_run_dir() / "bundle" / "video.mp4"
        result.parent.mkdir(parents=True)
        result.write_bytes(b"mp4 bytes")
        copy = gradio_copy_dir(result)
        copy.mkdir(parents=True)
        (copy / "video.mp4").write_bytes(b"mp4 bytes")  # what Gradio's postprocess makes
        studio.janitor.handed_out(s, [result])
        upload = tmp_path / "gradio" / "abc123" / "fake.png"
        upload.parent.mkdir(parents=True)
        upload.write_bytes(b"x")
        studio.visitors.add_uploads(visitor, [upload])
        stray = tmp_path / "gradio" / "tmpabcd"
        stray.write_bytes(b"")
        os.utime(stray, (0, 0))
        studio.registry.sweep()  # nothing expired yet, but the old stray temp file goes
        assert not stray.exists() and copy.exists() and upload.exists()
        studio.registry.close("k")
        assert not copy.exists() and not upload.parent.exists()
        assert sorted(p.name for p in (tmp_path / "gradio").iterdir()) == []
    finally:
        studio.registry.close_all()
