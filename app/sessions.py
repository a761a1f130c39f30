"""One viser scene per browser session, created on page load and torn down on unload.

A session is keyed by Gradio's ``session_hash``; its viewer is reached through an unguessable token
(``/viser/<token>/``) so one visitor can neither see nor drive another's scene, and its files live in
its own temporary folder, deleted when the session ends.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import viser

from app.path_editor import PathEditor
from app.viewer import WorldViewer
from fantasy_world.errors import FantasyWorldError
from fantasy_world.geometry.world_data import WorldData

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (viser moves to the next one if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Session:
    """Everything one visitor owns: the viser server, the path editor, the viewer, files, cancel flag."""

    key: str
    token: str
    server: viser.ViserServer
    editor: PathEditor
    viewer: WorldViewer
    workdir: Path
    cancel: threading.Event = field(default_factory=threading.Event)
    world: WorldData | None = None
    runs: int = 0
    bytes_to_browser: int = 0  # counted by the proxy: everything the viewer's WebSocket carried down
    created: float = field(default_factory=time.time)

    @property
    def port(self) -> int:
        return int(self.server.get_port())

    @property
    def viewer_url(self) -> str:
        """Relative URL of this session's viewer page (relative, so it works under any root path)."""
        return f"viser/{self.token}/"

    def next_run_dir(self) -> Path:
        self.runs += 1
        out = self.workdir / f"run{self.runs:03d}"
        out.mkdir(parents=True, exist_ok=True)
        return out

    def close(self) -> None:
        self.cancel.set()
        for part in (self.editor, self.viewer):
            try:
                part.close()
            except Exception:
                log.exception("session %s: closing %s failed", self.key[:8], type(part).__name__)
        self.server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class SessionRegistry:
    """Thread-safe map of live sessions, with a cap so a crowd cannot exhaust ports and memory."""

    def __init__(self, root: Path | None = None, max_sessions: int = 16) -> None:
        self.root = Path(root or Path(tempfile.gettempdir()) / "fantasyworld-studio")
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._by_key: dict[str, Session] = {}
        self._by_token: dict[str, Session] = {}

    def open(self, key: str) -> Session:
        """The session for ``key``, created on first use."""
        with self._lock:
            if key in self._by_key:
                return self._by_key[key]
            if len(self._by_key) >= self.max_sessions:
                raise FantasyWorldError(
                    f"the studio already has {self.max_sessions} open sessions; close a tab or try again later"
                )
            server = viser.ViserServer(host="127.0.0.1", port=free_port(), verbose=False)
            server.scene.set_up_direction("-y")  # OpenCV world: y points down
            server.gui.configure_theme(control_layout="collapsible", show_share_button=False)
            editor = PathEditor(server)
            viewer = WorldViewer(server)
            workdir = Path(tempfile.mkdtemp(prefix="session-", dir=self.root))
            session = Session(key, secrets.token_urlsafe(16), server, editor, viewer, workdir)
            self._by_key[key] = session
            self._by_token[session.token] = session
            log.info("session %s opened (viser port %d)", key[:8], session.port)
            return session

    def get(self, key: str) -> Session | None:
        with self._lock:
            return self._by_key.get(key)

    def by_token(self, token: str) -> Session | None:
        with self._lock:
            return self._by_token.get(token)

    def close(self, key: str) -> None:
        with self._lock:
            session = self._by_key.pop(key, None)
            if session is not None:
                self._by_token.pop(session.token, None)
        if session is not None:
            session.close()
            log.info("session %s closed", key[:8])

    def close_all(self) -> None:
        for key in list(self._by_key):
            self.close(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_key)
