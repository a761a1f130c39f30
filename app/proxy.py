"""Same-port proxy: viser's page and WebSocket served under the Gradio server at ``/viser/<token>/``.

Hugging Face Spaces exposes one port, so each session's viser server (bound to 127.0.0.1 on an
internal port) is reached through these routes. The viser client derives its WebSocket URL from the
page URL, so ``/viser/<token>/`` connects to ``ws(s)://<host>/viser/<token>``, which we pipe both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import viser
import websockets
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import RedirectResponse, Response

from app.sessions import SessionRegistry
from app.viewer_auth import proxy_headers

log = logging.getLogger(__name__)

CLIENT_HTML = Path(viser.__file__).resolve().parent / "client" / "build" / "index.html"
NOT_FOUND_CLOSE = 4404


@lru_cache(maxsize=1)
def client_page() -> tuple[bytes, bytes]:
    """viser's single-file client, plain and gzipped (read once)."""
    raw = CLIENT_HTML.read_bytes()
    return raw, gzip.compress(raw, compresslevel=6)


def add_viser_routes(app: FastAPI, registry: SessionRegistry) -> None:
    """Register ``GET /viser/<token>/`` and ``WS /viser/<token>`` on ``app`` (before Gradio is mounted)."""

    @app.get("/viser/{token}")
    async def viser_redirect(token: str) -> Response:
        # Only a live token gets a redirect, and only to its own page (a relative path on this
        # origin): "/viser/https:evil.example" must never become "Location: https:evil.example/".
        if registry.by_token(token) is None:
            return Response("unknown or expired viewer session; reload the page", status_code=404)
        return RedirectResponse(url=f"./{quote(token, safe='')}/", status_code=307)

    @app.get("/viser/{token}/")
    async def viser_page(token: str, request: Request) -> Response:
        if registry.by_token(token) is None:
            return Response("unknown or expired viewer session; reload the page", status_code=404)
        raw, packed = client_page()
        headers = {"Cache-Control": "no-store"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(packed, media_type="text/html; charset=utf-8", headers=headers)
        return Response(raw, media_type="text/html; charset=utf-8", headers=headers)

    @app.websocket("/viser/{token}")
    async def viser_socket(ws: WebSocket, token: str) -> None:
        session = registry.by_token(token)
        if session is None:
            await ws.close(code=NOT_FOUND_CLOSE)
            return
        protocols = list(ws.scope.get("subprotocols") or [])
        try:
            upstream = await websockets.connect(
                f"ws://127.0.0.1:{session.port}",
                subprotocols=protocols or None,
                additional_headers=proxy_headers(session.viewer_key),
                max_size=None,
                compression=None,
                open_timeout=10,
            )
        except (OSError, websockets.exceptions.WebSocketException) as exc:
            log.warning("viser proxy: session viewer unreachable (%s)", exc)
            await ws.close(code=1011)
            return
        await ws.accept(subprotocol=upstream.subprotocol)
        session.viewer_connected = True  # a browser page, not an API script: the long TTL applies

        async def down() -> None:
            async for message in upstream:
                if isinstance(message, bytes):
                    session.bytes_to_browser += len(message)
                    await ws.send_bytes(message)
                else:
                    session.bytes_to_browser += len(message.encode())
                    await ws.send_text(message)

        async def up() -> None:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                if msg.get("bytes") is not None:
                    await upstream.send(msg["bytes"])
                elif msg.get("text") is not None:
                    await upstream.send(msg["text"])

        tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                    await task
            await upstream.close()
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.close()
