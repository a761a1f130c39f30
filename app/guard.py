"""ASGI guard in front of Gradio: issues the visitor cookie, records uploads, refuses foreign file inputs.

Gradio copies any ``FileData`` path named in an event's input into its public cache before our code
runs. This middleware sees every request first: an event whose body names a file that this visitor
did not upload through ``/gradio_api/upload`` is refused (403, one line, no path echoed) before
Gradio reads, copies or even parses it.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from app.visitors import COOKIE, Visitor, VisitorBook, client_address

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API = "/gradio_api/"
UPLOAD = "/gradio_api/upload"
PAGES = ("/",)
MAX_EVENT_BODY = 4 << 20  # an event's JSON (prompt, numbers, file references); uploads go elsewhere
MAX_UPLOAD_REPLY = 1 << 20

FILE_REFUSED = "file input refused: only files you uploaded from this page can be used"
NO_VISITOR = "no studio session: open the page in a browser (cookies must be allowed) and try again"


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def visitor_cookie(cookie_header: str) -> str | None:
    """The visitor secret from a Cookie header (None when absent).

    Parsed by hand: ``http.cookies`` gives up on the whole header at the first cookie it dislikes,
    and a Space's page carries other sites' cookies we do not control.
    """
    for part in cookie_header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE:
            return value.strip().strip('"') or None
    return None


def file_references(value: Any, depth: int = 0) -> list[Any]:
    """Every value in a JSON body that Gradio would treat as a file: dicts with a ``path`` or FileData meta."""
    if depth > 64:  # deeper than any component value; treat as hostile
        return [None]
    found: list[Any] = []
    if isinstance(value, dict):
        meta = value.get("meta")
        is_file_data = isinstance(meta, dict) and meta.get("_type") == "gradio.FileData"
        if "path" in value or is_file_data:
            found.append(value.get("path"))
        for item in value.values():
            found += file_references(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            found += file_references(item, depth + 1)
    return found


def _fetches_elsewhere(path: str) -> bool:
    """``/gradio_api/file=<http url>`` and ``/gradio_api/proxy=…`` make the server fetch another site
    for the caller (Gradio streams public URLs back); nothing in the studio uses that, so it is off."""
    target = unquote(path)
    for prefix in (API + "file=", API + "proxy="):
        if target.startswith(prefix):
            rest = target[len(prefix) :].lstrip("/").lower()
            return prefix.endswith("proxy=") or rest.startswith(("http:", "https:", "ftp:", "//"))
    return False


async def _reply(send: Send, status: int, text: str) -> None:
    body = json.dumps({"error": text, "detail": text}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class StudioGuard:
    """Wraps the whole ASGI app (FastAPI with Gradio mounted)."""

    def __init__(self, app: ASGIApp, book: VisitorBook, trust_forwarded: bool = False) -> None:
        self.app = app
        self.book = book
        self.trust_forwarded = trust_forwarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        visitor = self.book.get(visitor_cookie(headers.get("cookie", "")))
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if method in ("GET", "HEAD") and path in PAGES and visitor is None:
            await self._page_with_cookie(scope, receive, send, headers)
        elif method == "POST" and path.rstrip("/") == UPLOAD:
            if visitor is None:
                await _reply(send, 403, NO_VISITOR)
                return
            length = headers.get("content-length", "")
            if not length.isdigit():
                await _reply(send, 411, "upload refused: the request must state its length")
                return
            room = self.book.upload_room(visitor.address)
            if int(length) > room:
                await _reply(
                    send,
                    413,
                    f"upload refused: {int(length) >> 20} MB; at most {room >> 20} MB more from your address",
                )
                return
            await self._upload(scope, receive, send, visitor)
        elif method == "POST" and path.startswith(API):
            await self._event(scope, receive, send, visitor)
        elif _fetches_elsewhere(path):
            await _reply(send, 403, "external URLs are not fetched by this studio")
        else:
            await self.app(scope, receive, send)

    # ------------------------------------------------------------------------------------- pages
    async def _page_with_cookie(self, scope: Scope, receive: Receive, send: Send, headers: dict) -> None:
        peer = (scope.get("client") or ("", 0))[0]
        visitor = self.book.issue(client_address(peer, headers, self.trust_forwarded))
        https = scope.get("scheme") == "https" or (
            self.trust_forwarded and headers.get("x-forwarded-proto", "").split(",")[-1].strip() == "https"
        )
        # In an iframe on another site (a Space page) only SameSite=None; Secure; Partitioned cookies flow.
        attrs = "SameSite=None; Secure; Partitioned" if https else "SameSite=Lax"
        cookie = f"{COOKIE}={visitor.id}; Path=/; HttpOnly; {attrs}".encode()

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    # ----------------------------------------------------------------------------------- uploads
    async def _upload(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        """Let Gradio store the files, and record the returned paths before the client sees them."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                if sum(map(len, chunks)) > MAX_UPLOAD_REPLY:
                    raise RuntimeError("upload reply too large")
                return
            body = b"".join(chunks)
            if start.get("status") == 200:
                self._record(visitor, start, body)
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)

    def _record(self, visitor: Visitor, start: Message, body: bytes) -> None:
        encoding = dict(start.get("headers", [])).get(b"content-encoding", b"")
        try:
            paths = json.loads(gzip.decompress(body) if encoding == b"gzip" else body)
        except (ValueError, OSError):
            log.warning("upload reply not understood; nothing recorded")
            return
        if isinstance(paths, list):
            self.book.add_uploads(visitor, [p for p in paths if isinstance(p, str)])

    # ------------------------------------------------------------------------------------ events
    async def _event(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor | None) -> None:
        """Read the (small) JSON body, check its file references, then replay it to Gradio."""
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
            if len(body) > MAX_EVENT_BODY:
                await _reply(send, 413, f"request too large: expected at most {MAX_EVENT_BODY >> 20} MB")
                return
        try:
            data = json.loads(body) if body.strip() else None
        except (ValueError, RecursionError):
            data = None  # not JSON: Gradio answers it (no file can be named without JSON)
        refs = file_references(data) if data is not None else []
        if any(not isinstance(p, str) or not self.book.owns(visitor, p) for p in refs):
            log.warning("refused a file input that this visitor did not upload (%d references)", len(refs))
            await _reply(send, 403, FILE_REFUSED if visitor is not None else NO_VISITOR)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
