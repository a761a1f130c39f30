"""FantasyWorld: a Wan2.1 DiT with a geometry branch that predicts depth, points and cameras in one pass.

Data flow of :meth:`FantasyWorldModel.forward` (the official code's ``joint_forward``):

1. ``dit.embed`` (patchify, time, text/CLIP context, RoPE) and the preconditioning blocks ``0..n_pcb-1``;
2. the latent bridge turns those video tokens into geometry patch tokens; the geometry branch gets its
   own time modulation from the same timestep, and camera/register tokens per latent frame;
3. IRG layer i: geometry frame block i, then (Wan block ``n_pcb+i`` ‖ geometry global block i), the
   zero-gated bidirectional cross-attention, and both feed-forwards; concat(frame_i, global_i) is layer
   i's intermediate for the heads;
4. ``dit.finalize`` gives the velocity; the heads (only when ``return_geometry``) give depth, points and
   9-d camera encodings for every video frame at full image resolution.

The branch always runs, because through the bicross attention it feeds the video stream. Camera
features (from :meth:`encode_camera`) enter the video stream through the adapters in the DiT blocks
(Wan2.1 configs) or, for Wan2.2-Fun configs, are added to the patch embeddings (control adapter).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.aggregator import GeometryAggregator
from fantasy_world.models.fantasy.bicross_attention import BiCrossAttention, bicross_rope
from fantasy_world.models.fantasy.camera_adapter import install_camera_adapters
from fantasy_world.models.fantasy.config import FantasyWorldConfig
from fantasy_world.models.fantasy.control_adapter import (
    ControlAdapter,
    install_control_adapter,
    pack_plucker_control,
)
from fantasy_world.models.fantasy.heads.camera_head import CameraHead
from fantasy_world.models.fantasy.heads.dpt_head import DPTHead
from fantasy_world.models.fantasy.irg_block import IRGBlock
from fantasy_world.models.fantasy.latent_bridge import ConvBridge, TransformerBridge
from fantasy_world.models.fantasy.layers.geometry_block import GeometryBlock
from fantasy_world.models.fantasy.pose_encoder import CameraPoseEncoder
from fantasy_world.models.fantasy.time_embedding import GeometryTimeEmbedding
from fantasy_world.models.wan.dit import WanDiT


@dataclass
class GeometryOutput:
    """Per-video-frame geometry at full image resolution (T = 1 + 4(F-1) frames)."""

    depth: torch.Tensor  # [B, T, H, W]
    depth_conf: torch.Tensor  # [B, T, H, W]
    world_points: torch.Tensor  # [B, T, H, W, 3]
    world_points_conf: torch.Tensor  # [B, T, H, W]
    pose_enc: torch.Tensor  # [B, T, 9] absT_quaR_FoV, world-to-camera (OpenCV)


@dataclass
class FantasyWorldOutput:
    velocity: torch.Tensor  # [B, out_dim, F, H/8, W/8] predicted flow, float32
    geometry: GeometryOutput | None


class FantasyWorldModel(nn.Module):
    """Wan DiT (``dit``) + latent bridge + geometry branch + IRG coupling + heads + camera path."""

    def __init__(self, cfg: FantasyWorldConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.gradient_checkpointing = False
        self.dit = WanDiT(cfg.dit)
        self.pose_encoder: CameraPoseEncoder | None
        if cfg.has_camera:
            install_camera_adapters(
                self.dit.blocks,
                cfg.adapter_block_ids,
                cfg.plucker_fea_dim,
                cfg.adapter_k_hidden,
                cfg.adapter_v_hidden,
            )
            self.pose_encoder = CameraPoseEncoder(
                in_channels=cfg.plucker_channels,
                downscale=cfg.pose_downscale,
                mid_dim=cfg.pose_in_dim,
                embed_dim=cfg.pose_embed_dim,
                fc_hidden=cfg.pose_fc_hidden,
                context_dim=cfg.plucker_fea_dim,
                patch_size=cfg.dit.patch_size,
                groups=cfg.pose_groups,
            )
        else:
            self.register_module("pose_encoder", None)
        if cfg.has_control:
            install_control_adapter(
                self.dit,
                ControlAdapter(
                    cfg.control_channels,
                    cfg.dit.dim,
                    patch=cfg.dit.patch_size[1:],
                    downscale=cfg.pose_downscale,
                    residual_blocks=cfg.control_residual_blocks,
                ),
            )
        if cfg.bridge == "conv":
            self.bridge: nn.Module = ConvBridge(cfg.dit.dim, cfg.geo_dim)
        else:
            self.bridge = TransformerBridge(
                cfg.dit.dim,
                cfg.geo_dim,
                cfg.bridge_layers,
                cfg.bridge_heads,
                cfg.bridge_ffn_dim,
                cfg.dit.rope_theta,
            )
        self.geo_time = GeometryTimeEmbedding(cfg.dit.freq_dim, cfg.geo_dim)
        self.aggregator = GeometryAggregator(
            dim=cfg.geo_dim,
            num_heads=cfg.geo_heads,
            depth=cfg.num_irg,
            mlp_ratio=cfg.geo_mlp_ratio,
            num_register=cfg.num_register,
            init_values=cfg.geo_init_values,
            rope_freq=cfg.geo_rope_freq,
            pose_dim=cfg.pose_enc_dim,
            pose_group=cfg.vae_stride[0],
            cam_proj_hidden=cfg.cam_proj_hidden,
        )
        self.irg = nn.ModuleList(
            IRGBlock(
                self.dit.blocks[cfg.n_pcb + i],
                GeometryBlock(
                    cfg.geo_dim,
                    cfg.geo_heads,
                    mlp_ratio=cfg.geo_mlp_ratio,
                    init_values=cfg.geo_init_values,
                    rope_freq=cfg.geo_rope_freq,
                ),
                BiCrossAttention(
                    cfg.dit.dim, cfg.geo_dim, cfg.bicross_dim, cfg.bicross_heads, cfg.bicross_eps
                ),
            )
            for i in range(cfg.num_irg)
        )
        self.depth_head = DPTHead(cfg.depth_head)
        self.point_head = DPTHead(cfg.point_head)
        self.camera_head = CameraHead(cfg.camera_head)

    # ------------------------------------------------------------------ camera
    def encode_camera(self, plucker: torch.Tensor) -> torch.Tensor:
        """Plücker maps [B, T, H, W, 6] for every video frame -> camera features [B, F·h·w, width].

        ``width`` is ``plucker_fea_dim`` (Wan2.1 adapters) or the DiT width (Wan2.2-Fun control adapter).
        They depend only on the camera path and the model's weights: compute once per generation and
        model (each Wan2.2 expert has its own control adapter) and pass as ``camera``.
        """
        if self.cfg.has_control:
            adapter = self.dit.control_adapter
            return adapter(pack_plucker_control(plucker, self.cfg.vae_stride[0])).float()
        if self.pose_encoder is None:
            raise InputError(f"model config {self.cfg.name!r} has no camera path: expected camera=None")
        return self.pose_encoder(plucker)

    def _check_camera(self, camera: torch.Tensor | None, batch: int, tokens: int) -> torch.Tensor | None:
        if camera is None:
            return None
        if self.cfg.has_control:
            want = (batch, tokens, self.cfg.dit.dim)
            if camera.ndim != 3 or camera.shape[0] not in (1, batch) or tuple(camera.shape[1:]) != want[1:]:
                raise InputError(
                    f"camera features shape {tuple(camera.shape)}: expected {want} or batch 1 (from encode_camera)"
                )
            return camera
        if self.pose_encoder is None:
            raise InputError(f"camera features given, but model config {self.cfg.name!r} has no camera path")
        want = (batch, tokens, self.cfg.plucker_fea_dim)
        if tuple(camera.shape) != want:
            raise InputError(
                f"camera features shape {tuple(camera.shape)}: expected {want} (from encode_camera)"
            )
        return self.dit.camera_features(camera)

    def step_invariants(self) -> contextlib.AbstractContextManager:
        """One generation's scope for reusing step-invariant projections (``WanDiT.step_invariants``)."""
        return self.dit.step_invariants()

    # ------------------------------------------------------------------ forward
    def _kept_layers(self) -> set[int]:
        """Intermediate layers the heads read (others are not kept, to save memory)."""
        n = self.cfg.num_irg
        idx = list(self.cfg.depth_head.intermediate_layer_idx) + list(
            self.cfg.point_head.intermediate_layer_idx
        )
        return {i % n for i in idx} | {n - 1}

    def _run(self, fn, *args):
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        clip_fea: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        camera: torch.Tensor | None = None,
        return_geometry: bool = False,
        image_hw: tuple[int, int] | None = None,
    ) -> FantasyWorldOutput:
        """x [B, 16, F, H/8, W/8] noisy latents, t [B] (or scalar) timesteps in 0..1000, context [B, L, text_dim];
        I2V also clip_fea and y. ``camera``: features from :meth:`encode_camera`. ``image_hw`` (default
        latent size × VAE stride) is the resolution of the geometry maps."""
        cfg = self.cfg
        if cfg.bf16_timestep:  # every time embedding (DiT and geometry) sees the official bf16 value
            t = torch.as_tensor(t, device=x.device).to(torch.bfloat16).float()
        state = self.dit.embed(x, t, context, clip_fea=clip_fea, y=y)
        b = x.shape[0]
        f, h, w = state.grid
        camera = self._check_camera(camera, b, f * h * w)
        tvec = torch.as_tensor(t, device=x.device)
        tvec = tvec.expand(b) if tvec.ndim == 0 else tvec

        tokens = state.tokens
        if cfg.has_control and camera is not None:
            # Wan-Fun: the camera is added to the patch embeddings, once, for every batch element (the
            # official patchify keeps only element 0 here); the blocks then see no camera argument
            tokens = tokens + camera.to(tokens.dtype)
            camera = None
        for i, block in enumerate(self.dit.blocks[: cfg.n_pcb]):
            tokens = self._run(block, tokens, *self.dit.block_args(i, state, camera))

        geo_dtype = self.aggregator.camera_token.dtype
        patches = self.bridge(tokens, state.grid).to(geo_dtype)
        _, e0 = self.geo_time(tvec)
        g = self.aggregator.build_tokens(patches)  # [B·S, P, D]
        p, d = g.shape[1], g.shape[2]
        pos_frame = self.aggregator.positions(b * f, h, w, x.device)
        pos_global = pos_frame.reshape(b, f * p, 2)
        e0_frame = e0.repeat_interleave(f, dim=0)
        freqs_video, freqs_geo = bicross_rope(
            cfg.bicross_dim // cfg.bicross_heads, state.grid, cfg.num_special, x.device, cfg.dit.rope_theta
        )

        keep = self._kept_layers() if return_geometry else set()
        intermediates: list[torch.Tensor] = []
        for i, (frame_block, irg) in enumerate(zip(self.aggregator.frame_blocks, self.irg)):
            g = self._run(frame_block, g, pos_frame, e0_frame)
            frame_out = g
            block_state, block_camera = self.dit.block_args(cfg.n_pcb + i, state, camera)
            tokens, g_glob = self._run(
                irg,
                tokens,
                g.reshape(b, f * p, d),
                block_state,
                pos_global,
                e0,
                freqs_video,
                freqs_geo,
                block_camera,
            )
            g = g_glob.reshape(b * f, p, d)
            if i in keep:
                intermediates.append(torch.cat([frame_out.view(b, f, p, d), g_glob.view(b, f, p, d)], dim=-1))
            elif return_geometry:  # shape-only stand-in (zero strides, no memory) for a layer no head reads
                intermediates.append(g_glob.new_zeros(()).expand(b, f, p, 2 * d))

        velocity = self.dit.finalize(tokens, state)
        geometry = None
        if return_geometry:
            # the heads set the memory peak of a step: the store is rebuilt by the next forward instead
            state = block_state = block_camera = None
            self.dit.release_step_invariants()
            if image_hw is None:
                ph, pw = cfg.dit.patch_size[1:]
                image_hw = (h * ph * cfg.vae_stride[1], w * pw * cfg.vae_stride[2])
            geometry = self.decode_geometry(intermediates, (h, w), tuple(image_hw))
        return FantasyWorldOutput(velocity=velocity, geometry=geometry)

    def video_velocity(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        clip_fea: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        camera: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The Wan DiT alone (no geometry branch, no bicross) with this model's camera path and timestep
        rounding: the opt-in cheap negative pass of :class:`~fantasy_world.sampling.guidance.SequentialGuidance`."""
        if self.cfg.bf16_timestep:
            t = torch.as_tensor(t, device=x.device).to(torch.bfloat16).float()
        if not self.cfg.has_control:
            return self.dit(x, t, context, clip_fea=clip_fea, y=y, camera=camera)
        state = self.dit.embed(x, t, context, clip_fea=clip_fea, y=y)
        f, h, w = state.grid
        camera = self._check_camera(camera, x.shape[0], f * h * w)
        tokens = state.tokens if camera is None else state.tokens + camera.to(state.tokens.dtype)
        for i, block in enumerate(self.dit.blocks):
            tokens = block(tokens, *self.dit.block_args(i, state, None))
        return self.dit.finalize(tokens, state)

    def decode_geometry(
        self, intermediates: list[torch.Tensor], token_hw: tuple[int, int], image_hw: tuple[int, int]
    ) -> GeometryOutput:
        """Run the three heads on the per-layer intermediates [B, S, P, 2D]."""
        start = self.cfg.num_special
        depth, depth_conf = self.depth_head(intermediates, start, token_hw, image_hw)
        points, points_conf = self.point_head(intermediates, start, token_hw, image_hw)
        pose_enc = self.camera_head(intermediates)[-1]
        return GeometryOutput(
            depth=depth.squeeze(-1),
            depth_conf=depth_conf,
            world_points=points,
            world_points_conf=points_conf,
            pose_enc=pose_enc,
        )
