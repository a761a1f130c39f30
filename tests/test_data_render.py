"""Renderer exactness: analytic depth, points vs. unprojection, multi-view consistency, shadows, sky."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fantasy_world.camera.conventions import intrinsics_from_vfov
from fantasy_world.camera.presets import look_at
from fantasy_world.data.render import RenderConfig, render_views
from fantasy_world.data.scene import Environment, Lighting, Scene, SceneObject
from fantasy_world.data.synthetic_dataset import SyntheticConfig, make_clip
from fantasy_world.geometry.unproject import depth_to_world_points, project_points

pytestmark = pytest.mark.usefixtures("one_torch_thread")


H, W = 33, 49


def _scene(objects: list[SceneObject], sun=(0.3, -0.4, 0.866)) -> Scene:
    env = Environment("courtyard", (0.6, 0.6, 0.6), (0.6, 0.6, 0.6), "plain", 1.0)
    sun_dir = tuple(np.asarray(sun) / np.linalg.norm(sun))
    light = Lighting("sunny", sun_dir, (0.7, 0.7, 0.7), (0.3, 0.3, 0.3), (0.2, 0.4, 0.9), (0.7, 0.8, 0.9))
    return Scene(objects, env, light, seed=0)


def _obj(shape: str, pos=(0.0, 0.0, 0.0), radius=0.5, height=1.0, minor=0.0, yaw=0.0) -> SceneObject:
    return SceneObject(shape, "red", (0.8, 0.1, 0.1), "medium", pos, radius, height, minor, yaw)


def _look(scene: Scene, pos, target) -> None:
    scene.anchor = look_at(np.asarray(pos, float), np.asarray(target, float), down=(0.0, 0.0, -1.0))


def _render(scene: Scene, c2w=None, fov=50.0):
    k = intrinsics_from_vfov(fov, W, H)[None]
    c2w = np.eye(4)[None] if c2w is None else c2w
    return render_views(scene, c2w, k, H, W), k


def test_sphere_centre_depth_is_analytic() -> None:
    scene = _scene([_obj("sphere", (0.3, 0.2, 0.0), radius=0.7)])
    centre = np.array([0.3, 0.2, 0.7])
    _look(scene, centre + np.array([0.0, -6.0, 1.5]), centre)
    out, _ = _render(scene)
    expected = np.linalg.norm([0.0, 6.0, 1.5]) - 0.7
    got = float(out.depth[0, H // 2, W // 2])
    assert abs(got - expected) / expected < 1e-4
    assert int(out.object_ids[0, H // 2, W // 2]) == 1 and bool(out.valid[0, H // 2, W // 2])


@pytest.mark.parametrize("yaw", [0.0, 0.6])
def test_box_face_depth_is_analytic(yaw: float) -> None:
    # Camera on the box's local -x axis, level, looking at the face centre: depth = distance - half width.
    box = _obj("box", (1.0, -0.5, 0.0), radius=0.4, height=1.2, minor=0.3, yaw=yaw)
    scene = _scene([box])
    axis = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    face = np.array([1.0, -0.5, 0.6])
    _look(scene, face - 5.0 * axis, face)
    out, _ = _render(scene)
    got = float(out.depth[0, H // 2, W // 2])
    assert abs(got - (5.0 - 0.4)) / 4.6 < 1e-4


@pytest.mark.parametrize("shape", ["cylinder", "cone", "capsule", "torus"])
def test_other_shapes_hit_where_their_surface_is(shape: str) -> None:
    # The hit point at the centre pixel must satisfy the shape's implicit equation (a residual near zero).
    obj = _obj(shape, radius=0.5, height=1.4, minor=0.15 if shape == "torus" else 0.0)
    scene = _scene([obj])
    target = np.array([0.0, 0.0, 0.15 if shape == "torus" else 0.5])
    _look(scene, target + np.array([-4.0, -3.0, 1.2]), target + np.array([0.2, 0.0, 0.0]))
    out, _ = _render(scene)
    mask = out.object_ids[0] == 1
    assert mask.sum() > 20
    p_world = out.points[0][mask].double().numpy()
    p = (scene.anchor[:3, :3] @ p_world.T).T + scene.anchor[:3, 3]
    rho = np.hypot(p[:, 0], p[:, 1])
    if shape == "cylinder":
        res = np.minimum(np.abs(rho - 0.5), np.abs(p[:, 2] - 1.4))
    elif shape == "cone":
        res = np.minimum(np.abs(rho - 0.5 * (1.4 - p[:, 2]) / 1.4), np.abs(p[:, 2]))
    elif shape == "capsule":
        zc = np.clip(p[:, 2], 0.5, 0.9)
        res = np.abs(np.hypot(rho, p[:, 2] - zc) - 0.5)
    else:
        res = np.abs(np.hypot(rho - 0.5, p[:, 2] - 0.15) - 0.15)
    assert np.median(res) < 1e-4 and np.max(res) < 2e-3


def test_points_equal_unprojected_depth() -> None:
    clip = make_clip(11, SyntheticConfig(num_frames=5, height=40, width=56))
    expected = depth_to_world_points(clip.depth, clip.intrinsics, clip.c2w)
    v = clip.valid
    scale = clip.depth[v].abs().max()
    assert torch.allclose(clip.points[v], expected[v], atol=float(2e-5 * scale))
    assert torch.all(clip.points[~v] == 0) and torch.all(clip.depth[~v] == 0)
    assert torch.allclose(clip.c2w[0], torch.eye(4), atol=1e-6)


def _bilinear_inverse_depth(depth: np.ndarray, valid: np.ndarray, ids: np.ndarray, uv: np.ndarray):
    """Inverse depth interpolated at sub-pixel uv where all four neighbours are valid and on one object."""
    u0, v0 = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    ok = (u0 >= 0) & (v0 >= 0) & (u0 + 1 < depth.shape[1]) & (v0 + 1 < depth.shape[0])
    u0, v0, uv = u0[ok], v0[ok], uv[ok]
    fu, fv = uv[:, 0] - u0, uv[:, 1] - v0
    corners = [(v0, u0), (v0, u0 + 1), (v0 + 1, u0), (v0 + 1, u0 + 1)]
    same = np.ones(len(u0), bool)
    for r, c in corners:
        same &= valid[r, c] & (ids[r, c] == ids[v0, u0])
    inv = [1.0 / np.where(valid[r, c], depth[r, c], 1.0) for r, c in corners]
    val = (1 - fu) * (1 - fv) * inv[0] + fu * (1 - fv) * inv[1] + (1 - fu) * fv * inv[2] + fu * fv * inv[3]
    return np.flatnonzero(ok)[same], 1.0 / val[same]


@pytest.mark.parametrize("seed", [3, 8])
def test_multi_view_depth_consistency(seed: int) -> None:
    clip = make_clip(seed, SyntheticConfig(num_frames=9, height=48, width=64))
    i, j = 0, clip.num_frames - 1
    assert not torch.allclose(clip.c2w[i], clip.c2w[j]), "the path must move for this test to mean anything"
    pts = clip.points[i][clip.valid[i]].double().numpy()
    uv, z = project_points(pts, clip.intrinsics[j].double().numpy(), clip.c2w[j].double().numpy())
    front = z > 1e-3
    idx, dj = _bilinear_inverse_depth(
        clip.depth[j].double().numpy(), clip.valid[j].numpy(), clip.object_ids[j].numpy(), uv[front]
    )
    assert len(idx) > 200
    rel = np.abs(z[front][idx] - dj) / dj
    assert np.median(rel) < 1e-3


def test_shadow_on_ground_is_darker_than_lit_ground() -> None:
    box = _obj("box", (0.0, 0.0, 0.0), radius=0.5, height=1.5, minor=0.5)
    scene = _scene([box], sun=(0.5, 0.0, 0.8))
    sun = np.asarray(scene.lighting.sun_dir)
    shadow = np.array([0.0, 0.0, 1.4]) - sun * (1.4 / sun[2])  # ray to the sun passes through the box
    lit = np.array([-1.0, -1.5, 0.0])
    _look(scene, np.array([-3.0, -6.0, 4.0]), np.array([-0.5, 0.0, 0.0]))
    out, k = _render(scene, fov=60.0)
    world_from_scene = np.linalg.inv(scene.anchor)
    rgb = out.rgb[0].numpy()
    lum = []
    for p in (shadow, lit):
        pw = world_from_scene[:3, :3] @ p + world_from_scene[:3, 3]
        uv, _ = project_points(pw[None], k[0], np.eye(4))
        u, v = np.round(uv[0]).astype(int)
        assert 0 <= u < W and 0 <= v < H and int(out.object_ids[0, v, u]) == 0 and bool(out.valid[0, v, u])
        lum.append(rgb[v, u].mean())
    assert lum[0] < 0.75 * lum[1]


def test_sky_pixels_are_invalid() -> None:
    scene = _scene([])
    _look(scene, np.array([0.0, 0.0, 1.5]), np.array([0.0, 10.0, 1.5]))  # level view: upper half is sky
    out, _ = _render(scene)
    assert not out.valid[0, : H // 2 - 2].any()
    assert torch.all(out.depth[0, : H // 2 - 2] == 0) and torch.all(out.points[0, : H // 2 - 2] == 0)
    assert out.valid[0, H // 2 + 3 :].all()
    sky = out.rgb[0, 0].mean(0)
    assert sky[2] > sky[0]  # a blue sunny sky


def test_chunking_does_not_change_the_image() -> None:
    scene = _scene(
        [_obj("sphere", radius=0.6), _obj("torus", (1.5, 0.5, 0.0), radius=0.5, height=0.3, minor=0.15)]
    )
    _look(scene, np.array([0.5, -5.0, 2.0]), np.array([0.7, 0.0, 0.4]))
    k = intrinsics_from_vfov(50.0, W, H)[None].repeat(2, axis=0)
    c2w = np.repeat(np.eye(4)[None], 2, axis=0)
    c2w[1, 0, 3] = 0.3
    a = render_views(scene, c2w, k, H, W, cfg=RenderConfig(chunk_rays=97))
    b = render_views(scene, c2w, k, H, W, cfg=RenderConfig(chunk_rays=1 << 20))
    for name in ("rgb", "depth", "points", "valid", "object_ids"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
