"""One port: the Gradio page, each session's viser page and WebSocket, all through the same server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
import viser
import websockets

from app.callbacks import Studio
from app.server import BackgroundServer, create_app
from app.sessions import SessionRegistry


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    app, studio = create_app(Studio(SessionRegistry(tmp_path_factory.mktemp("sessions"))))
    server = BackgroundServer(app).start()
    yield server, studio
    server.stop()
    studio.registry.close_all()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_gradio_page_and_viser_page_share_the_port(served):
    server, studio = served
    status, body = _get(server.url)
    assert status == 200 and b"gradio" in body.lower()
    session = studio.registry.open("proxy-a")
    status, body = _get(server.url + session.viewer_url)
    assert status == 200 and b"<html" in body[:2000].lower() and len(body) > 100_000
    status, _ = _get(server.url + "viser/not-a-session/")
    assert status == 404
    status, body = _get(server.url + "config")
    assert status == 200 and json.loads(body)["analytics_enabled"] is False  # no usage pings


def _pipe(url: str, subprotocol: str) -> tuple[str | None, int]:
    async def run() -> tuple[str | None, int]:
        async with websockets.connect(url, subprotocols=[subprotocol], max_size=None, open_timeout=20) as ws:
            got = 0
            try:
                while got < 3:
                    msg = await asyncio.wait_for(ws.recv(), timeout=10)
                    got += 1 if msg else 0
            except asyncio.TimeoutError:
                pass
            return ws.subprotocol, got

    # A thread of its own: the browser tests' Playwright (sync API) may hold a running loop in this thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def test_websocket_is_piped_to_the_sessions_own_viser_server(served):
    server, studio = served
    a, b = studio.registry.open("proxy-a"), studio.registry.open("proxy-b")
    ws_base = server.url.replace("http://", "ws://")
    before = a.bytes_to_browser
    proto, got = _pipe(ws_base + f"viser/{a.token}", f"viser-v{viser.__version__}")
    assert proto == f"viser-v{viser.__version__}" and got >= 1
    assert a.bytes_to_browser > before and b.bytes_to_browser == 0


def test_unknown_token_socket_is_refused(served):
    server, _ = served
    with pytest.raises(websockets.exceptions.WebSocketException):
        _pipe(server.url.replace("http://", "ws://") + "viser/nope", f"viser-v{viser.__version__}")


def test_session_hash_maps_to_distinct_tokens(served):
    _, studio = served
    html = studio.on_load(SimpleNamespace(session_hash="proxy-c"))
    assert studio.registry.get("proxy-c").token in html


def test_session_viser_server_refuses_anyone_but_the_proxy(served):
    """Issue 17: the per-session viser port is loopback-only and also demands the session's secret."""
    server, studio = served
    session = studio.registry.open("proxy-direct")
    direct = f"127.0.0.1:{session.port}"
    status, _ = _get(f"http://{direct}/")
    assert status == 403
    with pytest.raises(websockets.exceptions.InvalidStatus):
        _pipe(f"ws://{direct}", f"viser-v{viser.__version__}")
    proto, got = _pipe(
        server.url.replace("http://", "ws://") + f"viser/{session.token}", f"viser-v{viser.__version__}"
    )
    assert got >= 1  # the proxy, which holds the secret, still gets through
