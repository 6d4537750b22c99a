"""Profile one architecture on one hardware target: ``python src/profile.py hardware=cpu [arch=<json>]``.

Writes ``<run dir>/latency.json``; see ``hwnas.tasks.profile.run``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import hwnas  # noqa: F401  (first: keeps this file from shadowing the stdlib's profile module)
from hwnas.utils.cli import guarded
from hwnas.utils.hydra_errors import suggest_fixes


@suggest_fixes
@hydra.main(config_path="../conf", config_name="profile", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hwnas.tasks import calibrate, latency_table, profile

    table = cfg.get("table") or {}
    if (cfg.get("estimate") or {}).get("calibrate"):  # fit the Snapdragon 888 roofline to measurements
        guarded(calibrate.run, cfg)
        return
    guarded(latency_table.run if table.get("n") or table.get("archs") else profile.run, cfg)


if __name__ == "__main__":
    main()
