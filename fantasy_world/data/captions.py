"""Captions from a scene graph: every object's colour and shape, counts, sizes and spatial relations.

Relations are read from camera 0's view (world frame: x right, z forward), so "to the left of" means
left in the first frame. Wording and sentence structure are chosen by the Generator passed in, so
captions vary across seeds but are reproducible for one seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fantasy_world.data.scene import Scene, SceneObject

SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "sphere": ("ball", "sphere"),
    "box": ("box", "block", "cube"),
    "cylinder": ("cylinder", "pillar", "column", "drum"),
    "cone": ("cone",),
    "torus": ("ring", "torus", "donut"),
    "capsule": ("capsule", "pill"),
}
_PLURAL = {"box": "boxes", "torus": "tori"}
_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
_MATERIAL_WORDS = {"checker": "checkered", "stripes": "striped", "noise": "mottled"}
_SETTING_PHRASES = {
    "courtyard": ("in a courtyard", "in a stone courtyard", "in a paved courtyard"),
    "room": ("in a room with {wall} walls", "inside an open-roofed room", "in a {wall} room"),
    "meadow": ("on a grassy meadow", "in a green meadow", "on rolling grass"),
    "desert": ("in a sandy desert", "on desert dunes", "on desert sand"),
    "snowy field": ("on snowy ground", "in a snowy field", "on a field of snow"),
}
_SKY_PHRASES = {
    "sunny": ("under a clear blue sky", "on a sunny day", "in bright sunshine"),
    "overcast": ("under an overcast sky", "under grey clouds", "on a cloudy day"),
    "dusk": ("at dusk", "at sunset", "under an orange evening sky"),
}
_ROOM_LIGHT = {
    "sunny": ("in bright daylight", "lit by the sun"),
    "overcast": ("in soft grey light", "in diffuse daylight"),
    "dusk": ("in warm evening light", "lit by a low evening sun"),
}


@dataclass
class _Group:
    """Objects that share colour and shape, described together ("two green cones")."""

    members: list[int]
    colour: str
    shape: str


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _noun(rng: np.random.Generator, obj: SceneObject) -> str:
    words = SHAPE_WORDS[obj.shape]
    if obj.shape == "cylinder":
        words = ("cylinder", "pillar", "column") if obj.size == "tall" else ("cylinder", "drum")
    if obj.shape == "box" and abs(obj.radius - obj.minor) > 0.12 * obj.radius:
        words = ("box", "block")  # a visibly non-square box is not a cube
    return _pick(rng, words)


def _plural(noun: str) -> str:
    return _PLURAL.get(noun, noun + "s")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _group_phrase(rng: np.random.Generator, scene: Scene, g: _Group) -> str:
    objs = [scene.objects[i] for i in g.members]
    first = objs[0]
    noun = _noun(rng, first)
    adjectives = []
    sizes = {o.size for o in objs}
    if len(sizes) == 1 and first.size != "medium" and rng.random() < 0.75:
        adjectives.append(first.size)
    if len(objs) == 1 and rng.random() < 0.3:
        if first.glossy and rng.random() < 0.5:
            adjectives.append(_pick(rng, ("shiny", "glossy")))
        elif first.pattern in _MATERIAL_WORDS:
            adjectives.append(_MATERIAL_WORDS[first.pattern])
    adjectives.append(g.colour)
    words = " ".join(adjectives)
    if len(objs) == 1:
        return f"{_article(words)} {words} {noun}"
    return f"{_NUMBERS.get(len(objs), str(len(objs)))} {words} {_plural(noun)}"


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def relation(scene: Scene, a: int, b: int) -> str:
    """How object ``a`` sits relative to object ``b`` as seen from camera 0."""
    oa, ob = scene.objects[a], scene.objects[b]
    if oa.support == b:
        return "on top of"
    if ob.support == a:
        return "under"
    pa, pb = scene.object_world_position(a), scene.object_world_position(b)
    dx, dz = pa[0] - pb[0], pa[2] - pb[2]
    if abs(dz) > max(0.8, 1.5 * abs(dx)):
        return "behind" if dz > 0 else "in front of"
    if abs(dx) > 0.5:
        return "to the left of" if dx < 0 else "to the right of"
    return "beside"


def _groups(scene: Scene) -> list[_Group]:
    groups: dict[tuple[str, str], _Group] = {}
    for i, obj in enumerate(scene.objects):
        key = (obj.colour, obj.shape)
        if key not in groups:
            groups[key] = _Group([], obj.colour, obj.shape)
        groups[key].members.append(i)
    return list(groups.values())


def _place_phrase(rng: np.random.Generator, scene: Scene) -> str:
    env, sky = scene.environment, scene.lighting.sky
    setting = _pick(rng, _SETTING_PHRASES[env.setting]).format(wall=env.wall_colour or "white")
    if env.setting == "courtyard" and sky == "sunny" and rng.random() < 0.5:
        return "in a sunlit courtyard"
    light = _pick(rng, _ROOM_LIGHT[sky] if env.setting == "room" else _SKY_PHRASES[sky])
    return f"{setting} {light}"


def make_caption(scene: Scene, rng: np.random.Generator) -> str:
    """A one-sentence description mentioning every object's colour and shape (one of five structures)."""
    place = _place_phrase(rng, scene)
    groups = _groups(scene)
    if not groups:
        return _pick(rng, ("an empty scene", "an empty view")) + " " + place
    order = [groups[i] for i in rng.permutation(len(groups))]
    phrases = [_group_phrase(rng, scene, g) for g in order]
    style = int(rng.integers(5))
    if style == 1 and len(order) >= 2 and len(order[0].members) == 1:
        a, b = order[0].members[0], order[1].members[0]
        rel = relation(scene, a, b)
        text = f"{phrases[0]} {rel} {phrases[1]}"
        if len(phrases) > 2:
            text += f", with {_join(phrases[2:])},"
        return f"{text} {place}"
    if style == 2:
        return f"{place.split(' ', 1)[1] if place.startswith('in ') else place} with {_join(phrases)}"
    if style == 3:
        verb = "stands" if len(phrases) == 1 and len(order[0].members) == 1 else "stand"
        return f"{_join(phrases)} {verb} {place}"
    if style == 4:
        return f"{_pick(rng, ('a view of', 'a scene with', 'a photo of'))} {_join(phrases)} {place}"
    return f"{_join(phrases)} {place}"
