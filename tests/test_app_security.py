"""Issue 17 over real HTTP: file inputs, visitor secrets, per-address limits, redirects, served paths.

Every request here is what an attacker with curl would send to ``/gradio_api/...``; the studio runs
in-process on a loopback port with the same middleware and Gradio mount as ``python app.py``.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.callbacks import Studio
from app.files import gradio_upload_root
from app.server import BackgroundServer, create_app
from app.sessions import SessionRegistry
from app.visitors import COOKIE
from bench.harness.synthetic_world import synthetic_world
from fantasy_world.geometry import write_bundle

MAX_PER_ADDRESS = 3


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    registry = SessionRegistry(
        tmp_path_factory.mktemp("sec-sessions"), max_sessions=8, max_per_address=MAX_PER_ADDRESS
    )
    studio = Studio(registry)
    studio.trust_forwarded = True  # as behind a Space's proxy: X-Forwarded-For names the client
    app, studio = create_app(studio)
    server = BackgroundServer(app).start()
    yield server, studio
    server.stop()
    studio.registry.close_all()


@pytest.fixture(scope="module")
def fn_index(served) -> dict[str, int]:
    server, _ = served
    config = httpx.get(server.url + "config", timeout=30).json()
    return {d["api_name"]: d["id"] for d in config["dependencies"]}


def visitor(server, address: str = "10.0.0.1") -> httpx.Client:
    """A client that loaded the page (and so holds a visitor cookie) from ``address``."""
    client = httpx.Client(base_url=server.url, timeout=60, headers={"x-forwarded-for": address})
    page = client.get("/")
    assert page.status_code == 200 and COOKIE in client.cookies
    return client


def call(client: httpx.Client, fn: int, data: list, session_hash: str) -> tuple[int, object]:
    """POST /gradio_api/queue/join, then read the event stream; (HTTP status of the join, outputs)."""
    body = {
        "data": data,
        "fn_index": fn,
        "session_hash": session_hash,
        "event_data": None,
        "trigger_id": None,
    }
    joined = client.post("/gradio_api/queue/join", json=body)
    if joined.status_code != 200:
        return joined.status_code, joined.json()
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("msg") == "process_completed":
                return 200, msg.get("output", {}).get("data", msg.get("output"))
    raise AssertionError("event stream ended without a result")


def upload(client: httpx.Client, path: Path) -> str:
    reply = client.post("/gradio_api/upload", files={"files": (path.name, path.read_bytes())})
    assert reply.status_code == 200, reply.text
    return reply.json()[0]


def cached_copies(name: str) -> list[Path]:
    return list(gradio_upload_root().rglob(name)) if gradio_upload_root().is_dir() else []


def file_data(path: str | Path) -> dict:
    return {"path": str(path), "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}


# ------------------------------------------------------------------------------------ file access
def test_filedata_path_outside_the_upload_folder_is_refused_and_not_copied(served, fn_index, tmp_path):
    server, studio = served
    secret = tmp_path / f"secret-{uuid.uuid4().hex}.npz"
    write_bundle(synthetic_world(num_frames=1, height=32, width=48), tmp_path / "b")
    secret.write_bytes((tmp_path / "b" / "world.npz").read_bytes())
    app_file = Path(__file__).resolve().parents[1] / "app" / "server.py"
    page = visitor(server)
    call(page, fn_index["on_load"], [], "victim-tab")
    for target in (secret, app_file, Path("/etc/passwd")):
        for client in (page, httpx.Client(base_url=server.url, timeout=60)):  # with and without a cookie
            status, out = call(client, fn_index["bundle"], [file_data(target), 10_000], "victim-tab")
            text = json.dumps(out)
            assert status == 403, (target, status, out)
            assert str(target.parent) not in text and "Traceback" not in text
    assert cached_copies(secret.name) == [], "Gradio copied a file the visitor never uploaded"
    assert cached_copies("server.py") == [] and cached_copies("passwd") == []
    session = studio.registry.get(next(k for k in studio.registry._by_key))
    assert session.viewer.world is None


def test_another_visitors_upload_is_refused_and_own_upload_opens(served, fn_index, tmp_path):
    server, studio = served
    write_bundle(synthetic_world(num_frames=2, height=32, width=48), tmp_path / "b")
    mine = tmp_path / f"w{uuid.uuid4().hex[:8]}.npz"
    mine.write_bytes((tmp_path / "b" / "world.npz").read_bytes())
    alice, mallory = visitor(server, "10.0.1.1"), visitor(server, "10.0.1.2")
    assert call(alice, fn_index["on_load"], [], "alice")[0] == 200
    assert call(mallory, fn_index["on_load"], [], "mallory")[0] == 200
    stored = upload(alice, mine)
    status, out = call(mallory, fn_index["bundle"], [file_data(stored), 10_000], "mallory")
    assert status == 403 and stored not in json.dumps(out)
    status, out = call(alice, fn_index["bundle"], [file_data(stored), 10_000], "alice")
    assert status == 200 and "fw-ok" in out[0], out
    no_cookie = httpx.Client(base_url=server.url, timeout=60)
    assert no_cookie.post("/gradio_api/upload", files={"files": ("x.json", b"{}")}).status_code == 403


def test_session_folders_are_not_served_by_path(served, fn_index, tmp_path):
    server, studio = served
    page = visitor(server, "10.0.2.1")
    call(page, fn_index["on_load"], [], "folder-tab")
    session = max(studio.registry._by_key.values(), key=lambda s: s.created)
    leaked = session.workdir / "opened" / "world.npz"
    leaked.parent.mkdir(parents=True, exist_ok=True)
    leaked.write_bytes(b"private")
    for client in (page, httpx.Client(base_url=server.url, timeout=60)):
        assert client.get(f"/gradio_api/file={leaked}").status_code == 403


# --------------------------------------------------------------------------------------- sessions
def test_fifty_invented_session_hashes_cannot_fill_the_cap(served, fn_index):
    server, studio = served
    before = len(studio.registry)
    bare = httpx.Client(base_url=server.url, timeout=60)
    for i in range(10):  # no page load, no cookie: no session at all
        status, out = call(bare, fn_index["on_load"], [], f"bare-{i}")
        assert status == 200 and "fw-error" in json.dumps(out)
    assert len(studio.registry) == before
    attacker = visitor(server, "10.6.6.6")
    opened = 0
    for _ in range(50):
        _, out = call(attacker, fn_index["on_load"], [], secrets.token_hex(6))
        opened += "fw-viewer" in json.dumps(out)
    assert opened == MAX_PER_ADDRESS and studio.registry.count(address="10.6.6.6") == MAX_PER_ADDRESS
    assert len(studio.registry) < studio.registry.max_sessions
    status, out = call(visitor(server, "10.7.7.7"), fn_index["on_load"], [], "real-browser")
    assert "fw-viewer" in json.dumps(out), "a new visitor was locked out"
    for key in [k for k, s in studio.registry._by_key.items() if s.address == "10.6.6.6"]:
        studio.registry.close(key)


def test_known_session_hash_gives_a_stranger_neither_token_nor_scene(served, fn_index):
    server, studio = served
    victim, stranger = visitor(server, "10.0.3.1"), visitor(server, "10.0.3.2")
    _, out = call(victim, fn_index["on_load"], [], "public-hash")
    victim_session = max(studio.registry._by_key.values(), key=lambda s: s.created)
    assert victim_session.token in json.dumps(out)
    _, out = call(stranger, fn_index["on_load"], [], "public-hash")
    assert victim_session.token not in json.dumps(out)
    _, out = call(stranger, fn_index["on_preset_change"], ["pan", 9], "public-hash")
    assert "Camera path: pan" in json.dumps(out)  # drawn in the stranger's own scene ...
    _, out = call(stranger, fn_index["on_preset_change"], ["pan", 9], "never-loaded")
    assert "reload" in json.dumps(out)  # ... and a hash never loaded with this cookie has no scene
    assert victim_session.editor.path.preset_name != "pan"
    assert victim_session.key != "public-hash" and "public-hash" not in str(victim_session.workdir)


def test_api_sessions_without_a_page_expire_fast(tmp_path):
    reg = SessionRegistry(tmp_path / "s", ttl_s=3600, api_ttl_s=120)
    try:
        reg.open("api", address="1.1.1.1")
        page = reg.open("page", address="1.1.1.2")
        page.viewer_connected = True
        now = time.time() + 300
        assert reg.expired(now) == ["api"]
        reg.sweep(now)
        assert reg.get("api") is None and reg.get("page") is page
        with pytest.raises(Exception, match="closed"):
            reg.open("api")  # a late request of the closed tab cannot bring it back
        assert reg.open("api", page_load=True).key == "api"  # a page load may
    finally:
        reg.close_all()


# --------------------------------------------------------------------------------------- redirect
@pytest.mark.parametrize(
    "target", ["https:evil.example", "https:%2F%2Fevil.example", "%2F%2Fevil.example", "x"]
)
def test_viewer_redirect_never_leaves_the_origin(served, target):
    server, studio = served
    reply = httpx.get(server.url + "viser/" + target, follow_redirects=False, timeout=30)
    assert reply.status_code == 404 and "location" not in reply.headers
    key = f"redirect-{uuid.uuid4().hex}"
    token = studio.registry.open(key).token
    reply = httpx.get(server.url + f"viser/{token}", follow_redirects=False, timeout=30)
    assert reply.status_code == 307 and reply.headers["location"] == f"./{token}/"
    studio.registry.close(key)


def test_cookie_is_http_only_and_cross_site_ready_over_https(served):
    server, _ = served
    plain = httpx.get(server.url, timeout=30).headers["set-cookie"]
    assert "HttpOnly" in plain and "SameSite=Lax" in plain
    https = httpx.get(server.url, headers={"x-forwarded-proto": "https"}, timeout=30).headers["set-cookie"]
    assert "Secure" in https and "SameSite=None" in https
    assert np.unique([httpx.get(server.url, timeout=30).cookies[COOKIE] for _ in range(3)]).size == 3


# ------------------------------------------------------------------------------ corrupt uploads
def test_corrupt_start_image_is_refused_cleared_and_the_page_keeps_working(served, fn_index, tmp_path):
    server, studio = served
    page = visitor(server, "10.0.4.1")
    call(page, fn_index["on_load"], [], "img-tab")
    fake = tmp_path / "fake.png"
    fake.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    stored = upload(page, fake)
    status, out = call(page, fn_index["start_image"], [file_data(stored)], "img-tab")
    text = json.dumps(out)
    assert status == 200 and out[0].get("value", "missing") is None, out  # the box is cleared
    assert "fake.png" in out[1] and "fw-error" in out[1] and "expected" in out[1]
    assert "/tmp" not in text and str(Path(stored).parent) not in text and "Traceback" not in text
    generate = ["a ball", "", file_data(stored), "tiny", 5, 32, 48, 1, 1.0, 0, 0, 10_000, None]
    status, out = call(page, fn_index["generate"], generate, "img-tab")
    assert status == 200 and "fake.png" in out[0] and "fw-error" in out[0], out
    assert "/tmp" not in json.dumps(out) and "UnidentifiedImageError" not in json.dumps(out)
    _, out = call(page, fn_index["on_preset_change"], ["pan", 9], "img-tab")
    assert "Camera path: pan" in json.dumps(out)


def test_camera_file_of_the_wrong_type_is_refused_and_cleared(served, fn_index, tmp_path):
    server, _ = served
    page = visitor(server, "10.0.4.2")
    call(page, fn_index["on_load"], [], "cam-tab")
    bad = tmp_path / "notes.exe"
    bad.write_bytes(b"MZ")
    status, out = call(page, fn_index["camera_file"], [file_data(upload(page, bad)), "tiny"], "cam-tab")
    assert status == 200 and "notes.exe" in out[0] and ".json" in out[0] and out[2].get("value", 0) is None
    broken = tmp_path / "broken.json"
    broken.write_text('{"keyframes": 3}')
    status, out = call(page, fn_index["camera_file"], [file_data(upload(page, broken)), "tiny"], "cam-tab")
    assert "Camera file rejected" in out[0] and "/tmp" not in json.dumps(out)


def test_visitor_cookie_is_found_among_other_sites_cookies():
    from app.guard import visitor_cookie

    header = 'a="{weird}"; spaces-jwt=x.y.z; fw_visitor=abc_DEF-123; other=1'
    assert visitor_cookie(header) == "abc_DEF-123"
    assert visitor_cookie("fw_visitorx=1; xfw_visitor=2") is None and visitor_cookie("") is None


@pytest.mark.parametrize(
    "target", ["https://example.com/x.png", "http:%2F%2F127.0.0.1/", "https%3A//example.com/"]
)
def test_the_server_fetches_no_external_urls_for_a_caller(served, target):
    server, _ = served
    for route in ("gradio_api/file=", "gradio_api/proxy="):
        reply = httpx.get(server.url + route + target, timeout=30, follow_redirects=False)
        assert reply.status_code == 403 and "location" not in reply.headers


def test_uploads_are_budgeted_per_address_and_idle_ones_are_swept(served, monkeypatch, tmp_path):
    server, studio = served
    monkeypatch.setattr("app.visitors.UPLOAD_BUDGET_BYTES", 50_000)
    page = visitor(server, "10.0.5.1")
    first = tmp_path / "a.json"
    first.write_bytes(b"{}" + b" " * 30_000)
    stored = Path(upload(page, first))
    again = visitor(server, "10.0.5.1")  # a fresh cookie from the same address shares the budget
    reply = again.post("/gradio_api/upload", files={"files": ("b.json", b" " * 30_000)})
    assert reply.status_code == 413 and "MB" in reply.json()["error"]
    assert (
        visitor(server, "10.0.5.2").post("/gradio_api/upload", files={"files": ("c.json", b"{}")}).status_code
        == 200
    )
    assert stored.exists()
    owner = next(v for v in studio.visitors._visitors.values() if stored.resolve() in v.uploads)
    owner.last_upload -= 3600  # an hour ago, and the visitor never opened a tab
    studio.janitor.sweep()
    assert not stored.exists() and studio.visitors.upload_room("10.0.5.1") == 50_000
