"""Text that reaches a client: server paths are reduced to their base names.

Library errors name files by full path (useful in a terminal); on a public page a path tells a
stranger where things live, so every status line goes through :func:`public_text`.
"""

from __future__ import annotations

import re

# Two or more absolute path segments (``/a/b``, ``/tmp/x/world.npz``), not preceded by a word
# character, so ratios such as "step 3/10" are left alone.
_PATH = re.compile(r"(?<![\w.])(?:/[^\s/'\"`:,;()\[\]{}<>|]+){2,}/?")


def public_text(text: str) -> str:
    """``text`` with every absolute server path replaced by its last component."""

    def base(match: re.Match[str]) -> str:
        parts = [p for p in match.group(0).split("/") if p]
        return parts[-1] if parts else ""

    return _PATH.sub(base, text)
