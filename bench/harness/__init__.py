"""The GPU benchmark harness: sections, timing, FLOP counts, seeded weights, the diffusers reference, results.

Lives outside the package because nothing in a generation needs it; ``python -m fantasy_world bench``
finds it in a repository checkout.
"""

# Benchmark sections in priority order (defined here so the CLI can list them without importing torch).
DEFAULT_SECTIONS: tuple[str, ...] = ("ceiling", "wan13", "fw13", "generate", "i2v14", "offload", "compile")
# Issue 12 (bench/harness/like_for_like.py): like-for-like forwards, the 14B video end to end, the tiny model;
# attention kernels (attn) and a kernel profile of the compiled 14B forward (profile14,
# bench/harness/attention_table.py); "fp8" runs after them when asked for (--fp8). "issue12" selects them.
ISSUE12_SECTIONS: tuple[str, ...] = ("attn", "l4l13", "l4l14", "profile14", "e2e14", "tinyworld")
ALL_SECTIONS: tuple[str, ...] = DEFAULT_SECTIONS + ISSUE12_SECTIONS + ("fp8",)
