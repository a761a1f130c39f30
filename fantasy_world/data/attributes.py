"""Attribute checker for prompt-adherence evaluation: which named objects are visible, and which palette
colour a region shows.

Shading scales brightness but keeps hue and saturation, so a region is summarised by the mean colour of
its mid-to-bright pixels (40th–90th luminance percentile: lit surface without shadowed sides or
specular highlights) in HSV, plus the 90th percentile of its brightness. Very dark regions are black;
unsaturated ones are white or grey by brightness; the rest go to the palette colour nearest in hue, with
brightness and saturation separating colours of similar hue (orange / brown, red / pink).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
import torch

from fantasy_world.data.palette import PALETTE
from fantasy_world.data.scene import Scene
from fantasy_world.errors import InputError

DARK_VALUE = 0.2  # brightest pixels below this: black whatever the hue
GREY_SATURATION = 0.25  # below this a region is achromatic (palette: chromatic >= 0.46, achromatic <= 0.02)
LIT_FRACTION = 0.85  # the 90th-percentile brightness of a lit object is about this fraction of its albedo
_HUE_SCALE, _SAT_SCALE = 20.0, 0.25  # degrees and saturation units that count as much as a factor e in value

_HSV = {name: colorsys.rgb_to_hsv(*rgb) for name, rgb in PALETTE.items()}
_ACHROMATIC = [n for n, (_, s, _) in _HSV.items() if s < GREY_SATURATION]
_CHROMATIC = [n for n in _HSV if n not in _ACHROMATIC]


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _region_pixels(frame: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor) -> np.ndarray:
    img = _as_numpy(frame)
    m = _as_numpy(mask).astype(bool)
    if img.ndim != 3 or img.shape[-1] != 3 or m.shape != img.shape[:2]:
        raise InputError(
            f"attribute check: frame {img.shape} and mask {m.shape}; expected [H, W, 3] and [H, W]"
        )
    if not m.any():
        raise InputError("attribute check: the mask selects no pixels; expected a non-empty region")
    px = img[m].astype(np.float64)
    return px / 255.0 if img.dtype == np.uint8 else px


def region_colour(
    frame: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, float]:
    """Shading-robust mean RGB in [0, 1] of ``frame`` ([H, W, 3] uint8 or float) under ``mask``, and the
    90th percentile of its brightness (max channel)."""
    px = _region_pixels(frame, mask)
    lum = px @ np.array([0.2126, 0.7152, 0.0722])
    lo, hi = np.percentile(lum, [40.0, 90.0])
    sel = (lum >= lo) & (lum <= hi)
    mean = px[sel].mean(axis=0) if sel.any() else px.mean(axis=0)
    return mean, float(np.percentile(px.max(axis=1), 90.0))


def _hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 1.0
    return min(d, 1.0 - d) * 360.0


def classify_rgb(rgb: np.ndarray, bright: float) -> str:
    """Palette name for a summarised region colour ``rgb`` whose bright pixels reach ``bright``."""
    h, s, _ = colorsys.rgb_to_hsv(*(float(v) for v in rgb))
    if bright < DARK_VALUE:
        return "black"
    albedo = max(bright / LIT_FRACTION, 1e-3)
    if s < GREY_SATURATION:
        light = [n for n in _ACHROMATIC if _HSV[n][2] >= DARK_VALUE]
        return min(light, key=lambda n: abs(math.log(albedo / _HSV[n][2])))

    def cost(name: str) -> float:
        ph, ps, pv = _HSV[name]
        return (
            (_hue_distance(h, ph) / _HUE_SCALE) ** 2
            + math.log(min(albedo, 1.0) / pv) ** 2
            + ((s - ps) / _SAT_SCALE) ** 2
        )

    return min(_CHROMATIC, key=cost)


def classify_colour(frame: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor) -> str:
    """Name of the palette colour that the masked region of ``frame`` shows."""
    rgb, bright = region_colour(frame, mask)
    return classify_rgb(rgb, bright)


def visible_objects(
    scene: Scene, object_ids: np.ndarray | torch.Tensor, min_pixels: int = 16
) -> dict[int, int]:
    """Object index → pixel count in an id map [H, W] (ids are k + 1), for objects with ≥ ``min_pixels``."""
    ids = _as_numpy(object_ids).astype(np.int64).ravel()
    counts = np.bincount(ids, minlength=len(scene.objects) + 1)
    return {k: int(counts[k + 1]) for k in range(len(scene.objects)) if counts[k + 1] >= min_pixels}


@dataclass
class ObjectCheck:
    """Result for one visible object: expected vs. observed colour."""

    index: int
    name: str
    expected_colour: str
    observed_colour: str
    pixels: int

    @property
    def colour_ok(self) -> bool:
        return self.expected_colour == self.observed_colour


def check_frame(
    scene: Scene,
    frame: np.ndarray | torch.Tensor,
    object_ids: np.ndarray | torch.Tensor,
    min_pixels: int = 16,
) -> list[ObjectCheck]:
    """Classify the colour of every sufficiently visible object of ``scene`` in one frame."""
    ids = _as_numpy(object_ids)
    out = []
    for k, count in visible_objects(scene, ids, min_pixels).items():
        obj = scene.objects[k]
        observed = classify_colour(frame, ids == k + 1)
        out.append(ObjectCheck(k, obj.name, obj.colour, observed, count))
    return out
