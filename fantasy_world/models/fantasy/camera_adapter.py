"""Camera adapters in the DiT cross-attention (official ``CrossAttentionAdapterProcessor``, "adaln").

After a block's text (+image) cross-attention and before its output projection ``o``, the adapter adds a
per-token shift computed from the attention output and the camera features. The last layer of
``v_proj`` starts at zero, so an untrained adapter adds exactly nothing; camera features that are all
zero (no camera given) skip the adapters, as in the official processor — decided once per forward by
``camera_or_none`` (``models/wan/dit.py``) before the blocks run. We install adapters as
``cross_attn.camera_adapter`` of the configured DiT blocks; the official key is ``cross_attn.processor``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fantasy_world.errors import InputError


def padded_width(n: int, multiple: int = 16) -> int:
    """``n`` rounded up to a multiple of 16: the width the value adapter's GEMMs run at."""
    return n + (-n % multiple)


class ProjectedCamera(NamedTuple):
    """One adapter's ``k_proj.group1(camera)`` [B, L, context_dim]: it depends only on the camera path,
    so a generation computes it once (``WanDiT.block_args``) instead of in each of its 100 forwards."""

    value: torch.Tensor


class GroupLinearDualK(nn.Module):
    """``group1`` on the camera features plus ``group2`` (Linear, ReLU, Linear) on the attention output."""

    def __init__(self, context_dim: int, hidden_dim: int, inner_dim: int) -> None:
        super().__init__()
        self.group1 = nn.Linear(context_dim, context_dim)
        self.group2 = nn.Sequential(
            nn.Linear(hidden_dim, inner_dim), nn.ReLU(), nn.Linear(inner_dim, context_dim)
        )

    def forward(self, camera: torch.Tensor | ProjectedCamera, x: torch.Tensor) -> torch.Tensor:
        projected = camera.value if isinstance(camera, ProjectedCamera) else self.group1(camera)
        return self.group2(x) + projected


class GroupLinearDualV(nn.Module):
    """``group2`` (Linear, ReLU, Linear) to the block width; the last layer is zero-initialised.

    The official inner width 2048 // 5 = 409 is not a multiple of 8, which sends both GEMMs to slow
    unaligned kernels on a GPU (10 ms per 14B forward on an H200, kernel profile of issue 12). The forward
    therefore zero-pads the inner width to a multiple of 16: the extra hidden units are ReLU(0) = 0 and meet
    zero weights, so the result is the same up to summation order, and the stored weights keep their
    official shapes.
    """

    def __init__(self, context_dim: int, hidden_dim: int, inner_dim: int) -> None:
        super().__init__()
        self.group2 = nn.Sequential(
            nn.Linear(context_dim, inner_dim), nn.ReLU(), nn.Linear(inner_dim, hidden_dim)
        )
        nn.init.zeros_(self.group2[2].weight)
        nn.init.zeros_(self.group2[2].bias)

    def forward(self, combined: torch.Tensor) -> torch.Tensor:
        first, _, last = self.group2
        pad = padded_width(first.out_features) - first.out_features
        if pad == 0:
            return self.group2(combined)
        hidden = F.relu(
            F.linear(
                combined,
                F.pad(first.weight, (0, 0, 0, pad)),
                None if first.bias is None else F.pad(first.bias, (0, pad)),
            )
        )
        return F.linear(hidden, F.pad(last.weight, (0, pad)), last.bias)


class CameraAdapter(nn.Module):
    """Additive camera shift for one DiT block: ``shift = v_proj(k_proj(camera, out))``."""

    def __init__(self, hidden_dim: int, context_dim: int, k_inner: int, v_inner: int) -> None:
        super().__init__()
        self.context_dim = context_dim
        self.k_proj = GroupLinearDualK(context_dim, hidden_dim, k_inner)
        self.v_proj = GroupLinearDualV(context_dim, hidden_dim, v_inner)

    def forward(self, out: torch.Tensor, camera: torch.Tensor | ProjectedCamera) -> torch.Tensor:
        """out [B, L, dim] cross-attention result, camera [B, L, context_dim] (or its :meth:`project`)
        -> shift broadcastable to out."""
        features = camera.value if isinstance(camera, ProjectedCamera) else camera
        if features.shape[:2] != out.shape[:2] or features.shape[-1] != self.context_dim:
            raise InputError(
                f"camera features {tuple(features.shape)}: expected [{out.shape[0]}, {out.shape[1]}, "
                f"{self.context_dim}] (one feature per video token)"
            )
        dtype = self.k_proj.group1.weight.dtype
        if not isinstance(camera, ProjectedCamera):
            camera = camera.to(dtype)
        return self.v_proj(self.k_proj(camera, out.to(dtype)))

    def project(self, camera: torch.Tensor) -> ProjectedCamera:
        """The part of this adapter that sees only the camera features (reused across steps)."""
        return ProjectedCamera(self.k_proj.group1(camera.to(self.k_proj.group1.weight.dtype)))


def install_camera_adapters(
    blocks: nn.ModuleList, block_ids: range, context_dim: int, k_inner: int, v_inner: int
) -> None:
    """Give DiT blocks ``block_ids`` a fresh camera adapter each (replacing any existing one)."""
    for j in block_ids:
        if not 0 <= j < len(blocks):
            raise InputError(f"camera adapter block {j}: expected an index below {len(blocks)}")
        cross = blocks[j].cross_attn
        hidden = cross.o.in_features
        cross.camera_adapter = CameraAdapter(hidden, context_dim, k_inner, v_inner)
