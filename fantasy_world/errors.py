"""Project error types.

Every user mistake surfaces as a subclass of :class:`FantasyWorldError` with a one-line message that
names the bad input and what was expected; the CLI prints it and exits with code 2, the app shows it.
"""

from __future__ import annotations


class FantasyWorldError(ValueError):
    """Base class for errors caused by user input, files or configuration."""


class InputError(FantasyWorldError):
    """A bad argument value (size, frame count, prompt, seed, ...)."""


class CheckpointError(FantasyWorldError):
    """A weight file or model folder is missing, unreadable or does not match the model."""


class CameraFormatError(FantasyWorldError):
    """A camera file or camera path is malformed or physically invalid."""


class GeometryFormatError(FantasyWorldError):
    """A geometry file (PLY, npz, COLMAP, ...) is malformed."""


class GenerationCancelled(Exception):
    """The user cancelled a running generation (not an error; the app just stops)."""


class OutOfMemory(FantasyWorldError):
    """The device ran out of memory; the message says what to change. Memory has been released."""
