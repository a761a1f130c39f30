"""IRG block: one Wan block and one geometry global block coupled by the bidirectional cross-attention.

The Wan block is *the* block of the DiT (``dit.blocks[n_pcb + i]``), referenced rather than copied or
registered here: its weights exist once and keep their DiT key names, and a state dict of the model has
no duplicate entries. (The official code deep-copies the block into ``IRGBlock.i.x_dit``; the checkpoint
mapping translates those keys.) Step order, as in the official ``IRGBlock``: Wan self+cross attention and
geometry global attention, then bicross, then each branch's own feed-forward.
"""

from __future__ import annotations

import torch
from torch import nn

from fantasy_world.models.fantasy.bicross_attention import BiCrossAttention
from fantasy_world.models.fantasy.layers.geometry_block import GeometryBlock
from fantasy_world.models.wan.dit import WanBlock, WanState


class IRGBlock(nn.Module):
    """Owns ``x_agg`` (geometry global block) and ``bicross_attention``; borrows ``x_dit`` (a Wan block)."""

    def __init__(self, x_dit: WanBlock, x_agg: GeometryBlock, bicross_attention: BiCrossAttention) -> None:
        super().__init__()
        self.x_agg = x_agg
        self.bicross_attention = bicross_attention
        # A plain attribute, not a submodule: the DiT owns the block (its state-dict keys, .to(), .train()).
        # object.__setattr__ skips nn.Module's registration of module-valued attributes.
        self.x_dit: WanBlock
        object.__setattr__(self, "x_dit", x_dit)

    def forward(
        self,
        x: torch.Tensor,
        tokens: torch.Tensor,
        state: WanState,
        pos: torch.Tensor,
        e0: torch.Tensor,
        freqs_video: torch.Tensor,
        freqs_geo: torch.Tensor,
        camera: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, L, dim] video tokens, tokens [B, S·P, D] geometry tokens, pos [B, S·P, 2] -> both updated."""
        x_p, mod_dit = self.x_dit.attend(x, state, camera)
        g_p, mod_agg = self.x_agg.attend(tokens, pos, e0)
        x_f, g_f = self.bicross_attention(x_p, g_p, freqs_video, freqs_geo)
        x_out = self.x_dit.feed_forward(x_f, mod_dit)
        g_out = self.x_agg.feed_forward(g_f.to(tokens.dtype), mod_agg)
        return x_out, g_out
