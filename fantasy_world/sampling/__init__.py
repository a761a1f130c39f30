"""Sampling: the flow-matching schedule, the Euler loop and how its guidance passes run.

``flow_matching`` has no model imports (training uses it alone); the loop, the guidance runners and the
step cache import the model classes, so they are imported from their modules.
"""

from fantasy_world.sampling.flow_matching import (
    FlowMatchSchedule,
    apply_guidance,
    flow_match_schedule,
    seeded_noise,
)

__all__ = ["FlowMatchSchedule", "apply_guidance", "flow_match_schedule", "seeded_noise"]
