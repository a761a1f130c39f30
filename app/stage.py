"""Puts a :class:`~app.framing.Framing` and ground grid into a viser scene (every client and new ones)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import viser

from app.framing import Framing, Ground

log = logging.getLogger(__name__)

GRID = "/grid"


def draw_ground(server: viser.ViserServer, ground: Ground) -> Any:
    """A light grid on the ground plane (xz, since -y is up), replaced on every call."""
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
