"""Evaluation of a FantasyWorld model: reconstruction, generation and VAE metrics on held-out worlds.

``python -m fantasy_world eval --suite synthetic --json out.json`` runs
:func:`fantasy_world.evaluation.suite.run_synthetic_suite`; the metric functions live in
:mod:`~fantasy_world.evaluation.metrics` (depth, cameras, trajectories, PSNR),
:mod:`~fantasy_world.evaluation.consistency` (multi-view reprojection) and
:mod:`~fantasy_world.evaluation.prompt` (colour-based prompt adherence with the data attribute checker).
"""
