"""hwnas: hardware-aware neural architecture search."""

from __future__ import annotations

import os
import sys

__version__ = "0.1.0"


def _unshadow_stdlib_profile() -> None:
    """Keep ``src/profile.py`` from shadowing the standard library's ``profile`` module.

    Running ``python src/<entry>.py`` puts ``src/`` first on ``sys.path``; ``import cProfile`` (done by
    torch) would then import our ``profile.py`` script instead of the stdlib module and crash. hwnas is
    pip-installed, so the entry points do not need ``src/`` on the path. Entry points import ``hwnas``
    before anything that imports torch.
    """
    if not sys.path or not sys.argv or not sys.argv[0]:
        return
    script_dir = os.path.dirname(os.path.abspath(sys.argv[0]))
    first = os.path.abspath(sys.path[0] or ".")
    if first == script_dir and os.path.isfile(os.path.join(script_dir, "profile.py")):
        sys.path.pop(0)


_unshadow_stdlib_profile()
