"""Puts a :class:`~app.framing.Framing` and ground grid into a viser scene (every client and new ones).

It also owns each scene's lock: the generation worker, Gradio handlers and viser's callbacks all change
one visitor's scene, and viser's same-name replacement is not atomic across threads, so every change
to a scene (here, in the viewer and in the path editor) runs under :func:`scene_lock`.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

import numpy as np
import viser

from app.framing import Framing, Ground

log = logging.getLogger(__name__)

GRID = "/grid"

_LOCKS: weakref.WeakKeyDictionary[viser.ViserServer, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def scene_lock(server: viser.ViserServer) -> threading.RLock:
    """The one (re-entrant) lock that orders every change to ``server``'s scene."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(server)
        if lock is None:
            lock = _LOCKS[server] = threading.RLock()
        return lock


def draw_ground(server: viser.ViserServer, ground: Ground) -> Any:
    """A light grid on the ground plane (xz, since -y is up), replaced on every call."""
    with scene_lock(server):
        return _add_grid(server, ground)


def _add_grid(server: viser.ViserServer, ground: Ground) -> Any:
    return server.scene.add_grid(
        GRID,
        width=ground.size,
        height=ground.size,
        plane="xz",
        cell_size=ground.cell,
        section_size=ground.cell * 5.0,
        cell_color=(205, 205, 210),
        section_color=(150, 150, 160),
        cell_thickness=1.0,
        section_thickness=1.5,
        position=tuple(float(v) for v in ground.centre),
        shadow_opacity=0.0,
    )


def apply_framing(server: viser.ViserServer, framing: Framing, clients: list[Any] | None = None) -> None:
    """Move the given (default: all) clients' cameras and the camera new clients start with."""
    eye, target, up = (
        tuple(float(v) for v in np.asarray(a)) for a in (framing.eye, framing.target, framing.up)
    )
    with scene_lock(server):
        server.initial_camera.position = eye
        server.initial_camera.look_at = target
        server.initial_camera.up = up
        for client in clients if clients is not None else list(server.get_clients().values()):
            try:
                with client.atomic():
                    client.camera.up_direction = up
                    client.camera.position = eye
                    client.camera.look_at = target
            except Exception:  # a client that just disconnected must not break the others
                log.debug("framing: client %s went away", getattr(client, "client_id", "?"))
