"""Entry point for ``python -m fantasy_world``."""

import sys

from fantasy_world.cli import main

sys.exit(main())
