"""The main job: ``python src/search.py search=evolution_pareto hardware=snapdragon888 [overrides]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import hwnas  # noqa: F401  (first: keeps src/profile.py from shadowing the stdlib's profile)
from hwnas.utils.cli import guarded
from hwnas.utils.hydra_errors import suggest_fixes


@suggest_fixes
@hydra.main(version_base="1.3", config_path="../conf", config_name="search")
def main(cfg: DictConfig) -> float | None:
    from hwnas.tasks import search  # here, not above: a mistyped option is answered before torch loads

    summary = guarded(search.run, cfg)
    return float(summary["front_size"])


if __name__ == "__main__":
    main()
