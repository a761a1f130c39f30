"""Benchmarks and repository tooling (not installed with the package): ``bench/harness`` is the GPU suite
behind ``python -m fantasy_world bench``; the scripts beside it print tables and write JSON rows."""
