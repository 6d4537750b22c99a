"""The command line: ``python -m hwnas search|final|train|profile [Hydra overrides]`` (or the ``hwnas`` script).

One code path for every way in: the checkout's ``python src/search.py …`` scripts call the same functions.
The configs are the package's ``hwnas/conf`` (in the checkout a link to ``conf/``, in a wheel a copy), found
through Hydra's package search path, so the commands work from any directory. A project of your own adds
its config files beside the package's with ``hydra.searchpath=[file:///path/to/your/conf]`` and selects its
own classes by ``_target_`` (``docs/plugins.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig

from hwnas.utils.cli import guarded
from hwnas.utils.hydra_errors import suggest_fixes

#: Relative to this package: ``pkg://hwnas/conf``.
CONFIG_PATH = "conf"


@suggest_fixes
@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="search")
def search(cfg: DictConfig) -> float | None:
    """The main job: a hardware-aware Pareto search, then (``final.enabled``) the final stage."""
    from hwnas.tasks import search  # here, not above: a mistyped option is answered before torch loads

    summary = guarded(search.run, cfg)
    return float(summary["front_size"])


@suggest_fixes
@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="final")
def final(cfg: DictConfig) -> float | None:
    """The final stage on a finished search: ``run=<search run dir>``."""
    from hwnas.reporting.report_html import write_html_report
    from hwnas.tasks import final

    out = guarded(final.run, cfg)
    write_html_report(Path(str(cfg.run)))  # report.html again, now with the final stage
    return float(out["front_size"])


@suggest_fixes
@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def train(cfg: DictConfig) -> float | None:
    """Train one architecture (``arch=<json>``, else the space's baseline), export and check ONNX."""
    from hwnas.tasks import train

    metrics = guarded(train.run, cfg)
    return metrics.get("val/miou")


@suggest_fixes
@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="profile")
def profile(cfg: DictConfig) -> None:
    """Profile one architecture, build a latency table (``table.n``) or calibrate the Snapdragon estimate."""
    from hwnas.tasks import calibrate, latency_table
    from hwnas.tasks import profile as profile_task

    table = cfg.get("table") or {}
    if (cfg.get("estimate") or {}).get("calibrate"):  # fit the Snapdragon 888 roofline to measurements
        guarded(calibrate.run, cfg)
        return
    guarded(latency_table.run if table.get("n") or table.get("archs") else profile_task.run, cfg)


COMMANDS: dict[str, Callable[[], object]] = {
    "search": search,
    "final": final,
    "train": train,
    "profile": profile,
}
USAGE = (
    "usage: python -m hwnas {search,final,train,profile} [Hydra overrides]\n"
    "  e.g. python -m hwnas search search=evolution_pareto hardware=snapdragon888 search.n_trials=8\n"
    "       python -m hwnas final run=outputs/search/<run>\n"
    "  python -m hwnas search --help lists the config groups and options"
)


def main(argv: Sequence[str] | None = None) -> int:
    """``hwnas <command> [overrides]``: runs the command's Hydra app on the remaining arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] not in COMMANDS:
        print(
            f"error: [command] unknown command {args[0]!r}; valid choices: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        print(USAGE, file=sys.stderr)
        return 2
    sys.argv = [f"hwnas {args[0]}", *args[1:]]  # Hydra parses sys.argv
    COMMANDS[args[0]]()
    return 0
