"""Transformer layers of the geometry branch."""

from .attention import Attention
from .geometry_block import GeometryBlock, Modulators
from .layer_scale import LayerScale
from .mlp import Mlp
from .rope2d import apply_rope_2d, patch_positions

__all__ = [
    "Attention",
    "GeometryBlock",
    "LayerScale",
    "Mlp",
    "Modulators",
    "apply_rope_2d",
    "patch_positions",
]
