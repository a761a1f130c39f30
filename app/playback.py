"""Timeline playback: a small thread that advances the frame index at the chosen FPS.

viser has no timeline widget; like its record3d example we pair a slider with a play flag. The thread
only calls ``on_frame(i)``, which toggles visibility; nothing large is ever re-sent while playing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Playback:
    """Play/pause over ``num_frames`` frames at ``fps``; ``on_frame`` is called from the thread."""

    def __init__(self, on_frame: Callable[[int], None]) -> None:
        self._on_frame = on_frame
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.num_frames = 0
        self.frame = 0
        self.fps = 16.0
        self.playing = False
        self._thread = threading.Thread(target=self._run, name="viewer-playback", daemon=True)
        self._thread.start()

    def set_frames(self, num_frames: int) -> None:
        with self._lock:
            self.num_frames = max(0, int(num_frames))
            self.frame = min(self.frame, max(0, self.num_frames - 1))

    def play(self, playing: bool) -> None:
        with self._lock:
            self.playing = bool(playing) and self.num_frames > 1
        self._wake.set()

    def seek(self, frame: int) -> None:
        with self._lock:
            self.frame = int(frame) % max(1, self.num_frames)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        next_t = time.perf_counter()
        while not self._stop.is_set():
            with self._lock:
                playing, n = self.playing, self.num_frames
            if not playing:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                next_t = time.perf_counter()
                continue
            with self._lock:
                self.frame = (self.frame + 1) % max(1, n)
                frame = self.frame
                period = 1.0 / max(0.5, float(self.fps))
            try:
                self._on_frame(frame)
            except Exception:  # a closed viewer must not kill the thread with a traceback storm
                log.exception("playback: drawing frame %d failed; stopping", frame)
                with self._lock:
                    self.playing = False
            next_t += period
            delay = next_t - time.perf_counter()
            if delay < -period:  # fell far behind (slow client): resynchronise instead of racing
                next_t = time.perf_counter()
            self._stop.wait(timeout=max(0.0, delay))
