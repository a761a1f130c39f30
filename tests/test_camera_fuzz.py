"""Fuzzing the camera readers: random bytes and mutated valid files raise only CameraFormatError."""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fantasy_world.camera import CameraPath, read_camera_bytes
from fantasy_world.camera.formats import dumps_camera
from fantasy_world.errors import CameraFormatError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["cams.json", "cams.txt", "cams.cam"]


def _valid_texts() -> dict[str, str]:
    path = CameraPath.preset("arc", num_frames=4, angle=40.0)
    path.keyframes[1].time = None
    texts = {fmt: dumps_camera(path, fmt) for fmt in ("native", "worldscore", "re10k", "nerfstudio")}
    timed = CameraPath.from_trajectory(path.sample(3))
    texts["native_timed"] = dumps_camera(timed, "native")
    texts["raw_re10k"] = (
        "https://www.youtube.com/watch?v=x\n0 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n"
        + ("33366 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 -0.1\n")
    )
    return texts


VALID = _valid_texts()


def _exercise(data: bytes, name: str) -> None:
    """What the app does with an upload: parse, then sample a keyframed path."""
    try:
        loaded = read_camera_bytes(data, name)
        if isinstance(loaded, CameraPath):
            loaded.sample(min(loaded.settings.num_frames, 64))
    except CameraFormatError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(data=st.binary(max_size=512), name=st.sampled_from(NAMES))
def test_random_bytes(data: bytes, name: str) -> None:
    _exercise(data, name)


@FUZZ
@given(
    kind=st.sampled_from(sorted(VALID)),
    seed=st.integers(0, 2**32 - 1),
    edits=st.integers(1, 6),
    name=st.sampled_from(NAMES),
)
def test_byte_mutations_of_valid_files(kind: str, seed: int, edits: int, name: str) -> None:
    rng = random.Random(seed)
    data = bytearray(VALID[kind].encode())
    for _ in range(edits):
        op, pos = rng.randrange(4), rng.randrange(len(data) + 1)
        if op == 0 and data:
            del data[min(pos, len(data) - 1)]
        elif op == 1:
            data[pos:pos] = bytes([rng.randrange(256)])
        elif op == 2:
            data[pos:pos] = rng.choice([b"-", b"e9", b"NaN", b"1e400", b"]", b"}", b",", b'"', b" 7", b"\n"])
        else:
            data = data[:pos]
    _exercise(bytes(data), name)


_WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.lists(st.integers(-3, 3), max_size=5),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
)


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:6]):
            out += _paths(v, (*prefix, i))
    return out


@FUZZ
@given(
    kind=st.sampled_from(["native", "native_timed", "worldscore", "nerfstudio"]),
    seed=st.integers(0, 2**32 - 1),
    value=_WEIRD,
    action=st.sampled_from(["replace", "delete", "duplicate"]),
)
def test_structural_mutations_of_valid_json(kind: str, seed: int, value: object, action: str) -> None:
    doc = json.loads(VALID[kind])
    rng = random.Random(seed)
    target = rng.choice(_paths(doc)[1:])
    parent = doc
    for key in target[:-1]:
        parent = parent[key]
    last = target[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, list):
        parent.insert(last, parent[last])
    else:
        parent[last] = [parent[last], parent[last]]
    _exercise(json.dumps(doc).encode(), f"{kind}.json")


@FUZZ
@given(
    seed=st.integers(0, 2**32 - 1),
    token=st.one_of(st.text(max_size=6), st.floats().map(repr), st.integers(-(10**20), 10**20).map(str)),
)
def test_token_mutations_of_re10k(seed: int, token: str) -> None:
    rng = random.Random(seed)
    lines = [ln.split() for ln in VALID["re10k"].splitlines()]
    row = rng.randrange(len(lines))
    col = rng.randrange(max(1, len(lines[row])) + 1)
    op = rng.randrange(3)
    if op == 0:
        lines[row][col:col] = [token]
    elif op == 1 and lines[row]:
        lines[row][min(col, len(lines[row]) - 1)] = token
    else:
        lines.insert(row, lines[row][: col or 1])
    _exercise("\n".join(" ".join(ln) for ln in lines).encode(), "cams.txt")
