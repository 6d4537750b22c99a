"""Train one architecture: ``python src/train.py [arch=<json>] [dataset=...] [tricks=...]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import hwnas  # noqa: F401  (first: keeps src/profile.py from shadowing the stdlib's profile)
from hwnas.utils.cli import guarded
from hwnas.utils.hydra_errors import suggest_fixes


@suggest_fixes
@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from hwnas.tasks import train  # here, not above: a mistyped option is answered before torch loads

    metrics = guarded(train.run, cfg)
    return metrics.get("val/miou")


if __name__ == "__main__":
    main()
