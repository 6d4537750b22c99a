"""The final stage on a finished search: ``python src/final.py run=outputs/search/<run> [final.top_k=...]``."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

import hwnas  # noqa: F401  (first: keeps src/profile.py from shadowing the stdlib's profile)
from hwnas.utils.cli import guarded
from hwnas.utils.hydra_errors import suggest_fixes


@suggest_fixes
@hydra.main(version_base="1.3", config_path="../conf", config_name="final")
def main(cfg: DictConfig) -> float | None:
    from hwnas.reporting.report_html import write_html_report  # here: a mistyped option is answered
    from hwnas.tasks import final  # before torch loads

    out = guarded(final.run, cfg)
    write_html_report(Path(str(cfg.run)))  # report.html again, now with the final stage
    return float(out["front_size"])


if __name__ == "__main__":
    main()
