"""Disjoint seed ranges for training and evaluation worlds, and the guard that keeps them apart.

A synthetic clip is a pure function of its seed, so held-out evaluation is only honest if training never
renders an evaluation seed. Training seeds are [0, 10⁹); evaluation seeds [2·10⁹, 2·10⁹ + 10⁶).
"""

from __future__ import annotations

from dataclasses import dataclass

from fantasy_world.errors import InputError


@dataclass(frozen=True)
class SeedRange:
    """Half-open range of integer seeds [start, stop)."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        if (
            not (isinstance(self.start, int) and isinstance(self.stop, int))
            or not 0 <= self.start < self.stop
        ):
            raise InputError(
                f"seed range [{self.start}, {self.stop}): expected integers with 0 <= start < stop"
            )

    def __len__(self) -> int:
        return self.stop - self.start

    def __contains__(self, seed: object) -> bool:
        return isinstance(seed, int) and self.start <= seed < self.stop

    def seed(self, index: int) -> int:
        """The ``index``-th seed of the range."""
        if not 0 <= index < len(self):
            raise InputError(f"sample index {index}: expected 0 to {len(self) - 1} for seeds {self}")
        return self.start + index

    def overlaps(self, other: SeedRange) -> bool:
        return self.start < other.stop and other.start < self.stop

    def sub(self, start: int, count: int) -> SeedRange:
        """``count`` seeds beginning ``start`` seeds into this range."""
        return SeedRange(self.seed(start), self.seed(start + count - 1) + 1)

    def __str__(self) -> str:
        return f"[{self.start}, {self.stop})"


TRAIN_SEEDS = SeedRange(0, 10**9)
EVAL_SEEDS = SeedRange(2 * 10**9, 2 * 10**9 + 10**6)
SPLITS: dict[str, SeedRange] = {"train": TRAIN_SEEDS, "eval": EVAL_SEEDS}


def split_seeds(split: str) -> SeedRange:
    """The seed range of a named split (``train`` or ``eval``)."""
    if split not in SPLITS:
        raise InputError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    return SPLITS[split]


def check_seeds(seeds: SeedRange, split: str) -> SeedRange:
    """Refuse a range that leaves its split; a training range may never touch evaluation seeds."""
    allowed = split_seeds(split)
    if split == "train" and seeds.overlaps(EVAL_SEEDS):
        raise InputError(f"training seeds {seeds} overlap the held-out evaluation seeds {EVAL_SEEDS}")
    if not (allowed.start <= seeds.start and seeds.stop <= allowed.stop):
        raise InputError(f"{split} seeds {seeds}: expected a range inside {allowed}")
    return seeds


def check_seed(seed: int, split: str) -> int:
    """Refuse a single seed outside its split (e.g. a training job asking for an evaluation world)."""
    if seed not in split_seeds(split):
        which = "a held-out evaluation seed" if seed in EVAL_SEEDS else "outside the split"
        raise InputError(f"seed {seed} for {split}: {which}; expected a seed in {split_seeds(split)}")
    return seed
