"""One viser scene per browser session, created on page load and torn down on unload.

A session is keyed by Gradio's ``session_hash``; its viewer is reached through an unguessable token
(``/viser/<token>/``) so one visitor can neither see nor drive another's scene, and its files live in
its own temporary folder, deleted when the session ends. Tabs that vanish without an unload event are
closed by a time-to-live sweep (no viewer connected and no request for ``ttl_s``), which also removes
folders left behind by an earlier process.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import viser

from app.framing import frame_scene, ground_plane
from app.path_editor import PathEditor
from app.stage import apply_framing, draw_ground, scene_lock
from app.viewer import WorldViewer
from app.viewer_auth import viewer_secret
from fantasy_world.errors import FantasyWorldError
from fantasy_world.geometry.world_data import WorldData

log = logging.getLogger(__name__)

DEFAULT_TTL_S = float(os.environ.get("FW_STUDIO_TTL_S", 3600))  # idle time before a session's files go
# A session whose page never connected its 3-D view (an API script, not a browser) goes much sooner.
DEFAULT_API_TTL_S = float(os.environ.get("FW_STUDIO_API_TTL_S", 300))
DEFAULT_MAX_PER_ADDRESS = int(os.environ.get("FW_STUDIO_MAX_PER_IP", 4))
MAX_REMEMBERED_CLOSED = 10_000


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (viser moves to the next one if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Timing:
    """Measured for the benchmark: end of generation → first point cloud drawn (and bundle export)."""

    to_first_cloud_s: float = 0.0
    export_s: float = 0.0


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
    keep_runs: int = 3  # older run folders are deleted (Gradio already holds copies of their downloads)
    bytes_to_browser: int = 0  # counted by the proxy: everything the viewer's WebSocket carried down
    created: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    busy: bool = False  # a generation or re-open is running for this session
    closed: bool = False
    address: str | None = None  # the client's IP (None for in-process callers: tests, notebooks)
    visitor: str | None = None  # the visitor secret it was opened with
    viewer_connected: bool = False  # set by the proxy once a browser's 3-D view connected
    viewer_key: str = ""  # the secret the proxy presents to this session's viser server
    timing: Timing = field(default_factory=Timing)  # this tab's last result (concurrent tabs don't share it)

    def touch(self) -> None:
        self.last_seen = time.time()

    @property
    def port(self) -> int:
        return int(self.server.get_port())

    @property
    def viewer_url(self) -> str:
        """Relative URL of this session's viewer page (relative, so it works under any root path)."""
        return f"viser/{self.token}/"

    def frame_scene(self, world_path: bool = False) -> None:
        """Frame the view on the path and any generated points (``world_path``: the world's own path)."""
        with scene_lock(self.server):
            world = self.viewer.world
            if world_path and world is not None:
                c2w = np.asarray(world.requested_c2w)
            else:
                c2w = self.editor.path.sample().c2w
            points = self.viewer.sample_points()
            apply_framing(self.server, frame_scene(c2w, points))
            draw_ground(self.server, ground_plane(c2w, points))

    def next_run_dir(self) -> Path:
        """A fresh folder for one result; refuses once closed so a late result cannot recreate files."""
        if self.closed:
            raise FantasyWorldError("this session was closed (tab closed or expired); reload the page")
        self.runs += 1
        out = self.workdir / f"run{self.runs:03d}"
        out.mkdir(parents=True, exist_ok=False)
        for old in sorted(self.workdir.glob("run[0-9][0-9][0-9]"))[: -self.keep_runs]:
            shutil.rmtree(old, ignore_errors=True)
        return out

    def close(self) -> None:
        self.closed = True
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

    def __init__(
        self,
        root: Path | None = None,
        max_sessions: int = 16,
        ttl_s: float = DEFAULT_TTL_S,
        max_per_address: int = DEFAULT_MAX_PER_ADDRESS,
        api_ttl_s: float = DEFAULT_API_TTL_S,
    ) -> None:
        self.root = Path(root or Path(tempfile.gettempdir()) / "fantasyworld-studio")
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_sessions = max_sessions
        self.max_per_address = max_per_address
        self.ttl_s = float(ttl_s)
        self.api_ttl_s = min(float(api_ttl_s), self.ttl_s)
        self.on_close: list[Callable[[Session], None]] = []  # cleanup hooks (uploads, Gradio's copies)
        self.on_sweep: list[Callable[[], object]] = []  # run after every sweep (stray temp files)
        self._lock = threading.Lock()
        self._by_key: dict[str, Session] = {}
        self._by_token: dict[str, Session] = {}
        self._closed: OrderedDict[str, float] = OrderedDict()  # keys never to be re-created
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def open(
        self, key: str, address: str | None = None, visitor: str | None = None, page_load: bool = False
    ) -> Session:
        """The session for ``key``, created on first use.

        A closed key is only opened again by a page load (``page_load``), never by a late request of
        the closed tab. ``address`` (the client's IP) counts against ``max_per_address``, so one client
        cannot take every slot.
        """
        with self._lock:
            if key in self._by_key:
                session = self._by_key[key]
                session.touch()
                return session
            if key in self._closed and not page_load:
                raise FantasyWorldError(
                    "this tab's session was closed (tab closed or expired); reload the page"
                )
            if len(self._by_key) >= self.max_sessions:
                raise FantasyWorldError(
                    f"the studio already has {self.max_sessions} open sessions; close a tab or try again later"
                )
            if address is not None:
                mine = sum(1 for s in self._by_key.values() if s.address == address)
                if mine >= self.max_per_address:
                    raise FantasyWorldError(
                        f"{mine} studio tabs are already open from your address (at most "
                        f"{self.max_per_address}); close one or wait a few minutes"
                    )
            self._closed.pop(key, None)
            viewer_key = secrets.token_urlsafe(24)
            with viewer_secret(viewer_key):  # the server answers only requests carrying this secret
                server = viser.ViserServer(host="127.0.0.1", port=free_port(), verbose=False)
            server.scene.set_up_direction("-y")  # OpenCV world: y points down
            # Points, frustums, lines and the grid cast no useful shadows, but viser's default key light
            # renders three shadow cascades every frame: off, the browser draws each frame for less.
            server.scene.configure_default_lights(enabled=True, cast_shadow=False)
            server.gui.configure_theme(
                control_layout="collapsible", control_width="small", show_share_button=False
            )
            frame_button = server.gui.add_button("Frame scene", icon=viser.Icon.FOCUS_2, order=0)
            editor = PathEditor(server)
            viewer = WorldViewer(server)
            workdir = Path(tempfile.mkdtemp(prefix="session-", dir=self.root))
            session = Session(key, secrets.token_urlsafe(16), server, editor, viewer, workdir)
            session.address, session.visitor, session.viewer_key = address, visitor, viewer_key
            editor.framer = session.frame_scene
            viewer.on_world = lambda _world: session.frame_scene(world_path=True)
            frame_button.on_click(lambda _: session.frame_scene())
            session.frame_scene()
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
                self._closed[key] = time.time()
                while len(self._closed) > MAX_REMEMBERED_CLOSED:
                    self._closed.popitem(last=False)
        if session is not None:
            session.close()
            for hook in list(self.on_close):
                try:
                    hook(session)
                except Exception:
                    log.exception("session %s: cleanup hook failed", key[:8])
            log.info("session %s closed", key[:8])

    def count(self, address: str | None = None, visitor: str | None = None) -> int:
        """Open sessions, optionally only those of one address or one visitor."""
        with self._lock:
            return sum(
                1
                for s in self._by_key.values()
                if (address is None or s.address == address) and (visitor is None or s.visitor == visitor)
            )

    def close_all(self) -> None:
        self._stop.set()
        for key in list(self._by_key):
            self.close(key)

    # ------------------------------------------------------------------------------ time to live
    def expired(self, now: float | None = None) -> list[str]:
        """Sessions nobody uses: no connected viewer, nothing running, no request for ``ttl_s``
        (``api_ttl_s`` when no browser ever connected its 3-D view: an API script, not a page)."""
        now = time.time() if now is None else now
        with self._lock:
            sessions = list(self._by_key.values())
        return [
            s.key
            for s in sessions
            if not s.busy
            and now - s.last_seen > (self.ttl_s if s.viewer_connected else self.api_ttl_s)
            and not s.server.get_clients()
        ]

    def sweep(self, now: float | None = None) -> int:
        """Close expired sessions and delete stale folders no live session owns; returns how many went."""
        now = time.time() if now is None else now
        gone = 0
        for key in self.expired(now):
            log.info("session %s expired after %.0f s idle", key[:8], self.ttl_s)
            self.close(key)
            gone += 1
        with self._lock:
            owned = {s.workdir.resolve() for s in self._by_key.values()}
        for folder in self.root.glob("session-*"):
            try:
                stale = now - folder.stat().st_mtime > self.ttl_s
            except OSError:
                continue
            if folder.is_dir() and not folder.is_symlink() and folder.resolve() not in owned and stale:
                shutil.rmtree(folder, ignore_errors=True)
                gone += 1
        for hook in list(self.on_sweep):
            try:
                hook()
            except Exception:
                log.exception("sweep hook failed")
        return gone

    def start_sweeper(self, every_s: float = 60.0) -> None:
        """Sweep in a daemon thread until :meth:`close_all`."""
        if self._sweeper is not None:
            return

        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.sweep()
                except Exception:
                    log.exception("session sweep failed")

        self._sweeper = threading.Thread(target=loop, name="session-sweeper", daemon=True)
        self._sweeper.start()

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_key)
