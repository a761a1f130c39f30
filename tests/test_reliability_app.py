"""Issue 8 in the app: bad values, traversal, oversized and pickled uploads, files, sessions, queue, TTL."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from app.callbacks import Studio, as_int, one_line
from app.exports import bundle_zip_name
from app.files import MAX_BUNDLE_BYTES, MAX_CAMERA_BYTES, checked_upload, safe_name
from app.gpu_queue import GpuQueue, QueueFull
from app.sessions import SessionRegistry
from bench.harness.synthetic_world import synthetic_world
from fantasy_world.checkpoints.io import read_state_dict
from fantasy_world.errors import CheckpointError, InputError
from fantasy_world.geometry import write_bundle
from fantasy_world.validation import MAX_IMAGE_BYTES

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "cameras"
GOOD = ("a ball", "", None, "tiny", 5, 32, 48, 1, 1.0, 0, 0, 10_000)  # generate() positional values


def req(name: str = "a") -> SimpleNamespace:
    return SimpleNamespace(session_hash=name)


@pytest.fixture()
def uploads(tmp_path) -> Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


@pytest.fixture()
def studio(tmp_path, uploads):
    st = Studio(SessionRegistry(tmp_path / "sessions", max_sessions=4), upload_roots=[uploads])
    yield st
    st.registry.close_all()


class Marker:
    """Unpickling this creates ``path`` (open(path, "w")): proof that a loader executed the payload."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# ------------------------------------------------------------------------------ bad values, app
@pytest.mark.parametrize(
    ("index", "value", "match"),
    [
        (0, "", "prompt"),
        (0, "x" * 5000, "prompt"),
        (0, None, "prompt"),
        (1, "bad\x00", "negative_prompt"),
        (4, 6, "frames"),
        (4, 5.5, "frames"),
        (4, None, "frames"),
        (4, 10_001, "frames"),
        (5, 33, "height"),
        (6, 40_000, "size"),
        (7, 0, "steps"),
        (8, float("nan"), "guidance"),
        (8, "3", "guidance"),
        (9, -1, "seed"),
        (9, 2**70, "seed"),
        (10, -2, "preview_every"),
    ],
)
def test_bad_values_give_one_line_errors_and_never_queue(studio, index, value, match):
    args = list(GOOD)
    args[index] = value
    out = list(studio.generate(*args, req(), None))
    status = out[-1][0]
    assert len(out) == 1 and "fw-error" in status and match in status, status
    assert "\n" not in status and "Traceback" not in status
    assert studio.gpu.waiting == 0 and studio.gpu.running == 0
    assert "fw-error" not in studio.apply_preset("pan", 9, request=req())  # still serving


def test_messages_are_single_bounded_lines():
    assert one_line("a\nb\r\n  c") == "a b c"
    assert len(one_line("x" * 10_000)) <= 300
    assert as_int(5.0, "n") == 5
    with pytest.raises(InputError):
        as_int(True, "n")


# -------------------------------------------------------------------------- traversal attempts
def test_traversal_and_outside_paths_are_refused_everywhere(studio, uploads, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text((ASSETS / sorted(os.listdir(ASSETS))[0]).read_text())
    (uploads / "link.json").symlink_to(secret)
    attempts = [
        str(secret),
        str(uploads / ".." / "secret.json"),
        str(uploads / "link.json"),
        "/etc/passwd",
        "../../../../etc/passwd",
        {"path": str(secret)},
        "",
    ]
    before = studio.registry.open("a").editor.path
    for attempt in attempts:
        status = studio.upload_path(attempt, request=req())
        assert "fw-error" in status, (attempt, status)
        reopened = list(studio.reopen(attempt, 10_000, request=req()))[-1][0]
        assert "fw-error" in reopened, (attempt, reopened)
        image_args = list(GOOD)
        image_args[2] = attempt or "x"
        assert "fw-error" in list(studio.generate(*image_args, req(), None))[-1][0]
    assert studio.registry.get("a").editor.path is before
    assert studio.registry.get("a").viewer.world is None
    good = uploads / "ok.json"
    good.write_text(secret.read_text())
    assert "fw-error" not in studio.upload_path(str(good), request=req())


def test_checked_upload_resolves_before_checking(uploads, tmp_path):
    inner = uploads / "a" / "b.json"
    inner.parent.mkdir()
    inner.write_text("{}")
    assert checked_upload(str(uploads / "a" / ".." / "a" / "b.json"), [uploads], "camera") == inner.resolve()
    with pytest.raises(InputError, match="refused"):
        checked_upload(str(uploads / ".." / ".." / "etc" / "passwd"), [uploads], "camera")


# ----------------------------------------------------------------------------- oversized uploads
@pytest.mark.parametrize(
    ("kind", "name", "limit"),
    [
        ("camera", "big.json", MAX_CAMERA_BYTES),
        ("bundle", "big.zip", MAX_BUNDLE_BYTES),
        ("image", "big.png", MAX_IMAGE_BYTES),
    ],
)
def test_oversized_uploads_are_refused_before_reading(studio, uploads, kind, name, limit):
    big = uploads / name
    with open(big, "wb") as f:  # sparse: the size is real, the disk use is not
        f.truncate(limit + 1)
    if kind == "camera":
        status = studio.upload_path(str(big), request=req())
    elif kind == "bundle":
        status = list(studio.reopen(str(big), 10_000, request=req()))[-1][0]
    else:
        args = list(GOOD)
        args[2] = str(big)
        status = list(studio.generate(*args, req(), None))[-1][0]
    assert "fw-error" in status and "expected at most" in status, status


def test_undecodable_and_bomb_images_are_refused_up_front(studio, uploads):
    from PIL import Image

    junk = uploads / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    bomb = uploads / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(bomb)  # 400 M pixels in a few hundred KB
    for path, match in ((junk, "not a decodable image"), (bomb, "pixels")):
        args = list(GOOD)
        args[2] = str(path)
        status = list(studio.generate(*args, req(), None))[-1][0]
        assert "fw-error" in status and match in status, status


# ------------------------------------------------------------------------------ pickle payloads
def test_pickled_npz_and_bundle_are_refused_without_executing(studio, uploads, tmp_path):
    marker = tmp_path / "pwned"
    world = synthetic_world(num_frames=2, height=32, width=48)
    files = write_bundle(world, tmp_path / "bundle")
    with np.load(files["world.npz"], allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["depth_conf"] = np.array([Marker(marker)], dtype=object)
    evil = uploads / "world.npz"
    with open(evil, "wb") as f:
        np.savez(f, **arrays)  # np.savez pickles object arrays
    evil_zip = uploads / "bundle.zip"
    with zipfile.ZipFile(evil_zip, "w") as zf:
        zf.write(evil, "bundle/world.npz")
    for upload in (evil, evil_zip):
        status = list(studio.reopen(str(upload), 10_000, request=req()))[-1][0]
        assert "fw-error" in status, status
    assert not marker.exists(), "a pickle payload was executed"
    pickle.loads(pickle.dumps(Marker(marker)))  # the payload is live: loading it really creates the file
    assert marker.exists()


def test_pickled_weight_file_is_refused_without_executing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pth"
    torch.save({"weight": torch.zeros(2), "evil": Marker(marker)}, path)
    with pytest.raises(CheckpointError, match="weights_only") as err:
        read_state_dict(path)
    assert "\n" not in str(err.value)
    assert not marker.exists(), "torch.load executed a pickle payload"


# ----------------------------------------------------------------------------------- file names
def test_download_names_are_sanitised():
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("<script>alert(1)</script>") == "script_alert_1_script"
    assert safe_name("....") == "file" and safe_name("") == "file"
    assert len(safe_name("a" * 500)) <= 60
    world = synthetic_world(num_frames=1, height=32, width=48)
    world.meta = {"prompt": "../../evil\\name\x00 with spaces", "seed": 7}
    name = bundle_zip_name(world)
    assert name == "bundle_evil_name_with_spaces_seed7.zip"
    assert "/" not in name and "\\" not in name and ".." not in name


# ---------------------------------------------------------------------------- sessions and TTL
def test_unload_frees_scene_port_and_files(studio):
    import socket

    studio.on_load(req("x"))
    s = studio.registry.get("x")
    run = s.next_run_dir()
    (run / "f.bin").write_bytes(b"1")
    port, token, workdir = s.port, s.token, s.workdir
    studio.on_unload(req("x"))
    assert studio.registry.get("x") is None and studio.registry.by_token(token) is None
    assert not workdir.exists() and s.closed
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the session's viser server still listens"
    with pytest.raises(Exception, match="closed"):
        s.next_run_dir()  # a result arriving late cannot recreate the folder
    assert not workdir.exists()


def test_old_runs_are_pruned(studio):
    s = studio.registry.open("a")
    runs = [s.next_run_dir() for _ in range(6)]
    assert [r.exists() for r in runs] == [False, False, False, True, True, True]


def test_ttl_sweep_closes_idle_sessions_and_removes_orphans(tmp_path):
    reg = SessionRegistry(tmp_path / "root", ttl_s=60)
    try:
        idle, busy, fresh = (reg.open(k) for k in ("idle", "busy", "fresh"))
        orphan = reg.root / "session-orphan"
        orphan.mkdir()
        (orphan / "left.bin").write_bytes(b"x")
        new_orphan = reg.root / "session-new"
        new_orphan.mkdir()
        now = idle.last_seen + 3600
        os.utime(orphan, (now - 3600, now - 3600))
        os.utime(new_orphan, (now, now))
        busy.busy = True
        fresh.last_seen = now
        assert reg.sweep(now) == 2  # the idle session and the old orphan folder
        assert reg.get("idle") is None and not idle.workdir.exists()
        assert reg.get("busy") is busy and reg.get("fresh") is fresh
        assert not orphan.exists() and new_orphan.exists()
    finally:
        reg.close_all()


# ----------------------------------------------------------------------------------- GPU queue
def test_gpu_queue_is_first_come_first_served_with_positions():
    q = GpuQueue(slots=1, max_waiting=3)
    a, b, c = q.enter(), q.enter(), q.enter()
    assert (a.position, b.position, c.position) == (1, 2, 3)
    with pytest.raises(QueueFull):
        q.enter()
    assert not b.acquire(0.01)  # not its turn
    assert a.acquire(0.01) and (a.position, b.position, c.position) == (0, 1, 2)
    c.release()  # leaving the line (cancel while waiting) frees its place
    a.release()
    assert b.acquire(0.01) and b.position == 0 and c.position == -1
    b.release()
    assert q.waiting == 0 and q.running == 0
