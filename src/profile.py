"""Profile one architecture on one hardware target: ``python src/profile.py hardware=cpu [arch=<json>]``.

The same command as ``python -m hwnas profile …`` (:mod:`hwnas.cli`), run from the checkout.
"""

from __future__ import annotations

import hwnas  # noqa: F401  (first: keeps src/profile.py from shadowing the stdlib's profile)
from hwnas.cli import profile

if __name__ == "__main__":
    profile()
