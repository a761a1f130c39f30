"""world.npz: exact round trip, key/dtype/shape validation, MegaSaM files, no unpickling, fuzzing."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.harness.synthetic_world import synthetic_world
from fantasy_world.errors import GeometryFormatError
from fantasy_world.geometry.npz import NPZ_KEYS, load_world_npz, save_world_npz
from fantasy_world.geometry.world_data import WorldData

_FIELDS = {k: k for k in NPZ_KEYS} | {"intrinsic": "intrinsics"}


def _arrays(world: WorldData) -> dict[str, np.ndarray]:
    return {k: getattr(world, attr) for k, attr in _FIELDS.items()}


def _save(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def test_round_trip_exact(tmp_path: Path) -> None:
    world = synthetic_world()
    path = save_world_npz(tmp_path / "world.npz", world)
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(NPZ_KEYS)
        assert npz["images"].dtype == np.uint8 and npz["depths"].dtype == np.float32
        assert npz["intrinsic"].shape == (5, 3, 3) and npz["cam_c2w"].shape == (5, 4, 4)
    back = load_world_npz(path)
    for key, attr in _FIELDS.items():
        got, want = getattr(back, attr), getattr(world, attr)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=key)


def test_compressed_round_trip(tmp_path: Path) -> None:
    world = synthetic_world(num_frames=2)
    back = load_world_npz(save_world_npz(tmp_path / "w.npz", world, compress=True))
    np.testing.assert_array_equal(back.points, world.points)


@pytest.mark.parametrize("missing", ["depth_conf", "requested_c2w", "images"])
def test_missing_key_is_named(tmp_path: Path, missing: str) -> None:
    arrays = _arrays(synthetic_world(num_frames=2))
    del arrays[missing]
    with pytest.raises(GeometryFormatError, match=f"missing key\\(s\\) {missing}"):
        load_world_npz(_save(tmp_path / "w.npz", arrays))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("images", lambda a: a.astype(np.float32), "uint8"),
        ("depths", lambda a: a.astype(np.int32), "float dtype"),
        ("points", lambda a: a[:, :, :, :2], "expected shape"),
        ("cam_c2w", lambda a: a[:1], "expected shape"),
        ("intrinsic", lambda a: a[0], "expected shape"),
        ("cam_c2w", lambda a: np.where(np.eye(4, dtype=bool), np.nan, a).astype(np.float32), "finite"),
    ],
)
def test_bad_arrays_rejected(tmp_path: Path, key: str, value, message: str) -> None:
    arrays = _arrays(synthetic_world(num_frames=2))
    arrays[key] = value(arrays[key])
    with pytest.raises(GeometryFormatError, match=message):
        load_world_npz(_save(tmp_path / "w.npz", arrays))


class _Trap:
    triggered = False

    def __reduce__(self):
        return (_spring, ())


def _spring() -> None:
    _Trap.triggered = True


def test_pickled_object_array_refused_without_unpickling(tmp_path: Path) -> None:
    arrays = _arrays(synthetic_world(num_frames=2))
    arrays["depth_conf"] = np.array([_Trap()], dtype=object)
    path = tmp_path / "evil.npz"
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # np.savez pickles object arrays
    _Trap.triggered = False
    with pytest.raises(GeometryFormatError, match="object array"):
        load_world_npz(path)
    with pytest.raises(GeometryFormatError, match="object array"):
        load_world_npz(path, strict=False)
    assert not _Trap.triggered


def test_megasam_style_file_loads_non_strict(tmp_path: Path) -> None:
    world = synthetic_world(num_frames=3)
    arrays = {
        "images": world.images,
        "depths": world.depths,
        "intrinsic": world.intrinsics[0].astype(np.float64),
        "cam_c2w": world.cam_c2w.astype(np.float64),
    }
    path = _save(tmp_path / "megasam.npz", arrays)
    with pytest.raises(GeometryFormatError, match="depth_conf"):
        load_world_npz(path)
    back = load_world_npz(path, strict=False)
    np.testing.assert_allclose(back.points, world.points, atol=1e-5)
    np.testing.assert_array_equal(back.depth_conf, np.ones_like(world.depths))
    np.testing.assert_array_equal(back.requested_c2w, world.cam_c2w)
    assert back.intrinsics.shape == (3, 3, 3)


def test_truncated_member_rejected_before_reading(tmp_path: Path) -> None:
    arrays = _arrays(synthetic_world(num_frames=2))
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arrays["points"])
    path = tmp_path / "t.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for key, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, arr)
            data = member.getvalue()
            zf.writestr(f"{key}.npy", data[:-10] if key == "points" else data)
    with pytest.raises(GeometryFormatError, match="'points' is truncated"):
        load_world_npz(path)


_FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return save_world_npz(tmp_path_factory.mktemp("npz") / "w.npz", synthetic_world(2, 4, 6)).read_bytes()


def _reads_or_rejects(path: Path) -> None:
    try:
        world = load_world_npz(path)
    except GeometryFormatError:
        return
    assert world.images.dtype == np.uint8


@_FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "f.npz"
    path.write_bytes(data)
    _reads_or_rejects(path)


@_FUZZ
@given(
    cut=st.integers(0, 100_000),
    edits=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), max_size=6),
)
def test_fuzz_truncated_and_mutated(tmp_path: Path, valid_bytes: bytes, cut: int, edits: list) -> None:
    data = bytearray(valid_bytes)
    for pos, val in edits:
        data[pos % len(data)] = val
    data = data[: cut % (len(data) + 1)]
    path = tmp_path / "m.npz"
    path.write_bytes(bytes(data))
    _reads_or_rejects(path)
