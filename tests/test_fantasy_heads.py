"""FantasyWorld heads: official key layout, causal temporal upsampling, DPT shapes, camera head order,
activations and the 9-d pose encoding."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from fantasy_world.models.fantasy.heads import (
    CameraHead,
    CameraHeadConfig,
    DPTHead,
    DPTHeadConfig,
    TemporalUpsampler,
    activate_dense,
    exp,
    expp1,
    inv_log,
)
from fantasy_world.models.fantasy.heads.dpt_fusion import ResidualConvUnit
from fantasy_world.models.fantasy.heads.pos_embed import uv_embedding, uv_grid
from fantasy_world.models.fantasy.pose_encoding import (
    extri_intri_to_pose_encoding,
    matrix_to_quat,
    pose_encoding_to_extri_intri,
    quat_to_matrix,
    standardize_quaternion,
)

KEYS_JSON = (
    Path(__file__).resolve().parent / "fixtures" / "official_keys_wan21.json"
)  # copy of the official key list


def _official(prefix: str) -> dict[str, list[int]]:
    keys = json.loads(KEYS_JSON.read_text())["keys"]
    return {k[len(prefix) :]: list(v) for k, v in keys.items() if k.startswith(prefix)}


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- official layout (meta device)


@pytest.mark.parametrize(
    ("prefix", "build", "count"),
    [
        ("vggt.camera_head.", lambda: CameraHead(CameraHeadConfig()), 233_009_170),
        ("vggt.depth_head.", lambda: DPTHead(DPTHeadConfig.depth()), 195_143_650),
        ("vggt.point_head.", lambda: DPTHead(DPTHeadConfig.points()), 195_143_716),
    ],
)
def test_full_size_heads_match_official_keys(prefix: str, build, count: int) -> None:
    with torch.device("meta"):
        head = build()
    ours, ref = _shapes(head), _official(prefix)
    assert sorted(set(ref) - set(ours)) == [] and sorted(set(ours) - set(ref)) == []
    assert ours == ref
    assert sum(p.numel() for p in head.parameters()) == count
    assert not list(head.buffers())


def test_temporal_upsampler_keys_and_sizes() -> None:
    with torch.device("meta"):
        ups = [TemporalUpsampler(c) for c in (256, 512, 1024)]
    for j, up in zip((0, 1, 2), ups):
        assert _shapes(up) == _official(f"vggt.depth_head.temporal_upsamplers.{j}.")
    assert [sum(p.numel() for p in u.parameters()) for u in ups] == [
        4_393_216,
        17_568_256,
        70_263_808,
    ]  # 4.39 M, 17.57 M, 70.26 M (§2.1)


# ---------------------------------------------------------------- temporal upsampler


def _hand_weighted_upsampler() -> TemporalUpsampler:
    """One channel; conv2 = identity; residual convs zero (blocks are identities);
    time_conv: even frame = current + previous input frame, odd frame = 2 × current."""
    up = TemporalUpsampler(1)
    with torch.no_grad():
        for p in up.parameters():
            p.zero_()
        up.conv2.weight.fill_(1.0)
        for idx in (0, 2):
            w = up.decoder.upsamples[idx].time_conv.weight  # [2, 1, 3, 1, 1]; tap 2 = current frame
            w[0, 0, 2] = 1.0
            w[0, 0, 1] = 1.0
            w[1, 0, 2] = 2.0
        for idx in (1, 3):
            up.decoder.upsamples[idx].residual[0].gamma.fill_(1.0)
    return up


def test_upsampler_semantics_by_hand() -> None:
    up = _hand_weighted_upsampler()
    z = torch.tensor([1.0, 10.0, 100.0]).reshape(1, 1, 3, 1, 1)
    out = up(z).flatten().tolist()
    z0, z1, z2 = 1.0, 10.0, 100.0
    # latent 0 passes through; latent 1 sees zeros (not latent 0) as its past; latent 2 sees latent 1
    expected = [z0, z1, 2 * z1, 3 * z1, 4 * z1, z2 + 3 * z1, 2 * z2 + 2 * z1, 3 * z2 + z1, 4 * z2]
    assert out == pytest.approx(expected)


def test_upsampler_is_causal_and_chunking_invariant() -> None:
    torch.manual_seed(0)
    up = TemporalUpsampler(6).eval()
    z = torch.randn(2, 6, 4, 3, 2)
    full = up(z)
    assert full.shape == (2, 6, 13, 3, 2) and up.num_frames(4) == 13
    for s in (1, 2, 3):
        torch.testing.assert_close(up(z[:, :, :s]), full[:, :, : 1 + 4 * (s - 1)], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(up(z, latents_per_chunk=3), full, rtol=1e-5, atol=1e-6)
    # streaming: continuing with the same cache equals decoding everything at once
    from fantasy_world.models.wan.vae_layers import FeatureCache

    cache = FeatureCache()
    streamed = torch.cat([up(z[:, :, :2], cache), up(z[:, :, 2:], cache)], dim=2)
    torch.testing.assert_close(streamed, full, rtol=1e-5, atol=1e-6)
    # the future never leaks back: changing the last latent leaves earlier frames unchanged
    z2 = z.clone()
    z2[:, :, -1] += 1.0
    changed = up(z2)
    torch.testing.assert_close(changed[:, :, :9], full[:, :, :9])
    assert not torch.allclose(changed[:, :, 9:], full[:, :, 9:])


# ---------------------------------------------------------------- DPT head

SMALL = {
    "dim_in": 32,
    "features": 16,
    "out_channels": (8, 16, 16, 16),
    "intermediate_layer_idx": (5, 3, 2, 0),
    "head_hidden": 8,
}
N_LAYERS, N_SPECIAL, TOKEN_HW, IMAGE_HW = 6, 5, (2, 3), (32, 48)


def _intermediates(s: int, b: int = 1, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    p = N_SPECIAL + TOKEN_HW[0] * TOKEN_HW[1]
    return [torch.randn(b, s, p, SMALL["dim_in"], generator=g) for _ in range(N_LAYERS)]


@pytest.fixture(scope="module")
def depth_head() -> DPTHead:
    torch.manual_seed(0)
    return DPTHead(DPTHeadConfig.depth(**SMALL)).eval()


@pytest.fixture(scope="module")
def point_head() -> DPTHead:
    torch.manual_seed(1)
    return DPTHead(DPTHeadConfig.points(**SMALL)).eval()


@pytest.mark.parametrize("s", [1, 2, 3])
def test_dpt_shapes_full_resolution(depth_head: DPTHead, point_head: DPTHead, s: int) -> None:
    t = 1 + 4 * (s - 1)
    with torch.no_grad():
        depth, dconf = depth_head(_intermediates(s, b=2), N_SPECIAL, TOKEN_HW, IMAGE_HW)
        points, pconf = point_head(_intermediates(s, b=2), N_SPECIAL, TOKEN_HW, IMAGE_HW)
    assert depth.shape == (2, t, 32, 48, 1) and dconf.shape == (2, t, 32, 48)
    assert points.shape == (2, t, 32, 48, 3) and pconf.shape == (2, t, 32, 48)
    assert (depth > 0).all() and (dconf > 1).all() and (pconf > 1).all()
    assert torch.isfinite(points).all() and (points < 0).any()  # inv_log is signed
    assert depth.std() > 0  # the map is not constant


def test_dpt_is_temporally_causal(depth_head: DPTHead) -> None:
    inter3 = _intermediates(3)
    with torch.no_grad():
        d3, c3 = depth_head(inter3, N_SPECIAL, TOKEN_HW, IMAGE_HW)
        d2, c2 = depth_head([x[:, :2] for x in inter3], N_SPECIAL, TOKEN_HW, IMAGE_HW)
    torch.testing.assert_close(d2, d3[:, :5], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c2, c3[:, :5], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(d3[:, 5:], d3[:, 1:5])


def test_dpt_chunking_does_not_change_results() -> None:
    torch.manual_seed(2)
    big = DPTHead(DPTHeadConfig.depth(**SMALL, latent_chunk=8, frame_chunk=32)).eval()
    small = DPTHead(DPTHeadConfig.depth(**SMALL, latent_chunk=1, frame_chunk=2)).eval()
    small.load_state_dict(big.state_dict())
    inter = _intermediates(2)
    with torch.no_grad():
        a, b = big(inter, N_SPECIAL, TOKEN_HW, IMAGE_HW), small(inter, N_SPECIAL, TOKEN_HW, IMAGE_HW)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_dpt_reads_only_selected_layers_and_patch_tokens(depth_head: DPTHead) -> None:
    inter = _intermediates(2)
    with torch.no_grad():
        ref = depth_head(inter, N_SPECIAL, TOKEN_HW, IMAGE_HW)[0]
        unused = [x.clone() for x in inter]
        unused[1] += torch.randn_like(unused[1])  # layer 1 is not in intermediate_layer_idx
        unused[5][:, :, :N_SPECIAL] += torch.randn_like(unused[5][:, :, :N_SPECIAL])  # special tokens
        torch.testing.assert_close(depth_head(unused, N_SPECIAL, TOKEN_HW, IMAGE_HW)[0], ref)
        used = [x.clone() for x in inter]
        used[0][:, :, N_SPECIAL:] += torch.randn_like(used[0][:, :, N_SPECIAL:])
        assert not torch.allclose(depth_head(used, N_SPECIAL, TOKEN_HW, IMAGE_HW)[0], ref)
    with pytest.raises(ValueError):
        depth_head(inter, N_SPECIAL, (3, 3), IMAGE_HW)


def test_residual_conv_unit_skips_activated_input() -> None:
    unit = ResidualConvUnit(4)
    with torch.no_grad():
        for p in unit.parameters():
            p.zero_()
    x = torch.randn(1, 4, 3, 3)
    torch.testing.assert_close(unit(x), F.relu(x))  # VGGT's in-place ReLU makes the skip relu(x)


def test_uv_embedding_values() -> None:
    grid = uv_grid(4, 2, aspect_ratio=2.0, device="cpu")
    span_x, span_y = 2 / math.sqrt(5), 1 / math.sqrt(5)
    assert grid.shape == (2, 4, 2)
    assert grid[0, 0].tolist() == pytest.approx([-span_x * 3 / 4, -span_y / 2])
    assert grid[1, 3].tolist() == pytest.approx([span_x * 3 / 4, span_y / 2])
    emb = uv_embedding(8, 2, 4, 2.0, "cpu")  # [u: sin×2, cos×2 | v: sin×2, cos×2], ω = 100^(-k/2)
    u, v = grid[1, 2]
    expected = [math.sin(u), math.sin(u / 10), math.cos(u), math.cos(u / 10)]
    expected += [math.sin(v), math.sin(v / 10), math.cos(v), math.cos(v / 10)]
    assert emb[:, 1, 2].tolist() == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------- activations


def test_activations() -> None:
    y = torch.tensor([-math.log(4.0), 0.0, math.log(3.0)])
    assert inv_log(y).tolist() == pytest.approx([-3.0, 0.0, 2.0])
    assert exp(y).tolist() == pytest.approx([0.25, 1.0, 3.0])
    assert expp1(y).tolist() == pytest.approx([1.25, 2.0, 4.0])
    out = torch.randn(2, 4, 3, 5)
    values, conf = activate_dense(out, "inv_log")
    assert values.shape == (2, 3, 5, 3) and conf.shape == (2, 3, 5)
    torch.testing.assert_close(conf, 1 + out[:, 3].exp())
    torch.testing.assert_close(values[..., 1], inv_log(out[:, 1]))


# ---------------------------------------------------------------- camera head

CAM_SMALL = CameraHeadConfig(dim_in=32, trunk_depth=2, num_heads=4, num_iterations=3)


def test_camera_upsample_block_order() -> None:
    torch.manual_seed(3)
    head = CameraHead(CAM_SMALL).eval()
    c, r = 32, 4
    with torch.no_grad():
        w = torch.zeros(r * c, c, 1)
        for ch in range(c):
            for k in range(r):
                w[r * ch + k, ch, 0] = k + 1.0  # expanded channel r·c + k = (k+1)·x[c]
        head.camera_time_upsample.expand_channels.weight.copy_(w)
        head.camera_time_upsample.expand_channels.bias.zero_()
        s = 4
        cam = torch.randn(2, s, c)
        tokens = head.pose_tokens(cam)
    n = s - 1
    assert tokens.shape == (2, 1 + r * n, c)
    torch.testing.assert_close(
        tokens[:, 0], F.layer_norm(cam[:, 0], (c,), head.token_norm.weight, head.token_norm.bias)
    )
    for k in range(r):
        for i in range(n):
            # block order: token 1 + k·N + i is sub-slot k of latent 1 + i (un-normalised)
            torch.testing.assert_close(tokens[:, 1 + k * n + i], (k + 1) * cam[:, 1 + i])


def test_camera_head_outputs_and_refinement() -> None:
    torch.manual_seed(4)
    head = CameraHead(CAM_SMALL).eval()
    with torch.no_grad():
        head.empty_pose_tokens.normal_()
        for s in (1, 2, 3):
            inter = [torch.randn(2, s, 7, 32) for _ in range(3)]
            outs = head(inter)
            assert len(outs) == 3 and all(o.shape == (2, 1 + 4 * (s - 1), 9) for o in outs)
            assert (outs[-1][..., 7:] >= 0).all()  # FoV uses ReLU
        # iteration 2 written out: embed the raw first estimate, AdaLN, trunk, delta
        tokens = head.pose_tokens(inter[-1][:, :, 0])

        def step(cond_in: torch.Tensor) -> torch.Tensor:
            shift, scale, gate = head.poseLN_modulation(head.embed_pose(cond_in)).chunk(3, dim=-1)
            x = gate * (F.layer_norm(tokens, (32,), eps=1e-6) * (1 + scale) + shift) + tokens
            for blk in head.trunk:
                x = blk(x)
            return head.pose_branch(head.trunk_norm(x))

        raw1 = step(head.empty_pose_tokens.expand(2, tokens.shape[1], -1))
        raw2 = raw1 + step(raw1)
        outs = head(inter, num_iterations=2)
        torch.testing.assert_close(outs[0][..., :7], raw1[..., :7])
        torch.testing.assert_close(outs[1][..., 7:], F.relu(raw2[..., 7:]))
        torch.testing.assert_close(outs[1][..., :7], raw2[..., :7])


def test_camera_head_ignores_all_but_last_layer_camera_token() -> None:
    torch.manual_seed(5)
    head = CameraHead(CAM_SMALL).eval()
    inter = [torch.randn(1, 2, 7, 32) for _ in range(2)]
    with torch.no_grad():
        ref = head(inter)[-1]
        other = [inter[0] + 1.0, inter[1].clone()]
        other[1][:, :, 1:] += 1.0
        torch.testing.assert_close(head(other)[-1], ref)


# ---------------------------------------------------------------- pose encoding


def _random_cameras(n: int, seed: int, hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    rot = Rotation.random(n, random_state=seed).as_matrix()
    w2c = np.concatenate([rot, rng.normal(size=(n, 3, 1)) * 2], axis=-1)
    h, w = hw
    f = rng.uniform(200, 900, size=(n, 2))
    k = np.zeros((n, 3, 3))
    k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = f[:, 0], f[:, 1], w / 2, h / 2, 1
    return torch.from_numpy(w2c), torch.from_numpy(k)


def test_pose_encoding_round_trip() -> None:
    hw = (336, 592)
    w2c, k = _random_cameras(64, 0, hw)
    enc = extri_intri_to_pose_encoding(w2c.reshape(4, 16, 3, 4), k.reshape(4, 16, 3, 3), hw)
    assert enc.shape == (4, 16, 9) and enc.dtype == torch.float32
    w2c_back, k_back = pose_encoding_to_extri_intri(enc.double(), hw)
    torch.testing.assert_close(w2c_back.reshape(64, 3, 4), w2c, rtol=0, atol=1e-5)
    torch.testing.assert_close(k_back.reshape(64, 3, 3), k, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        enc[..., 7].reshape(-1).double(), 2 * torch.atan(168 / k[:, 1, 1]), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(
        enc[..., 8].reshape(-1).double(), 2 * torch.atan(296 / k[:, 0, 0]), rtol=0, atol=1e-6
    )


def test_quaternions_against_scipy_and_signs() -> None:
    rots = Rotation.random(200, random_state=1)
    # include exact and near 180° rotations, where the w-based formula breaks down
    extra = Rotation.from_rotvec(np.array([[math.pi, 0, 0], [0, math.pi - 1e-7, 0], [0.0, 0.0, 0.0]]))
    mats = torch.from_numpy(np.concatenate([rots.as_matrix(), extra.as_matrix()]))
    quats = matrix_to_quat(mats)
    ref = torch.from_numpy(np.concatenate([rots.as_quat(), extra.as_quat()]))  # xyzw
    ref = torch.where(ref[:, 3:4] < 0, -ref, ref)
    torch.testing.assert_close(quats.norm(dim=-1), torch.ones(203, dtype=torch.float64))
    assert (quats[:, 3] >= 0).all()
    # q and −q describe one rotation; compare up to sign where w == 0
    same = torch.minimum((quats - ref).abs().amax(-1), (quats + ref).abs().amax(-1))
    assert same.max() < 1e-6
    torch.testing.assert_close(quat_to_matrix(quats), mats, rtol=0, atol=1e-9)
    # quat_to_matrix normalises implicitly and ignores the sign
    q = torch.randn(10, 4, dtype=torch.float64)
    torch.testing.assert_close(quat_to_matrix(3.5 * q), quat_to_matrix(-q))
    assert (standardize_quaternion(-q.abs())[:, 3] >= 0).all()
    # gradients stay finite at the identity (sqrt of zero in the unused candidates)
    eye = torch.eye(3, dtype=torch.float64, requires_grad=True)
    matrix_to_quat(eye).sum().backward()
    assert torch.isfinite(eye.grad).all()
