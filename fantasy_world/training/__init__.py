"""Training of the FantasyWorld family: VAE, base text-to-video DiT, geometry stages 1 and 2.

Entry points: :class:`fantasy_world.training.trainer.Trainer` for one task, and
:class:`fantasy_world.training.recipe.Recipe` for the tiny model's whole recipe. See
``fantasy_world/training/README.md`` for the recipe, the losses and the checkpoint layout.
"""
