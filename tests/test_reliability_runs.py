"""Issue 8 with the real tiny model in the app path: cancel, simulated OOM, queue, two visitors, tab close."""

from __future__ import annotations

import gc
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from app.callbacks import Studio
from app.gpu_queue import PipelineCache
from app.sessions import SessionRegistry
from fantasy_world.sampling.guidance import SequentialGuidance

pytestmark = pytest.mark.slow

TIMEOUT = 240.0


def req(name: str) -> SimpleNamespace:
    return SimpleNamespace(session_hash=name)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    st = Studio(SessionRegistry(root / "sessions"), PipelineCache(), upload_roots=[root])
    st.pipelines.get("tiny")  # load once for the module
    yield st
    st.registry.close_all()


class Run:
    """A generate() call driven from a thread, recording every status line it streams."""

    def __init__(self, studio: Studio, session: str, frames: int = 5, steps: int = 2, seed: int = 0) -> None:
        self.statuses: list[str] = []
        self.last: tuple | None = None
        args = (
            "a red ball",
            "",
            None,
            "tiny",
            frames,
            32,
            48,
            steps,
            1.0,
            seed,
            0,
            10_000,
            req(session),
            None,
        )
        self.thread = threading.Thread(target=self._drive, args=(studio, args), daemon=True)
        self.thread.start()

    def _drive(self, studio: Studio, args: tuple) -> None:
        for out in studio.generate(*args):
            self.statuses.append(out[0])
            self.last = out

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in list(self.statuses):
                if re.search(pattern, s):
                    return s
            if not self.thread.is_alive() and not any(re.search(pattern, s) for s in self.statuses):
                break
            time.sleep(0.02)
        raise AssertionError(f"no status matching {pattern!r}; got {self.statuses[-3:]}")

    def join(self, timeout: float = TIMEOUT) -> tuple:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "generation did not finish"
        assert self.last is not None
        return self.last

    def steps_seen(self) -> int:
        found = [int(m.group(1)) for s in self.statuses if (m := re.search(r"Denoising step (\d+)/", s))]
        return max(found, default=0)


def live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def test_cancel_mid_run_stops_within_one_step_and_frees_memory(studio):
    baseline = live_tensors()
    run = Run(studio, "cancel", steps=30)
    run.wait_for(r"Denoising step 2/30")
    at_cancel = run.steps_seen()
    studio.cancel(request=req("cancel"))
    status = run.join()[0]
    assert "Cancelled" in status, status
    assert run.steps_seen() <= at_cancel + 1, f"ran {run.steps_seen()} steps after cancelling at {at_cancel}"
    assert studio.gpu.running == 0 and studio.gpu.waiting == 0
    assert live_tensors() <= baseline + 8, "a cancelled run left its tensors alive"


def test_simulated_oom_gives_the_message_and_the_next_request_succeeds(studio, monkeypatch):
    pipe = studio.pipelines.get("tiny")
    calls = {"n": 0}

    class OnceOutOfMemory(SequentialGuidance):
        def __call__(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 1:
                torch.empty(1 << 20)  # something to free
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return super().__call__(*args, **kwargs)

    monkeypatch.setattr(pipe, "guidance_runner", OnceOutOfMemory())
    failed = Run(studio, "oom").join()[0]
    assert "fw-error" in failed and "out of memory" in failed and "fewer frames" in failed, failed
    ok = Run(studio, "oom").join()
    assert "fw-ok" in ok[0], ok[0]
    assert Path(ok[1]).stat().st_size > 0


def test_requests_beyond_the_gpu_wait_with_their_position(studio):
    held = studio.gpu.enter()  # another visitor's run holds the GPU
    assert held.acquire(1.0)
    try:
        run = Run(studio, "queued")
        waiting = run.wait_for(r"position 1 in the queue")
        assert "Waiting for the GPU" in waiting
        second = Run(studio, "queued2")
        second.wait_for(r"position 2 in the queue")
    finally:
        held.release()
    assert "fw-ok" in run.join()[0]
    assert "fw-ok" in second.join()[0]


def test_two_visitors_generating_at_once_get_their_own_results(studio):
    a, b = Run(studio, "visitor-a", frames=5, seed=1), Run(studio, "visitor-b", frames=9, seed=2)
    out_a, out_b = a.join(), b.join()
    assert "fw-ok" in out_a[0] and "5 frames" in out_a[0], out_a[0]
    assert "fw-ok" in out_b[0] and "9 frames" in out_b[0], out_b[0]
    sa, sb = studio.registry.get("visitor-a"), studio.registry.get("visitor-b")
    assert sa.viewer.world.num_frames == 5 and sb.viewer.world.num_frames == 9
    assert all(Path(f).is_relative_to(sa.workdir) for f in out_a[3])
    assert all(Path(f).is_relative_to(sb.workdir) for f in out_b[3])
    assert Path(out_a[1]).read_bytes() != Path(out_b[1]).read_bytes()


def test_closing_the_tab_mid_run_cancels_and_frees_everything(studio):
    run = Run(studio, "leaver", steps=30)
    run.wait_for(r"Denoising step 1/30")
    s = studio.registry.get("leaver")
    workdir, port = s.workdir, s.port
    studio.on_unload(req("leaver"))
    run.join(timeout=60)
    assert run.steps_seen() < 30 and not workdir.exists()
    assert studio.registry.get("leaver") is None and studio.gpu.running == 0
    import socket

    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
