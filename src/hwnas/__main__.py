"""``python -m hwnas search|final|train|profile [Hydra overrides]`` (see :mod:`hwnas.cli`)."""

import sys

from hwnas.cli import main

sys.exit(main())
