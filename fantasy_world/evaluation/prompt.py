"""Prompt adherence of generated videos with the data attribute checker: are the named colours there?

A generated video has no object masks and need not place objects where the prompt's world had them, so
the check is colour presence: pixels are labelled with the palette colour the checker's classifier
gives their (quantised) RGB, connected regions of one label become candidate objects, and a candidate
counts only if :func:`fantasy_world.data.attributes.classify_colour` (the checker's shading-robust region
test) agrees on the whole region. An object of the prompt's scene is *found* if a candidate of its
colour appears in any of the inspected frames. Regions larger than ``max_fraction`` of the frame are
taken as ground, walls or sky and ignored.

Two references make the number interpretable: the same score on the ground-truth rendering of the
prompt's world (what a perfect generator would get with this detector) and on a *mismatched* scene
(another world's objects checked against this video: the chance level of the detector).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fantasy_world.data.attributes import classify_colour, classify_rgb
from fantasy_world.data.scene import Scene


@dataclass(frozen=True)
class RegionConfig:
    min_fraction: float = 0.002
    max_fraction: float = 0.25
    levels: int = 32


def label_pixels(frame: np.ndarray, levels: int = 32) -> np.ndarray:
    """Palette name index per pixel of a uint8 [H, W, 3] frame (classifying each quantised colour once)."""
    q = (frame.astype(np.int64) * levels) // 256
    code = (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]
    uniq, inverse = np.unique(code.ravel(), return_inverse=True)
    names: list[str] = []
    for c in uniq:
        r, g, b = c // (levels * levels), (c // levels) % levels, c % levels
        rgb = (np.array([r, g, b], np.float64) + 0.5) / levels
        names.append(classify_rgb(rgb, float(rgb.max())))
    vocab = sorted(set(names))
    index = np.array([vocab.index(n) for n in names])
    return np.array(vocab, dtype=object)[index[inverse].reshape(code.shape)]


def colour_regions(frame: np.ndarray, cfg: RegionConfig = RegionConfig()) -> set[str]:
    """Colours of object-sized regions of ``frame`` confirmed by the checker's region classifier."""
    labels = label_pixels(frame, cfg.levels)
    h, w = labels.shape
    lo, hi = cfg.min_fraction * h * w, cfg.max_fraction * h * w
    found: set[str] = set()
    for name in set(labels.ravel().tolist()):
        comps, n = ndimage.label(labels == name)
        if n == 0:
            continue
        sizes = np.bincount(comps.ravel())[1:]
        for k in np.nonzero((sizes >= lo) & (sizes <= hi))[0]:
            if classify_colour(frame, comps == k + 1) == name:
                found.add(name)
                break
    return found


def scene_colours(scene: Scene) -> list[str]:
    """The colour of every object of the scene (one entry per object)."""
    return [obj.colour for obj in scene.objects]


def found_colours(frames: list[np.ndarray], cfg: RegionConfig = RegionConfig()) -> set[str]:
    """All confirmed region colours over ``frames`` (to score one video against several scenes)."""
    seen: set[str] = set()
    for frame in frames:
        seen |= colour_regions(frame, cfg)
    return seen


def score(seen: set[str], scene: Scene) -> tuple[int, int]:
    wanted = scene_colours(scene)
    return sum(c in seen for c in wanted), len(wanted)
