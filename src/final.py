"""The final stage on a finished search: ``python src/final.py run=outputs/search/<run> [final.top_k=...]``.

The same command as ``python -m hwnas final …`` (:mod:`hwnas.cli`), run from the checkout.
"""

from __future__ import annotations

import hwnas  # noqa: F401  (first: keeps src/profile.py from shadowing the stdlib's profile)
from hwnas.cli import final

if __name__ == "__main__":
    final()
