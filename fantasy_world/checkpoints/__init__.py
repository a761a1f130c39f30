"""Reading weight files safely and loading them into models with a precise report."""

from fantasy_world.checkpoints.io import (
    LoadReport,
    load_into_model,
    read_state_dict,
    save_state_dict,
)

__all__ = ["LoadReport", "load_into_model", "read_state_dict", "save_state_dict"]
