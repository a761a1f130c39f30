"""Regional ``torch.compile``: compile the repeated blocks, not the whole model.

Why: the blocks are where the time goes, and inductor fuses their norms, modulation, RoPE, gating and
residual casts into a few kernels around the matmuls and attention. Compiling each block instance in
place (``module.compile``) lets PyTorch reuse one compiled graph for all instances of a block class
(parameters are graph inputs), so compile time is that of a handful of graphs, not of 30-70 blocks.
Do not combine with block swapping: its hooks move parameters between devices outside the graph.
"""

from __future__ import annotations

from torch import nn


def compile_targets(model: nn.Module) -> list[nn.Module]:
    """The repeated modules of a WanDiT or FantasyWorldModel, in no particular order."""
    if hasattr(model, "irg"):  # FantasyWorldModel
        targets: list[nn.Module] = list(model.dit.blocks)
        targets += list(getattr(model.bridge, "layers", []))
        targets += list(model.aggregator.frame_blocks) + list(model.irg)
        return targets
    if hasattr(model, "blocks"):
        return list(model.blocks)
    raise TypeError(f"{type(model).__name__}: expected a WanDiT or FantasyWorldModel")


def compile_blocks(model: nn.Module, **options: object) -> int:
    """Compile every repeated block of ``model`` in place; returns how many modules were wrapped.

    ``options`` go to ``torch.compile`` (e.g. ``mode="max-autotune-no-cudagraphs"``, ``fullgraph=True``).
    The first forward pays the compilation.
    """
    targets = compile_targets(model)
    for module in targets:
        module.compile(**options)
    return len(targets)
