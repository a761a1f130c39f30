"""Packaging beyond what pyproject.toml can say: the bundled tiny model becomes package data.

Why: in the repository the tiny model lives in ``checkpoints/fantasyworld-tiny/`` (with the other model
folders); an installed package has no checkout to find it in, so that folder is installed as the data
package ``fantasy_world.bundled_tiny`` and ``from_pretrained("tiny")`` loads it from there.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["fantasy_world", "fantasy_world.*", "app", "app.*"]),
        "fantasy_world.bundled_tiny",
    ],
    package_dir={"fantasy_world.bundled_tiny": "checkpoints/fantasyworld-tiny"},
    package_data={"fantasy_world.bundled_tiny": ["*.json", "*.safetensors", "*.md"]},
)
