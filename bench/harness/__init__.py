"""The GPU benchmark harness: sections, timing, FLOP counts, seeded weights, the diffusers reference, results.

Lives outside the package because nothing in a generation needs it; ``python -m fantasy_world bench``
finds it in a repository checkout.
"""

# Benchmark sections in priority order (defined here so the CLI can list them without importing torch).
ALL_SECTIONS: tuple[str, ...] = ("ceiling", "wan13", "fw13", "generate", "i2v14", "offload", "compile")
