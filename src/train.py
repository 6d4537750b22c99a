"""Train one architecture: ``python src/train.py [arch=<json>] [dataset=...] [tricks=...]``.

The same command as ``python -m hwnas train …`` (:mod:`hwnas.cli`), run from the checkout.
"""

from __future__ import annotations

import hwnas  # noqa: F401  (first: keeps src/profile.py from shadowing the stdlib's profile)
from hwnas.cli import train

if __name__ == "__main__":
    train()
