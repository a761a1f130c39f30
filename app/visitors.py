"""Who is calling: a server-issued visitor secret (cookie), the client's address, and what it uploaded.

Gradio's ``session_hash`` is chosen by the client, so it proves nothing. A visitor is instead known by
a random secret the server sets as an HttpOnly cookie when the page is loaded; session keys, upload
ownership and per-address limits all hang off it. A request whose cookie we never issued is nobody.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

COOKIE = "fw_visitor"
MAX_VISITORS = 20_000  # remembered secrets; the oldest without open sessions are forgotten first
MAX_UPLOADS_PER_VISITOR = 200
# Bytes of uploads one client address may keep at once (released when its tabs close or go idle).
UPLOAD_BUDGET_BYTES = int(os.environ.get("FW_STUDIO_UPLOAD_BUDGET_MB", 2048)) << 20


def trust_forwarded_default() -> bool:
    """Behind a known reverse proxy (a Hugging Face Space, or FW_TRUST_PROXY=1) X-Forwarded-For is real."""
    if os.environ.get("FW_TRUST_PROXY") is not None:
        return os.environ["FW_TRUST_PROXY"].strip() not in ("", "0", "false", "no")
    return os.environ.get("SYSTEM") == "spaces"


def client_address(peer: str | None, headers: Mapping[str, str], trust_forwarded: bool) -> str:
    """The client's IP: the peer, or behind a trusted proxy the last X-Forwarded-For hop it appended.

    The right-most entry is the one our proxy wrote; entries to its left come from the client and can
    be forged, so they are never used.
    """
    if trust_forwarded:
        forwarded = headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    return (peer or "unknown")[:64]


def session_key(visitor_id: str, session_hash: str) -> str:
    """The registry key of one tab: not derivable from the (public) session hash alone."""
    return hashlib.sha256(f"{visitor_id}\x00{session_hash}".encode()).hexdigest()[:32]


@dataclass
class Visitor:
    """One browser (one cookie): where it came from and the files it uploaded."""

    id: str
    address: str
    created: float = field(default_factory=time.time)
    uploads: set[Path] = field(default_factory=set)
    upload_bytes: int = 0
    last_upload: float = 0.0


class VisitorBook:
    """Issued visitor secrets and their uploads; thread-safe, bounded in size."""

    def __init__(self, max_visitors: int = MAX_VISITORS) -> None:
        self.max_visitors = max_visitors
        self._lock = threading.Lock()
        self._visitors: OrderedDict[str, Visitor] = OrderedDict()
        self._pinned: dict[str, int] = {}  # visitor id -> open sessions (never forgotten while > 0)

    def issue(self, address: str) -> Visitor:
        """A new visitor with a fresh 192-bit secret."""
        visitor = Visitor(secrets.token_urlsafe(24), address)
        with self._lock:
            self._visitors[visitor.id] = visitor
            while len(self._visitors) > self.max_visitors:
                oldest = next((k for k in self._visitors if not self._pinned.get(k)), None)
                if oldest is None:
                    break
                self._visitors.pop(oldest)
        return visitor

    def get(self, secret: str | None) -> Visitor | None:
        if not secret or len(secret) > 64:
            return None
        with self._lock:
            return self._visitors.get(secret)

    def pin(self, visitor_id: str, delta: int) -> None:
        """Count the visitor's open sessions (a visitor with sessions is never forgotten)."""
        with self._lock:
            n = self._pinned.get(visitor_id, 0) + delta
            if n > 0:
                self._pinned[visitor_id] = n
            else:
                self._pinned.pop(visitor_id, None)

    def open_sessions(self, visitor_id: str) -> int:
        with self._lock:
            return self._pinned.get(visitor_id, 0)

    def add_uploads(self, visitor: Visitor, paths: Iterable[str | Path]) -> None:
        with self._lock:
            for p in paths:
                if len(visitor.uploads) >= MAX_UPLOADS_PER_VISITOR:
                    log.warning("visitor %s: upload ledger full", visitor.id[:6])
                    break
                path = Path(p).resolve()
                visitor.uploads.add(path)
                try:
                    visitor.upload_bytes += path.stat().st_size
                except OSError:
                    pass
            visitor.last_upload = time.time()

    def upload_room(self, address: str) -> int:
        """Bytes the client at ``address`` may still upload (all its visitors' live uploads count)."""
        with self._lock:
            used = sum(v.upload_bytes for v in self._visitors.values() if v.address == address)
        return max(0, UPLOAD_BUDGET_BYTES - used)

    def idle_uploaders(self, older_than_s: float, now: float | None = None) -> list[str]:
        """Visitors with uploads but no open session whose last upload is older than ``older_than_s``."""
        now = time.time() if now is None else now
        with self._lock:
            return [
                v.id
                for v in self._visitors.values()
                if v.uploads and not self._pinned.get(v.id) and now - v.last_upload > older_than_s
            ]

    def owns(self, visitor: Visitor | None, path: str | Path) -> bool:
        """True only for a file this visitor uploaded through the page (compared after resolving)."""
        if visitor is None:
            return False
        try:
            resolved = Path(path).resolve()
        except (OSError, RuntimeError, ValueError):
            return False
        with self._lock:
            return resolved in visitor.uploads

    def release_uploads(self, visitor_id: str) -> list[Path]:
        """Forget the visitor's uploads; returns those no other visitor also uploaded (safe to delete)."""
        with self._lock:
            visitor = self._visitors.get(visitor_id)
            if visitor is None:
                return []
            mine, visitor.uploads, visitor.upload_bytes = visitor.uploads, set(), 0
            others = set().union(*(v.uploads for v in self._visitors.values())) if self._visitors else set()
        return sorted(mine - others)

    def all_uploads(self) -> list[Path]:
        with self._lock:
            return (
                sorted(set().union(*(v.uploads for v in self._visitors.values()))) if self._visitors else []
            )

    def __len__(self) -> int:
        with self._lock:
            return len(self._visitors)
