"""Wan2.1 diffusion transformer (T2V and I2V), module names matching the public checkpoints.

The residual stream is kept in float32 and every sub-layer input is cast to its weight dtype, which is
what Wan's own ``autocast`` regions amount to: with float32 weights the maths is exactly Wan's, with
bf16 weights the linears run in bf16 while modulation, norms and residual sums stay in float32.

With bf16 weights and outside ``torch.compile`` (which fuses these itself) the element-wise steps take
fused forms: ``rms_norm`` for the q/k norms, one ``addcmul`` for each "norm * (1 + scale) + shift" (written
straight into bf16) and for each gated residual sum (the bf16 operand is promoted inside the kernel, not
copied to float32 first). Same float32 stream, fewer passes over memory, one rounding per step instead
of several: why, our eager forward was 9% slower than diffusers' on an H200 (bench/NOTES.md) because each
of these steps was 2-4 separate float32 passes. Float32 weights keep the exact, unfused expressions. On a
GPU at inference the feed-forward's first linear and its GELU are one GEMM, eager and compiled alike
(``linear_gelu.py``).

``forward`` is ``embed`` -> blocks -> ``finalize`` so that a wrapping model (FantasyWorld's IRG blocks)
can run the blocks, or the two halves of a block (``attend`` / ``feed_forward``), itself.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
from torch import nn

from fantasy_world.errors import InputError
from fantasy_world.models.wan import step_invariants as invariants
from fantasy_world.models.wan.attention import attention, self_attention
from fantasy_world.models.wan.config import WanDiTConfig
from fantasy_world.models.wan.linear_gelu import feed_forward
from fantasy_world.models.wan.norm_rope import norm_rope
from fantasy_world.models.wan.rope import wan_rope_freqs


def sinusoidal_embedding(dim: int, t: torch.Tensor) -> torch.Tensor:
    """Wan's timestep embedding [B, dim] = [cos, sin](t * 10000^(-j/half)), computed in float64."""
    half = dim // 2
    pos = t.to(torch.float64)
    angles = torch.outer(
        pos, torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    )
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


def _cast(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """Cast ``x`` to the dtype of ``module``'s weight (what an autocast region does for a linear)."""
    return x.to(module.weight.dtype)


class WanRMSNorm(nn.Module):
    """RMS norm over the whole feature dim (all heads together), normalised in float32."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.bfloat16 and self.weight.dtype == x.dtype:
            # one fused pass with float32 accumulation and a single rounding (float32 stays exact below)
            return nn.functional.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class WanLayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype; output keeps the input dtype."""

    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = False) -> None:
        super().__init__(dim, eps=eps, elementwise_affine=elementwise_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None:
            return nn.functional.layer_norm(x.float(), self.normalized_shape, None, None, self.eps).type_as(x)
        return nn.functional.layer_norm(
            x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps
        ).type_as(x)


class WanSelfAttention(nn.Module):
    """Self-attention with q/k RMS norm and 3-D RoPE."""

    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6, qk_norm: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.fp8_attention = False  # set by FP8 mode (quant/selection.py)

    def forward(self, x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[:2]
        x = _cast(x, self.q)
        q = norm_rope(self.q(x), self.norm_q, freqs, self.num_heads)
        k = norm_rope(self.k(x), self.norm_k, freqs, self.num_heads)
        v = self.v(x).view(b, s, self.num_heads, self.head_dim)
        out = self_attention(q, k, v, self.fp8_attention)
        return self.o(out.flatten(2))


class CrossKV(NamedTuple):
    """One block's cross-attention keys and values [B, Lc, heads, head_dim] for one context (``*_img``:
    the CLIP image tokens of I2V, else None). They depend only on the prompt and start image."""

    k: torch.Tensor
    v: torch.Tensor
    k_img: torch.Tensor | None
    v_img: torch.Tensor | None


class WanCrossAttention(nn.Module):
    """Cross-attention to text (and, for I2V, the first ``clip_tokens`` context tokens via ``*_img``).

    ``camera_adapter`` (None by default, so no state-dict keys) is FantasyWorld's hook: when set and a
    camera tensor is given, ``out += camera_adapter(out, camera)`` right before the output projection.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        eps: float = 1e-6,
        qk_norm: bool = True,
        image_input: bool = False,
        clip_tokens: int = 257,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.image_input = image_input
        self.clip_tokens = clip_tokens
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        if image_input:
            self.k_img = nn.Linear(dim, dim)
            self.v_img = nn.Linear(dim, dim)
            self.norm_k_img = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.camera_adapter: nn.Module | None
        self.register_module("camera_adapter", None)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim)

    def context_kv(self, context: torch.Tensor) -> CrossKV:
        """Keys and values of the embedded context [B, Lc', dim] (image tokens first for I2V)."""
        context = _cast(context, self.k)
        k_img = v_img = None
        if self.image_input:
            context_img, context = context[:, : self.clip_tokens], context[:, self.clip_tokens :]
            k_img = self._heads(self.norm_k_img(self.k_img(context_img)))
            v_img = self._heads(self.v_img(context_img))
        return CrossKV(self._heads(self.norm_k(self.k(context))), self._heads(self.v(context)), k_img, v_img)

    def forward(self, x: torch.Tensor, context: torch.Tensor | CrossKV, camera: Any = None) -> torch.Tensor:
        """``context``: the embedded context, or its :meth:`context_kv` computed earlier (the same maths).
        ``camera``: features for the camera adapter (ignored without one), raw or projected."""
        x = _cast(x, self.q)
        kv = context if isinstance(context, CrossKV) else self.context_kv(context)
        q = self._heads(self.norm_q(self.q(x)))
        out = attention(q, kv.k, kv.v).flatten(2)
        if kv.k_img is not None:
            out = out + attention(q, kv.k_img, kv.v_img).flatten(2)
        if self.camera_adapter is not None and camera is not None:
            out = out + self.camera_adapter(out, camera).to(out.dtype)
        return self.o(out)


@dataclass
class WanState:
    """Everything the blocks and the head need, produced once per forward by ``WanDiT.embed``."""

    tokens: torch.Tensor  # [B, L, dim] float32 video tokens after patchify
    grid: tuple[int, int, int]  # (f, h, w) token grid
    e: torch.Tensor  # [B, dim] float32 time embedding (for the head)
    t_mod: torch.Tensor  # [B, 6, dim] float32 block modulation
    context: torch.Tensor | CrossKV  # [B, Lc', dim] embedded context, image tokens first for I2V
    freqs: torch.Tensor  # [L, head_dim//2] complex64 RoPE table
    # inside a step_invariants scope: the store entry of this context (per-block keys and values)
    reuse: invariants.Entry | None = None


@dataclass
class FfnModulation:
    """Shift, scale and gate of a block's feed-forward, handed from ``attend`` to ``feed_forward``."""

    shift: torch.Tensor
    scale: torch.Tensor
    gate: torch.Tensor


class WanBlock(nn.Module):
    """One Wan2.1 attention block: modulated self-attn, cross-attn, modulated FFN."""

    def __init__(self, cfg: WanDiTConfig) -> None:
        super().__init__()
        dim = cfg.dim
        self.norm1 = WanLayerNorm(dim, cfg.eps)
        self.self_attn = WanSelfAttention(dim, cfg.num_heads, cfg.eps, cfg.qk_norm)
        self.norm3 = (
            WanLayerNorm(dim, cfg.eps, elementwise_affine=True) if cfg.cross_attn_norm else nn.Identity()
        )
        self.cross_attn = WanCrossAttention(
            dim, cfg.num_heads, cfg.eps, cfg.qk_norm, cfg.image_input, cfg.clip_tokens
        )
        self.norm2 = WanLayerNorm(dim, cfg.eps)
        self.ffn = nn.Sequential(
            nn.Linear(dim, cfg.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.ffn_dim, dim)
        )
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def attend(
        self, x: torch.Tensor, state: WanState, camera: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, FfnModulation]:
        """Self-attention and cross-attention with their residuals; returns the FFN modulators too."""
        e = (self.modulation.float() + state.t_mod.float()).chunk(6, dim=1)
        mod = FfnModulation(shift=e[3], scale=e[4], gate=e[5])
        x = x.float()
        if _fused(self.ffn[0]):
            y = self.self_attn(_modulate(self.norm1(x), e[0], e[1], self.self_attn.q), state.freqs)
            x = torch.addcmul(x, y, e[2])
            return x + self.cross_attn(self.norm3(x), state.context, camera), mod
        y = self.self_attn(self.norm1(x) * (1 + e[1]) + e[0], state.freqs)
        x = x + y.float() * e[2]
        x = x + self.cross_attn(self.norm3(x), state.context, camera).float()
        return x, mod

    def feed_forward(self, x: torch.Tensor, mod: FfnModulation) -> torch.Tensor:
        """Modulated, gated feed-forward with its residual."""
        x = x.float()
        if _fused(self.ffn[0]):
            y = feed_forward(self.ffn, _modulate(self.norm2(x), mod.shift, mod.scale, self.ffn[0]))
            return torch.addcmul(x, y, mod.gate)
        y = feed_forward(self.ffn, _cast(self.norm2(x) * (1 + mod.scale) + mod.shift, self.ffn[0]))
        return x + y.float() * mod.gate

    def forward(self, x: torch.Tensor, state: WanState, camera: torch.Tensor | None = None) -> torch.Tensor:
        return self.feed_forward(*self.attend(x, state, camera))


# The residual stream is stored token by token (row-major [B, L, dim]). The patch embedding's output,
# flattened and transposed, is channel-major (stride 1 along the tokens), and every op after it kept that
# layout: each norm over ``dim`` then read memory with a stride of L. In the compiled 14B block the norm
# kernels took 0.43-0.63 ms where the same expressions on row-major tensors take 0.16-0.26 ms (H200,
# ``bench/results/issue12_h200_2026-12-03_s4_*``). Row-major tokens fix every block (the compiled 14B forward
# 0.983 -> 0.958 s); the patch embedding now writes them in that order itself (``_patch_tokens``).
# A list so that benchmarks can measure the old layout (``set_row_major_tokens``; reset dynamo after it).
_row_major_tokens: list[bool] = [True]


def set_row_major_tokens(on: bool) -> None:
    """Store the token stream row-major (default) or in the patch embedding's layout (for benchmarks)."""
    _row_major_tokens[0] = bool(on)


def _patch_tokens(conv: nn.Conv3d, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """The patch embedding as one GEMM over the flattened patches: float32 tokens [B, L, dim], row-major.

    Why: the Conv3d's stride equals its kernel, so it is a linear map of each patch. cuDNN computed it in
    channels-last order, converted that to [B, dim, F, H, W], added the bias in a pass of its own, and the
    token stream then needed a transposing copy: ~1.1 ms of passes per 14B forward on an H200 (kernel
    profile, ``bench/step_parts.py --only profile``). The GEMM writes the tokens in order with the bias in
    its epilogue; only the (small) latents are permuted.
    """
    b, c, f, h, w = x.shape
    pt, ph, pw = conv.kernel_size
    grid = (f // pt, h // ph, w // pw)
    patches = x.view(b, c, grid[0], pt, grid[1], ph, grid[2], pw).permute(0, 2, 4, 6, 1, 3, 5, 7)
    patches = patches.reshape(b, grid[0] * grid[1] * grid[2], c * pt * ph * pw)
    tokens = nn.functional.linear(patches, conv.weight.reshape(conv.out_channels, -1), conv.bias)
    return tokens.float(), grid


def _fused(layer: nn.Linear) -> bool:
    """Take the fused element-wise forms: bf16 weights, eager (inductor fuses the plain forms itself)."""
    return layer.weight.dtype == torch.bfloat16 and not torch.compiler.is_compiling()


def _modulate(
    normed: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, layer: nn.Linear
) -> torch.Tensor:
    """``normed * (1 + scale) + shift`` in float32, rounded once into ``layer``'s weight dtype.

    On CUDA the kernel casts as it stores (one pass); PyTorch's CPU kernels take a slow scalar path for
    a cast-on-store, so there the bf16 copy is a second pass.
    """
    if normed.device.type == "cuda":
        out = torch.empty(normed.shape, dtype=layer.weight.dtype, device=normed.device)
        return torch.addcmul(shift, normed, 1 + scale, out=out)
    return torch.addcmul(shift, normed, 1 + scale).to(layer.weight.dtype)


class WanHead(nn.Module):
    """Output head: modulated LayerNorm and a linear to ``prod(patch) * out_dim`` channels per token."""

    def __init__(self, dim: int, out_dim: int, patch_size: tuple[int, int, int], eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = WanLayerNorm(dim, eps)
        self.head = nn.Linear(dim, math.prod(patch_size) * out_dim)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.modulation.float() + e.float().unsqueeze(1)).chunk(2, dim=1)
        if _fused(self.head):  # one pass into bf16 instead of a multiply, an add and a cast (~1 ms, 14B)
            return self.head(_modulate(self.norm(x.float()), shift, scale, self.head)).float()
        return self.head(_cast(self.norm(x.float()) * (1 + scale) + shift, self.head)).float()


class WanImageEmbedding(nn.Module):
    """CLIP image tokens -> model width (``img_emb.proj``: LN, Linear, GELU, Linear, LN)."""

    def __init__(self, clip_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.LayerNorm(clip_dim),
            nn.Linear(clip_dim, clip_dim),
            nn.GELU(),
            nn.Linear(clip_dim, dim),
            nn.LayerNorm(dim),
        )

    def forward(self, clip_fea: torch.Tensor) -> torch.Tensor:
        return self.proj(_cast(clip_fea, self.proj[1]))


class WanDiT(nn.Module):
    """The Wan2.1 DiT. ``forward(x, t, context, clip_fea, y, camera)`` -> predicted flow [B, out_dim, F, H, W]."""

    def __init__(self, cfg: WanDiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.dim
        self.patch_embedding = nn.Conv3d(cfg.in_dim, dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.text_embedding = nn.Sequential(
            nn.Linear(cfg.text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim)
        )
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 6))
        self.blocks = nn.ModuleList(WanBlock(cfg) for _ in range(cfg.num_layers))
        self.head = WanHead(dim, cfg.out_dim, cfg.patch_size, cfg.eps)
        if cfg.image_input:
            self.img_emb = WanImageEmbedding(cfg.clip_dim, dim)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Wan's initialisation: xavier linears, normal(0.02) embeddings, zero output head."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.patch_embedding.weight.flatten(1))
        nn.init.zeros_(self.patch_embedding.bias)
        for seq in (self.text_embedding, self.time_embedding):
            for module in seq:
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=0.02)
        nn.init.zeros_(self.head.head.weight)

    def _check_inputs(
        self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, clip_fea: torch.Tensor | None
    ) -> None:
        cfg = self.cfg
        if x.ndim != 5 or x.shape[1] != cfg.in_dim:
            raise InputError(f"DiT input latents shape {tuple(x.shape)}: expected [B, {cfg.in_dim}, F, H, W]")
        bad = [s for s, p in zip(x.shape[2:], cfg.patch_size) if s % p]
        if bad:
            raise InputError(
                f"DiT latent grid {tuple(x.shape[2:])}: expected multiples of patch {cfg.patch_size}"
            )
        if t.shape != (x.shape[0],):
            raise InputError(f"DiT timesteps shape {tuple(t.shape)}: expected [{x.shape[0]}]")
        if context.ndim != 3 or context.shape[0] != x.shape[0] or context.shape[2] != cfg.text_dim:
            raise InputError(
                f"DiT text context shape {tuple(context.shape)}: expected [B, <= {cfg.text_len}, {cfg.text_dim}]"
            )
        if context.shape[1] > cfg.text_len:
            raise InputError(
                f"DiT text context has {context.shape[1]} tokens: expected at most {cfg.text_len}"
            )
        if cfg.image_input:
            want = (x.shape[0], cfg.clip_tokens, cfg.clip_dim)
            if clip_fea is None or tuple(clip_fea.shape) != want:
                got = None if clip_fea is None else tuple(clip_fea.shape)
                raise InputError(f"I2V DiT clip_fea shape {got}: expected {want}")
        elif clip_fea is not None:
            raise InputError(
                "clip_fea given to a text-to-video DiT: expected None (config has image_input=False)"
            )

    def embed(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        clip_fea: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
    ) -> WanState:
        """Patchify latents, embed time and context, build RoPE: the state the blocks consume."""
        cfg = self.cfg
        if y is not None:
            if y.ndim != 5 or x.ndim != 5 or y.shape[0] != x.shape[0] or y.shape[2:] != x.shape[2:]:
                raise InputError(
                    f"DiT conditioning y shape {tuple(y.shape)}: expected [B, C, F, H, W] like x {tuple(x.shape)}"
                )
            x = torch.cat([x, y.to(x.dtype)], dim=1)
        elif cfg.image_input and x.ndim == 5 and x.shape[1] == cfg.out_dim:
            raise InputError(
                f"I2V DiT got {cfg.out_dim}-channel latents and no y: expected y with {cfg.in_dim - cfg.out_dim} channels"
            )
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        self._check_inputs(x, t, context, clip_fea)

        conv = self.patch_embedding
        if _row_major_tokens[0] and not (conv._forward_hooks or conv._forward_pre_hooks):
            tokens, grid = _patch_tokens(conv, _cast(x, conv))
        else:  # the module itself: its hooks see its output; channel-major for the benchmarks' "before" row
            tokens = conv(_cast(x, conv))
            grid = (tokens.shape[2], tokens.shape[3], tokens.shape[4])
            tokens = tokens.flatten(2).transpose(1, 2)
            if _row_major_tokens[0]:  # one copy: the cast to float32 and the row-major order together
                tokens = tokens.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
            else:
                tokens = tokens.float()

        sin = sinusoidal_embedding(cfg.freq_dim, t).float()
        e = _linear_f32(self.time_embedding[2], nn.functional.silu(_linear_f32(self.time_embedding[0], sin)))
        t_mod = _linear_f32(self.time_projection[1], nn.functional.silu(e)).unflatten(1, (6, cfg.dim))

        store = invariants.active(self)
        if store is None:
            ctx, reuse = self._embed_context(context, clip_fea), None
        else:
            reuse = store.entry(
                "context", (context, clip_fea), lambda: self._embed_context(context, clip_fea)
            )
            ctx = reuse.value
        freqs = wan_rope_freqs(cfg.head_dim, grid, tokens.device, cfg.rope_theta)
        return WanState(tokens=tokens, grid=grid, e=e, t_mod=t_mod, context=ctx, freqs=freqs, reuse=reuse)

    def _embed_context(self, context: torch.Tensor, clip_fea: torch.Tensor | None) -> torch.Tensor:
        """Text features zero-padded to ``text_len`` and embedded; CLIP image tokens first for I2V."""
        cfg = self.cfg
        pad = cfg.text_len - context.shape[1]
        if pad:
            context = torch.cat([context, context.new_zeros(context.shape[0], pad, context.shape[2])], dim=1)
        ctx = self.text_embedding(_cast(context, self.text_embedding[0]))
        if cfg.image_input:
            ctx = torch.cat([self.img_emb(clip_fea).to(ctx.dtype), ctx], dim=1)
        return ctx

    def step_invariants(self) -> contextlib.AbstractContextManager[invariants.StepInvariants]:
        """A scope (one generation) in which forwards reuse the context keys/values and camera
        projections an earlier forward built for the same tensors: see :mod:`.step_invariants`."""
        return invariants.step_invariants(self)

    def release_step_invariants(self) -> None:
        """Empty the open scope's store (the next forward rebuilds what it needs): frees its memory
        before a memory-hungry phase such as the geometry heads."""
        store = invariants.active(self)
        if store is not None:
            store.clear()

    def camera_features(self, camera: torch.Tensor | None) -> torch.Tensor | None:
        """:func:`camera_or_none`; inside a scope its answer for a camera tensor is kept, so the host
        sync of its check happens once per generation instead of once per forward."""
        store = invariants.active(self)
        if store is None or camera is None:
            return camera_or_none(camera)
        return _camera_entry(store, camera).value

    def block_args(self, i: int, state: WanState, camera: Any) -> tuple[WanState, Any]:
        """``(state, camera)`` as block ``i`` takes them. Inside a scope, with the block's context keys and
        values and its camera adapter's projection of the camera from the store (built on first use).
        The camera projection is kept for a batch of one only (a batch of two would double its memory)."""
        reuse = state.reuse
        block = self.blocks[i]
        if reuse is None or block.cross_attn.k.weight.device != state.tokens.device:
            return state, camera  # no scope, or a swapped-out block (offload): it computes its own
        kv = reuse.per_block.get(i)
        if kv is None:
            kv = reuse.per_block[i] = block.cross_attn.context_kv(state.context)
        adapter = block.cross_attn.camera_adapter
        store = invariants.active(self)
        if (
            adapter is not None
            and isinstance(camera, torch.Tensor)
            and camera.shape[0] == 1
            and store is not None
        ):
            projected = _camera_entry(store, camera).per_block
            if i not in projected:
                projected[i] = adapter.project(camera)
            camera = projected[i]
        return replace(state, context=kv, reuse=None), camera

    def finalize(self, tokens: torch.Tensor, state: WanState) -> torch.Tensor:
        """Output head and unpatchify: tokens [B, L, dim] -> float32 [B, out_dim, F, H, W]."""
        out = self.head(tokens, state.e)
        f, h, w = state.grid
        pt, ph, pw = self.cfg.patch_size
        c = self.cfg.out_dim
        out = out.view(out.shape[0], f, h, w, pt, ph, pw, c)
        out = torch.einsum("bfhwpqrc->bcfphqwr", out)
        return out.reshape(out.shape[0], c, f * pt, h * ph, w * pw)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        clip_fea: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        camera: torch.Tensor | None = None,
    ) -> torch.Tensor:
        state = self.embed(x, t, context, clip_fea=clip_fea, y=y)
        camera = self.camera_features(camera)
        tokens = state.tokens
        for i, block in enumerate(self.blocks):
            tokens = block(tokens, *self.block_args(i, state, camera))
        return self.finalize(tokens, state)


def camera_or_none(camera: torch.Tensor | None) -> torch.Tensor | None:
    """None for no camera or all-zero camera features (the adapters then add nothing), else ``camera``.

    Called once per model forward, outside the blocks that ``torch.compile`` wraps, so the blocks get a
    Python-level choice instead of a data-dependent branch.
    """
    if camera is None or not bool(camera.detach().any()):
        return None
    return camera


def _camera_entry(store: invariants.StepInvariants, camera: torch.Tensor) -> invariants.Entry:
    """The store's entry for a camera tensor: its :func:`camera_or_none` answer and per-block projections."""
    return store.entry("camera", (camera,), lambda: camera_or_none(camera))


def _linear_f32(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """A linear evaluated in float32 regardless of the stored dtype (Wan's time path is float32)."""
    return nn.functional.linear(x.float(), layer.weight.float(), layer.bias.float())
