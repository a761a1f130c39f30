"""GPU performance tools: FLOP counts, timing, regional compilation, guidance batching/parallelism,
block swapping, sequence parallelism and the benchmark suite behind ``python -m fantasy_world bench``.

Nothing here changes what the models compute; each tool is opt-in and tested against the plain path.
"""

# Benchmark sections in priority order (defined here so the CLI can list them without importing torch).
ALL_SECTIONS: tuple[str, ...] = ("ceiling", "wan13", "fw13", "generate", "i2v14", "offload", "compile")
