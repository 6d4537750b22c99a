"""The main job: ``python src/search.py search=evolution_pareto hardware=snapdragon888 [overrides]``.

The same command as ``python -m hwnas search …`` (:mod:`hwnas.cli`), run from the checkout.
"""

from __future__ import annotations

import hwnas  # noqa: F401  (first: keeps src/profile.py from shadowing the stdlib's profile)
from hwnas.cli import search

if __name__ == "__main__":
    search()
