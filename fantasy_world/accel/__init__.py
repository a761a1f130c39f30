"""Opt-in runtime speed-ups: regional compilation, block swapping, several GPUs, and one call to apply them.

Nothing here changes what the models compute unless its docstring says so; each tool is tested against
the plain path. The guidance runners and the step cache live with the sampler (``fantasy_world.sampling``);
the benchmark harness that measures all of this is in the repository's ``bench/`` folder.
"""
