"""Flow-matching sampling (Wan / FantasyWorld scheduler)."""

from fantasy_world.sampling.flow_matching import (
    FlowMatchSchedule,
    apply_guidance,
    flow_match_schedule,
    seeded_noise,
)

__all__ = ["FlowMatchSchedule", "apply_guidance", "flow_match_schedule", "seeded_noise"]
