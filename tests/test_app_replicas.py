"""``python app.py --gpus N``: one pipeline per device, leased one request at a time, running side by side."""

from __future__ import annotations

import threading
import time

import pytest

from app.gpu_queue import GpuQueue, run_generation
from app.replicas import ReplicaPipelines, replica_devices
from app.server import studio_for_gpus
from fantasy_world.accel.launch import ENV_GLOO_CPU
from fantasy_world.errors import InputError


class FakePipe:
    """Records where it was loaded and how many calls overlap in time."""

    active = 0
    most = 0
    guard = threading.Lock()

    def __init__(self, name: str, device: str) -> None:
        self.name, self.device = name, device

    def __call__(self, **kw):  # noqa: ANN003
        with FakePipe.guard:
            FakePipe.active += 1
            FakePipe.most = max(FakePipe.most, FakePipe.active)
        time.sleep(0.2)
        with FakePipe.guard:
            FakePipe.active -= 1
        return self.device


def test_replica_devices(monkeypatch):
    monkeypatch.delenv(ENV_GLOO_CPU, raising=False)
    assert replica_devices(2, visible=4) == ["cuda:0", "cuda:1"]
    with pytest.raises(InputError, match="only 2 CUDA GPU"):
        replica_devices(4, visible=2)
    with pytest.raises(InputError, match="no CUDA GPU visible"):
        replica_devices(2, visible=0)
    with pytest.raises(InputError, match="at least 1"):
        replica_devices(0, visible=2)
    monkeypatch.setenv(ENV_GLOO_CPU, "1")
    assert replica_devices(2, visible=0) == ["cpu", "cpu"]


def test_each_request_leases_its_own_replica():
    loads: list[tuple[str, str]] = []

    def loader(name: str, device: str) -> FakePipe:
        loads.append((name, device))
        return FakePipe(name, device)

    pool = ReplicaPipelines(["cuda:0", "cuda:1"], loader)
    a, b = pool.get("tiny"), pool.get("tiny")
    assert {a.device, b.device} == {"cuda:0", "cuda:1"} and pool.free == 0
    with pytest.raises(TimeoutError):
        pool.get("tiny", timeout=0.05)  # both leased
    pool.release(a)
    pool.release(a)  # twice is harmless
    c = pool.get("tiny")
    assert c is a  # the replica keeps its model loaded
    assert loads == [("tiny", "cuda:0"), ("tiny", "cuda:1")]
    pool.release(b), pool.release(c)
    assert pool.free == 2 and pool.loaded_name == "tiny"


def test_a_failed_load_returns_the_replica():
    def loader(name: str, device: str) -> FakePipe:
        if name == "broken":
            raise InputError("broken: not a model folder")
        return FakePipe(name, device)

    pool = ReplicaPipelines(["cuda:0"], loader)
    with pytest.raises(InputError):
        pool.get("broken")
    assert pool.free == 1 and pool.get("tiny").device == "cuda:0"


def test_two_replicas_generate_at_the_same_time_and_one_pipeline_does_not():
    FakePipe.most = 0
    pool = ReplicaPipelines(["cuda:0", "cuda:1"], FakePipe)
    pipes = [pool.get("tiny"), pool.get("tiny")]
    threads = [threading.Thread(target=run_generation, args=(p, {}, None, lambda: False)) for p in pipes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert FakePipe.most == 2
    FakePipe.most = 0
    same = [
        threading.Thread(target=run_generation, args=(pipes[0], {}, None, lambda: False)) for _ in range(2)
    ]
    for t in same:
        t.start()
    for t in same:
        t.join()
    assert FakePipe.most == 1  # one pipeline never runs two generations at once


def test_studio_for_gpus(monkeypatch):
    assert studio_for_gpus(1) is None  # the default studio
    monkeypatch.setenv(ENV_GLOO_CPU, "1")
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    studio = studio_for_gpus(3)
    assert isinstance(studio.gpu, GpuQueue) and studio.gpu.slots == 3
    assert isinstance(studio.pipelines, ReplicaPipelines) and studio.pipelines.devices == ["cpu"] * 3
