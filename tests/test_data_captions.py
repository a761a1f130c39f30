"""Captions: every object's colour and shape is named, relations follow positions, wording varies."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fantasy_world.data.captions import SHAPE_WORDS, make_caption, relation
from fantasy_world.data.scene import Environment, Lighting, Scene, SceneObject
from fantasy_world.data.scene_sampling import sample_scene
from fantasy_world.data.synthetic_dataset import SyntheticConfig, make_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_captions_name_every_object() -> None:
    for seed in range(40):
        clip = make_clip(seed, SyntheticConfig(num_frames=1, height=8, width=8))
        words = _words(clip.caption)
        for obj in clip.scene.objects:
            assert obj.colour in words, (seed, clip.caption)
            nouns = set(SHAPE_WORDS[obj.shape]) | {w + "s" for w in SHAPE_WORDS[obj.shape]}
            nouns |= {"boxes", "tori"}
            assert words & nouns, (seed, obj.shape, clip.caption)


def test_counts_appear_for_repeated_objects() -> None:
    found = False
    for seed in range(60):
        scene = sample_scene(np.random.default_rng(seed), seed)
        keys = [(o.colour, o.shape) for o in scene.objects]
        if len(set(keys)) < len(keys):
            cap = make_caption(scene, np.random.default_rng(0))
            assert re.search(r"\b(two|three|four|five|six)\b", cap), cap
            found = True
    assert found


def test_wording_varies_across_seeds() -> None:
    caps = [make_clip(s, SyntheticConfig(num_frames=1, height=8, width=8)).caption for s in range(30)]
    assert len(set(caps)) == 30
    openings = {" ".join(c.split()[:2]) for c in caps}
    assert len(openings) >= 8
    places = {"courtyard", "room", "meadow", "desert", "snowy", "snow"}
    assert len({w for c in caps for w in _words(c) & places}) >= 4


def _scene_with(objs: list[SceneObject]) -> Scene:
    env = Environment("meadow", (0.3, 0.5, 0.2), (0.2, 0.4, 0.1), "plain", 1.0)
    light = Lighting("sunny", (0.0, 0.0, 1.0), (0.7,) * 3, (0.3,) * 3, (0.2, 0.4, 0.9), (0.7, 0.8, 0.9))
    scene = Scene(objs, env, light, seed=0)
    # Camera 0 at y = -8 looking along +y: world x = scene x, world z = scene y + 8.
    scene.anchor = np.array([[1.0, 0, 0, 0], [0, 0, 1, -8], [0, -1, 0, 0.5], [0, 0, 0, 1]])
    return scene


def _o(shape: str, colour: str, pos, support=None, height=1.0) -> SceneObject:
    return SceneObject(shape, colour, (0.5, 0.5, 0.5), "medium", pos, 0.4, height, 0.4, support=support)


def test_relations_follow_positions() -> None:
    scene = _scene_with(
        [
            _o("sphere", "red", (-2.0, 0.0, 0.0)),
            _o("box", "blue", (1.0, 0.0, 0.0)),
            _o("cone", "green", (1.2, 3.0, 0.0)),
            _o("sphere", "pink", (1.0, 0.0, 1.0), support=1),
        ]
    )
    assert relation(scene, 0, 1) == "to the left of"
    assert relation(scene, 1, 0) == "to the right of"
    assert relation(scene, 2, 1) == "behind"
    assert relation(scene, 1, 2) == "in front of"
    assert relation(scene, 3, 1) == "on top of"
