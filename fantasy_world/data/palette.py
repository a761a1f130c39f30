"""The named colour palette shared by the world sampler, the captions and the attribute checker.

Values are display RGB in [0, 1]. The names are the words captions use, so a prompt's colour word can be
checked against what a rendered (or generated) frame shows.
"""

from __future__ import annotations

PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.82, 0.10, 0.09),
    "orange": (0.96, 0.48, 0.08),
    "yellow": (0.95, 0.85, 0.12),
    "green": (0.16, 0.62, 0.18),
    "cyan": (0.08, 0.78, 0.84),
    "blue": (0.10, 0.24, 0.86),
    "purple": (0.48, 0.16, 0.70),
    "pink": (0.96, 0.52, 0.70),
    "brown": (0.42, 0.25, 0.10),
    "white": (0.93, 0.93, 0.91),
    "grey": (0.50, 0.50, 0.50),
    "black": (0.06, 0.06, 0.07),
}

COLOUR_NAMES: tuple[str, ...] = tuple(PALETTE)
