"""Regional ``torch.compile``: compile the repeated blocks, not the whole model.

Why: the blocks are where the time goes, and inductor fuses their norms, modulation, RoPE, gating and
residual casts into a few kernels around the matmuls and attention. Compiling each block instance in
place (``module.compile``) lets PyTorch reuse one compiled graph for all instances of a block class
(parameters are graph inputs), so compile time is that of a handful of graphs, not of 30-70 blocks.
Block swapping and compilation do not combine (the swap hooks re-point parameters between devices
outside the graph, and every re-pointing would be a new graph input layout). The rule: block swapping
wins. :func:`fantasy_world.accel.offload.enable_block_swap` undoes the compilation of a compiled model
(with a logged warning), and :func:`compile_blocks` refuses a model that has block swapping attached.
"""

from __future__ import annotations

import logging

from torch import nn

from fantasy_world.errors import InputError

log = logging.getLogger(__name__)

SWAP_ATTR = "_fw_block_swap"  # set on a model by enable_block_swap while its hooks are attached


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
    if getattr(model, SWAP_ATTR, None) is not None:
        raise InputError(
            "compile: this model has block swapping attached; block swapping and compilation do not "
            "combine (use compile=False, or remove the block swap first)"
        )
    targets = compile_targets(model)
    for module in targets:
        module.compile(**options)
    return len(targets)


def compiled_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks of ``model`` that are compiled in place (``nn.Module.compile``)."""
    try:
        targets = compile_targets(model)
    except TypeError:
        return []
    return [m for m in targets if getattr(m, "_compiled_call_impl", None) is not None]


def uncompile_blocks(model: nn.Module) -> int:
    """Undo :func:`compile_blocks`: the blocks run eagerly again; returns how many were compiled."""
    blocks = compiled_blocks(model)
    for module in blocks:
        module._compiled_call_impl = None  # what nn.Module.compile set
    return len(blocks)
