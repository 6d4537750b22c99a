"""The final stage on a finished search: ``python src/final.py run=outputs/search/<run> [final.top_k=...]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import hwnas  # noqa: F401  (first: keeps src/profile.py from shadowing the stdlib's profile)
from hwnas.tasks import final
from hwnas.utils.cli import guarded


@hydra.main(version_base="1.3", config_path="../conf", config_name="final")
def main(cfg: DictConfig) -> float | None:
    out = guarded(final.run, cfg)
    return float(out["front_size"])


if __name__ == "__main__":
    main()
