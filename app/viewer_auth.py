"""Per-session viser servers that only answer the studio's proxy.

Each session's viser server listens on a loopback port; without a check any local process (another
user's job on a shared host, a browser tab doing a port scan through DNS rebinding) could open its
scene. viser has no authentication hook, so while a session's server starts, its websockets ``serve``
gets a ``process_request`` that demands the session's secret header; the proxy sends it, nobody else
knows it. Servers started outside :func:`viewer_secret` are left exactly as viser makes them.
"""

from __future__ import annotations

import contextlib
import hmac
import http
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import websockets.asyncio.server as ws_server

log = logging.getLogger(__name__)

HEADER = "X-FW-Viewer-Secret"

_ORIGINAL_SERVE = ws_server.serve
_lock = threading.Lock()  # one guarded server starts at a time
_pending: str | None = None


def _guard(secret: str, inner: Callable[..., Any] | None) -> Callable[..., Any]:
    expected = secret.encode()

    def process_request(connection: Any, request: Any) -> Any:
        given = (request.headers.get(HEADER) or "").encode()
        if not hmac.compare_digest(given, expected):
            return connection.respond(
                http.HTTPStatus.FORBIDDEN, "this viewer is reached through the studio\n"
            )
        return inner(connection, request) if inner is not None else None

    return process_request


def _serve(*args: Any, **kwargs: Any) -> Any:
    secret = _pending
    if secret is not None:
        kwargs["process_request"] = _guard(secret, kwargs.get("process_request"))
    return _ORIGINAL_SERVE(*args, **kwargs)


@contextlib.contextmanager
def viewer_secret(secret: str) -> Iterator[None]:
    """Every viser server constructed inside this block refuses connections without ``secret``.

    ``ViserServer.__init__`` returns only once its server listens, so the secret is bound by then.
    """
    global _pending
    with _lock:
        ws_server.serve = _serve  # viser looks it up as websockets.asyncio.server.serve at start
        _pending = secret
        try:
            yield
        finally:
            _pending = None


def proxy_headers(secret: str) -> dict[str, str]:
    """Headers the proxy sends upstream to a session's viser server."""
    return {HEADER: secret}
