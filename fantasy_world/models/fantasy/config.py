"""Configuration of a FantasyWorld model: the Wan DiT plus geometry branch, coupling, heads and camera path.

Every width, depth, head count, block range and layer index lives here, so the same code builds the
official Wan2.1-I2V-14B model, the seed's Wan2.1-T2V-1.3B design and our tiny CPU model. ``reduced``
shrinks widths while keeping every depth and layer choice, which gives a model with exactly the official
module structure (and state-dict keys) that fits in a unit test.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.heads.camera_head import CameraHeadConfig
from fantasy_world.models.fantasy.heads.dpt_head import DPTHeadConfig
from fantasy_world.models.wan.config import WanDiTConfig, wan_dit_config

BridgeType = Literal["conv", "transformer"]
PluckerMode = Literal["correct", "official"]
TextEncoderKind = Literal["umt5-xxl", "minilm"]


@dataclass(frozen=True, kw_only=True)
class FantasyWorldConfig:
    """Sizes and switches of a FantasyWorld model.

    The DiT's first ``n_pcb`` blocks are preconditioning blocks; every later DiT block is paired with one
    geometry global block (``num_irg = dit.num_layers - n_pcb`` IRG blocks, and as many frame blocks).
    Camera adapters sit on DiT blocks ``camera_adapter_blocks[0] ..= camera_adapter_blocks[1]``. A model
    has at most one camera path: those adapters (Wan2.1), or, with ``control_channels > 0``, Wan-Fun's
    control adapter whose output is added to the patch embeddings (Wan2.2-Fun).
    """

    name: str
    dit: WanDiTConfig
    n_pcb: int
    # the frozen text encoder whose features the DiT's text_dim takes (models.wan.text_encoder.load_text_encoder)
    text_encoder: TextEncoderKind = "umt5-xxl"
    # geometry branch
    geo_dim: int
    geo_heads: int
    geo_mlp_ratio: float = 4.0
    geo_init_values: float = 0.01
    geo_rope_freq: float = 100.0
    num_register: int = 4
    # latent bridge
    bridge: BridgeType = "conv"
    bridge_layers: int = 2
    bridge_heads: int = 8
    bridge_ffn_dim: int = 0
    # bidirectional cross-attention
    bicross_dim: int
    bicross_heads: int
    bicross_eps: float = 1e-6
    # known-pose camera tokens (CamTokenProjector)
    pose_enc_dim: int = 9
    cam_proj_hidden: int = 128
    # camera conditioning (Plücker -> pose encoder -> adapters)
    camera_adapter_blocks: tuple[int, int] | None = None
    plucker_channels: int = 6
    pose_downscale: int = 8
    pose_in_dim: int = 768
    pose_embed_dim: int = 0
    pose_fc_hidden: int = 0
    pose_groups: int = 2
    plucker_fea_dim: int = 2048
    adapter_k_hidden: int = 1024
    adapter_v_hidden: int = 409
    plucker_mode: PluckerMode = "correct"
    # Wan-Fun control adapter (0 = none): Plücker channels × VAE time stride, packed per latent frame
    control_channels: int = 0
    control_residual_blocks: int = 1
    # the official sampler hands the model its timestep as bf16 (906.59 arrives as 908): round like it
    bf16_timestep: bool = False
    # heads
    depth_head: DPTHeadConfig = field(default_factory=DPTHeadConfig.depth)
    point_head: DPTHeadConfig = field(default_factory=DPTHeadConfig.points)
    camera_head: CameraHeadConfig = field(default_factory=CameraHeadConfig)
    # VAE compression between video frames/pixels and latents: (time, height, width)
    vae_stride: tuple[int, int, int] = (4, 8, 8)

    def __post_init__(self) -> None:
        d = self.dit
        if not 0 <= self.n_pcb < d.num_layers:
            raise InputError(
                f"{self.name}: n_pcb={self.n_pcb}: expected 0 <= n_pcb < {d.num_layers} DiT blocks"
            )
        _divisible(self.name, "geo_dim", self.geo_dim, "geo_heads", self.geo_heads)
        if (self.geo_dim // self.geo_heads) % 4:
            raise InputError(
                f"{self.name}: geometry head dim {self.geo_dim // self.geo_heads}: expected a multiple of 4 (2-D RoPE)"
            )
        _divisible(self.name, "bicross_dim", self.bicross_dim, "bicross_heads", self.bicross_heads)
        bi_head = self.bicross_dim // self.bicross_heads
        if bi_head % 2 or bi_head < 6:
            raise InputError(
                f"{self.name}: bicross head dim {bi_head}: expected an even number >= 6 (3-D RoPE)"
            )
        if self.bridge not in ("conv", "transformer"):
            raise InputError(f"{self.name}: bridge={self.bridge!r}: expected 'conv' or 'transformer'")
        if self.bridge == "transformer":
            _divisible(self.name, "dit.dim", d.dim, "bridge_heads", self.bridge_heads)
            if self.bridge_ffn_dim <= 0 or self.bridge_layers < 0:
                raise InputError(
                    f"{self.name}: transformer bridge needs bridge_ffn_dim > 0 and bridge_layers >= 0"
                )
        if self.plucker_mode not in ("correct", "official"):
            raise InputError(
                f"{self.name}: plucker_mode={self.plucker_mode!r}: expected 'correct' or 'official'"
            )
        if self.control_channels:
            if self.camera_adapter_blocks is not None:
                raise InputError(
                    f"{self.name}: control_channels={self.control_channels} and camera_adapter_blocks both set: "
                    "expected one camera path"
                )
            want = self.plucker_channels * self.vae_stride[0]
            if self.control_channels != want or self.control_residual_blocks < 0:
                raise InputError(
                    f"{self.name}: control_channels={self.control_channels}: expected plucker_channels × VAE "
                    f"time stride = {want} (and control_residual_blocks >= 0)"
                )
        if self.camera_adapter_blocks is not None:
            first, last = self.camera_adapter_blocks
            if not 0 <= first <= last < d.num_layers:
                raise InputError(
                    f"{self.name}: camera_adapter_blocks={self.camera_adapter_blocks}: expected 0 <= first <= last < {d.num_layers}"
                )
            if min(self.pose_embed_dim, self.pose_fc_hidden, self.plucker_fea_dim, self.pose_in_dim) <= 0:
                raise InputError(f"{self.name}: camera path widths must be positive")
        for label, head in (("depth_head", self.depth_head), ("point_head", self.point_head)):
            if head.dim_in != 2 * self.geo_dim:
                raise InputError(
                    f"{self.name}: {label}.dim_in={head.dim_in}: expected 2*geo_dim={2 * self.geo_dim}"
                )
            bad = [i for i in head.intermediate_layer_idx if not -self.num_irg <= i < self.num_irg]
            if bad:
                raise InputError(
                    f"{self.name}: {label}.intermediate_layer_idx {bad}: expected indices below {self.num_irg}"
                )
        if self.camera_head.dim_in != 2 * self.geo_dim:
            raise InputError(
                f"{self.name}: camera_head.dim_in={self.camera_head.dim_in}: expected {2 * self.geo_dim}"
            )
        if (self.has_camera or self.has_control) and not self.pose_downscale == self.vae_stride[
            1
        ] == self.vae_stride[2]:
            raise InputError(
                f"{self.name}: pose_downscale={self.pose_downscale}: expected the VAE's spatial stride {self.vae_stride[1:]}"
            )

    @property
    def num_irg(self) -> int:
        return self.dit.num_layers - self.n_pcb

    @property
    def num_special(self) -> int:
        """Camera + register tokens per latent frame (patch tokens start at this index)."""
        return 1 + self.num_register

    @property
    def adapter_block_ids(self) -> range:
        if self.camera_adapter_blocks is None:
            return range(0)
        return range(self.camera_adapter_blocks[0], self.camera_adapter_blocks[1] + 1)

    @property
    def has_camera(self) -> bool:
        """True when the camera enters through cross-attention adapters (the Wan2.1 camera path)."""
        return self.camera_adapter_blocks is not None

    @property
    def has_control(self) -> bool:
        """True when the camera enters through Wan-Fun's control adapter (the Wan2.2-Fun camera path)."""
        return self.control_channels > 0

    @property
    def takes_image(self) -> bool:
        """Image-to-world: the DiT takes conditioning channels ``y`` (with CLIP tokens on Wan2.1 I2V)."""
        return self.dit.image_input or self.dit.in_dim > self.dit.out_dim

    @property
    def takes_end_image(self) -> bool:
        """First- and last-frame conditioning without CLIP (Wan2.2-Fun): an optional end image is accepted."""
        return self.takes_image and not self.dit.image_input


def _divisible(name: str, a_name: str, a: int, b_name: str, b: int) -> None:
    if a <= 0 or b <= 0 or a % b:
        raise InputError(f"{name}: {a_name}={a}: expected a positive multiple of {b_name}={b}")


def _heads(geo_dim: int, idx: tuple[int, int, int, int], **dpt: object) -> dict[str, object]:
    return {
        "depth_head": DPTHeadConfig.depth(dim_in=2 * geo_dim, intermediate_layer_idx=idx, **dpt),
        "point_head": DPTHeadConfig.points(dim_in=2 * geo_dim, intermediate_layer_idx=idx, **dpt),
    }


def _official_i2v_14b() -> FantasyWorldConfig:
    dit = wan_dit_config("wan2.1-i2v-14b")
    return FantasyWorldConfig(
        name="wan2.1-i2v-14b",
        dit=dit,
        n_pcb=16,
        geo_dim=1024,
        geo_heads=16,
        bridge="conv",
        bicross_dim=1152,
        bicross_heads=12,
        camera_adapter_blocks=(0, 24),
        pose_in_dim=768,
        pose_embed_dim=dit.dim,
        pose_fc_hidden=dit.dim // 2,
        plucker_fea_dim=2048,
        adapter_k_hidden=min(dit.dim, 2048) // 2,
        adapter_v_hidden=2048 // 5,
        plucker_mode="official",
        camera_head=CameraHeadConfig(dim_in=2048, num_heads=16),
        **_heads(1024, (23, 17, 11, 7)),
    )


def _official_fun_a14b() -> FantasyWorldConfig:
    """One expert of FantasyWorld-Wan2.2-Fun-A14B-Control-Camera: the Wan2.1 model's geometry branch,
    bridge, IRG coupling, bicross and heads on a Wan2.2-Fun-A14B expert (no CLIP, 36 input channels), the
    camera through the control adapter instead of cross-attention adapters. Both experts share this
    config; which expert runs when is :mod:`fantasy_world.models.fantasy.experts`."""
    return FantasyWorldConfig(
        name="wan2.2-fun-a14b",
        dit=wan_dit_config("wan2.2-fun-a14b"),
        n_pcb=16,
        geo_dim=1024,
        geo_heads=16,
        bridge="conv",
        bicross_dim=1152,
        bicross_heads=12,
        control_channels=24,
        bf16_timestep=True,
        plucker_mode="official",
        camera_head=CameraHeadConfig(dim_in=2048, num_heads=16),
        **_heads(1024, (23, 17, 11, 7)),
    )


def _seed_t2v_1_3b() -> FantasyWorldConfig:
    """Seed design on Wan2.1-T2V-1.3B: 12 PCB / 18 IRG, geometry 1536 wide with 12 heads, 2-layer bridge.

    Bicross: 1152 wide, 12 heads — the official head dim 96 (RoPE split 32/32/32) at the official width.
    Camera adapters cover blocks 0..18, the official fraction (25 of 40 blocks) of a 30-block DiT; camera
    features are 1024-d (half the official 2048, as the DiT is 1536 not 5120 wide).
    DPT layers (17, 13, 8, 5) sit at the official relative depths of (23, 17, 11, 7) in 24 layers.
    """
    dit = wan_dit_config("wan2.1-t2v-1.3b")
    fea = 1024
    return FantasyWorldConfig(
        name="wan2.1-t2v-1.3b",
        dit=dit,
        n_pcb=12,
        geo_dim=1536,
        geo_heads=12,
        bridge="transformer",
        bridge_layers=2,
        bridge_heads=12,
        bridge_ffn_dim=4 * dit.dim,
        bicross_dim=1152,
        bicross_heads=12,
        camera_adapter_blocks=(0, 18),
        pose_in_dim=768,
        pose_embed_dim=dit.dim,
        pose_fc_hidden=dit.dim // 2,
        plucker_fea_dim=fea,
        adapter_k_hidden=min(dit.dim, fea) // 2,
        adapter_v_hidden=fea // 5,
        plucker_mode="correct",
        camera_head=CameraHeadConfig(dim_in=3072, num_heads=16),
        **_heads(1536, (17, 13, 8, 5)),
    )


def _tiny() -> FantasyWorldConfig:
    """Small CPU model on the tiny Wan DiT (8 blocks): 3 PCB / 5 IRG, geometry 128 wide, small heads.

    Sized so that the whole shipped model (this, the VAE, fp16) stays under 30 MiB, the most a device
    call can carry and return: the DiT keeps its width and depth (prompt following), the geometry MLPs
    are 2× wide, the camera-head trunk has one block and the DPT projections are 32 channels.
    """
    dit = wan_dit_config("tiny")
    fea = 128
    dpt = {"features": 32, "out_channels": (16, 32, 32, 32), "head_hidden": 16}
    return FantasyWorldConfig(
        name="tiny",
        dit=dit,
        n_pcb=3,
        text_encoder="minilm",
        geo_dim=128,
        geo_heads=4,
        geo_mlp_ratio=2.0,
        bridge="conv",
        bicross_dim=96,
        bicross_heads=2,
        cam_proj_hidden=32,
        camera_adapter_blocks=(0, 4),
        pose_in_dim=128,
        pose_embed_dim=dit.dim,
        pose_fc_hidden=dit.dim // 2,
        plucker_fea_dim=fea,
        adapter_k_hidden=min(dit.dim, fea) // 2,
        adapter_v_hidden=fea // 5,
        camera_head=CameraHeadConfig(dim_in=256, trunk_depth=1, num_heads=4, mlp_ratio=2.0),
        **_heads(128, (4, 3, 2, 1), **dpt),
    )


_PRESETS = {
    "wan2.1-i2v-14b": _official_i2v_14b,
    "wan2.2-fun-a14b": _official_fun_a14b,
    "wan2.1-t2v-1.3b": _seed_t2v_1_3b,
    "tiny": _tiny,
}
FANTASY_WORLD_PRESETS: tuple[str, ...] = tuple(_PRESETS)


def fantasy_world_config(name: str, **overrides: object) -> FantasyWorldConfig:
    """The named preset, optionally with top-level fields replaced."""
    key = name.lower()
    if key not in _PRESETS:
        raise InputError(
            f"unknown FantasyWorld config {name!r}; expected one of {', '.join(FANTASY_WORLD_PRESETS)}"
        )
    cfg = _PRESETS[key]()
    if not overrides:
        return cfg
    unknown = set(overrides) - {f.name for f in dataclasses.fields(FantasyWorldConfig)}
    if unknown:
        raise InputError(f"unknown FantasyWorldConfig field(s) {sorted(unknown)} for config {name!r}")
    return dataclasses.replace(cfg, **overrides)


def reduced(
    cfg: FantasyWorldConfig,
    *,
    dim: int = 32,
    num_heads: int = 2,
    geo_dim: int = 16,
    geo_heads: int = 2,
    bicross_dim: int = 24,
    bicross_heads: int = 2,
    context_dim: int = 16,
    head_width: int = 8,
) -> FantasyWorldConfig:
    """A copy of ``cfg`` with every width shrunk and every depth, block range and layer index kept.

    The result has the same module tree (hence the same state-dict keys) as ``cfg``; only shapes differ.
    """
    dit = dataclasses.replace(
        cfg.dit,
        dim=dim,
        ffn_dim=2 * dim,
        num_heads=num_heads,
        freq_dim=16,
        text_dim=context_dim,
        text_len=8,
        clip_dim=context_dim,
        clip_tokens=4,
    )
    w = head_width
    dpt = {"features": w, "out_channels": (w, w, 2 * w, 2 * w), "head_hidden": w}
    return dataclasses.replace(
        cfg,
        name=f"{cfg.name}-reduced",
        dit=dit,
        geo_dim=geo_dim,
        geo_heads=geo_heads,
        bridge_heads=num_heads,
        bridge_ffn_dim=2 * dim if cfg.bridge == "transformer" else cfg.bridge_ffn_dim,
        bicross_dim=bicross_dim,
        bicross_heads=bicross_heads,
        cam_proj_hidden=w,
        pose_in_dim=2 * w,
        pose_embed_dim=dim,
        pose_fc_hidden=dim // 2,
        plucker_fea_dim=context_dim,
        adapter_k_hidden=w,
        adapter_v_hidden=max(1, context_dim // 5),
        depth_head=dataclasses.replace(cfg.depth_head, dim_in=2 * geo_dim, **dpt),
        point_head=dataclasses.replace(cfg.point_head, dim_in=2 * geo_dim, **dpt),
        camera_head=dataclasses.replace(
            cfg.camera_head, dim_in=2 * geo_dim, num_heads=geo_heads, mlp_ratio=2.0
        ),
    )
