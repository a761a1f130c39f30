"""What a session leaves on disk besides its own folder: uploads and Gradio's cached copies.

Gradio copies every file a handler returns into its cache (``<cache>/<hash of content>/<name>``) and
keeps uploads there too; neither is tied to a session. The janitor records both per session and
deletes them when the session closes (tab closed, expired, server shutdown).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from app.files import gradio_upload_root
from app.visitors import VisitorBook

if TYPE_CHECKING:
    from app.sessions import Session

log = logging.getLogger(__name__)

STRAY_TMP_AGE_S = 600.0  # Gradio's multipart temp files (``tmp*``) older than this are leftovers


def gradio_copy_dir(path: Path) -> Path | None:
    """The folder Gradio's cache will hold ``path``'s copy in (it names folders by content hash)."""
    from gradio import processing_utils

    try:
        return gradio_upload_root() / processing_utils.hash_file(path)
    except OSError:
        return None


def _remove(path: Path, root: Path) -> bool:
    """Delete a file or folder, but only inside ``root`` and never through a symlink."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return False
    if not resolved.is_relative_to(root) or resolved == root:
        return False
    if path.is_symlink() or resolved.is_file():
        resolved.unlink(missing_ok=True)
    elif resolved.is_dir():
        shutil.rmtree(resolved, ignore_errors=True)
    else:
        return False
    return True


class Janitor:
    """Per-session record of Gradio cache folders and uploads to delete when the session closes."""

    def __init__(self, visitors: VisitorBook) -> None:
        self.visitors = visitors
        self._lock = threading.Lock()
        self._copies: dict[str, dict[Path, set[Path]]] = {}  # session key -> source folder -> copies

    def handed_out(self, session: Session, files: Iterable[Path]) -> None:
        """Files a handler returns to Gradio: remember where their cached copies will be.

        Copies are grouped by the folder their originals came from; once the session prunes that
        folder (it keeps its last few runs), the copies go too, so disk stays flat within a session.
        """
        files = [Path(f) for f in files]
        dirs = {d for f in files if f.is_file() and (d := gradio_copy_dir(f)) is not None}
        source = files[0].parent if files else session.workdir
        with self._lock:
            mine = self._copies.setdefault(session.key, {})
            mine.setdefault(source, set()).update(dirs)
            gone = [folder for folder in mine if not folder.exists()]
            stale = set().union(*(mine.pop(folder) for folder in gone)) if gone else set()
        self._drop(stale)

    def _drop(self, dirs: set[Path]) -> int:
        """Delete cached copies no live session still refers to."""
        with self._lock:
            used = {d for per in self._copies.values() for copies in per.values() for d in copies}
        root = gradio_upload_root()
        return sum(_remove(d, root) for d in dirs - used)

    def session_closed(self, session: Session) -> None:
        """Registry hook: drop the session's cached copies, and its visitor's uploads once no tab is left."""
        root = gradio_upload_root()
        with self._lock:
            per = self._copies.pop(session.key, {})
        removed = self._drop(set().union(*per.values()) if per else set())
        if session.visitor is not None:
            self.visitors.pin(session.visitor, -1)
            if self.visitors.open_sessions(session.visitor) == 0:
                for upload in self.visitors.release_uploads(session.visitor):
                    removed += _remove(upload.parent if upload.parent != root else upload, root)
        if removed:
            log.info("session %s: removed %d cached copies and uploads", session.key[:8], removed)

    def shutdown(self) -> None:
        """Server stopping: every upload we recorded and Gradio's stray multipart temp files go."""
        root = gradio_upload_root()
        for upload in self.visitors.all_uploads():
            _remove(upload.parent if upload.parent != root else upload, root)
        self.sweep_stray_temp_files(max_age_s=0.0)

    def sweep(self, idle_uploads_s: float = STRAY_TMP_AGE_S) -> int:
        """Periodic: stray temp files, and uploads of visitors who never opened (or closed) their tabs."""
        root = gradio_upload_root()
        gone = self.sweep_stray_temp_files()
        for visitor_id in self.visitors.idle_uploaders(idle_uploads_s):
            for upload in self.visitors.release_uploads(visitor_id):
                gone += _remove(upload.parent if upload.parent != root else upload, root)
        return gone

    def sweep_stray_temp_files(self, max_age_s: float = STRAY_TMP_AGE_S) -> int:
        """Gradio's upload parser leaves ``tmp*`` files at the top of its folder; remove old ones."""
        root = gradio_upload_root()
        now, gone = time.time(), 0
        for path in root.glob("tmp*"):
            try:
                if path.is_file() and not path.is_symlink() and now - path.stat().st_mtime >= max_age_s:
                    path.unlink(missing_ok=True)
                    gone += 1
            except OSError:
                continue
        return gone
