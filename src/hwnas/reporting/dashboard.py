"""optuna-dashboard on a search's study: ``make dashboard RUN=<run dir>`` (``python -m hwnas.reporting.dashboard``).

The dashboard reads the study itself, live: trials with their parameters (the architecture), user
attributes (``arch_key``, ``arch``, ``worker``, ``strategy``, ``fail_reason`` and ``result``: metrics
incl. ``hw/source``, feasibility, timings), the objectives by name (set at the start of every search
by :func:`name_objectives`) and, for two or more objectives, the Pareto front: the search's own front
(:func:`feasible_front`: feasible, not duplicates), not optuna-dashboard's, which ignores
``search.constraints``. It serves on
127.0.0.1 only; it needs the optional extra ``pip install -e '.[dashboard]'``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
from omegaconf import OmegaConf
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hwnas.pareto import pareto_mask
from hwnas.search.trial_attrs import DUPLICATE_ATTR
from hwnas.utils.errors import ConfigError, HwnasError

INSTALL_FIX = "pip install -e '.[dashboard]' (or: make install, whose dev extra includes it)"


def name_objectives(study: optuna.Study, names: Sequence[str]) -> None:
    """Name the study's objectives (``val/miou``, ``hw/latency_ms``) for the dashboard's axes and columns.

    One storage write when the names are new or changed, none otherwise (resumes, helper workers).
    """
    if study.metric_names == list(names):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(names))


def storage_of_run(run_dir: Path) -> str:
    """The study storage URL of a search run: ``search.storage`` from its saved config, else its own study
    file (``study.journal``, or ``study.db`` for runs made with SQLite).

    A password the saved config masks is read from ``HWNAS_STORAGE_PASSWORD`` when the storage is opened,
    as the search itself does.

    Raises:
        ConfigError: the directory is no search run (no config, no study file).
    """
    from hwnas.utils.secrets import MASK

    saved = run_dir / ".hydra" / "config.yaml"
    storage = None
    if saved.is_file():
        cfg = OmegaConf.load(saved)
        storage = OmegaConf.select(cfg, "search.storage", default=None, throw_on_resolution_failure=False)
    if storage not in (None, "", "null"):
        return str(storage).replace(f":{MASK}@", "@")
    from hwnas.search.storage.study import run_has_study, storage_url

    if not run_has_study(run_dir):
        raise ConfigError(
            f"{run_dir} holds no study (no study.journal or study.db, and no search.storage in .hydra/config.yaml)",
            key="RUN",
            fix="pass a search's run dir, e.g. make dashboard RUN=outputs/search/<time>",
        )
    return storage_url(None, run_dir)


def feasible_front(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[FrozenTrial]:
    """The study's Pareto front as the search defines it (pareto.csv): completed trials that satisfy every
    constraint, duplicates left out (they repeat a member's values); in trial-number order."""
    pool = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.values is not None
        and not t.user_attrs.get(DUPLICATE_ATTR)
        and all(c <= 0 for c in t.constraints.values())
    ]
    if not pool:
        return []
    names = ["maximize" if d == StudyDirection.MAXIMIZE else "minimize" for d in directions]
    mask = pareto_mask(np.array([t.values for t in pool], dtype=float), names)
    return sorted((t for t, keep in zip(pool, mask, strict=True) if keep), key=lambda t: t.number)


def _use_feasible_front() -> None:
    """optuna-dashboard's best trials come from its own front, which ignores constraints: use ours."""
    from optuna_dashboard import _app

    _app.get_pareto_front_trials = feasible_front


def serve(run_dir: Path, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve optuna-dashboard on the run's study until interrupted (blocks)."""
    from hwnas.search.storage.study import make_storage, redact

    try:
        from optuna_dashboard import run_server
    except ImportError as exc:
        raise ConfigError("optuna-dashboard is not installed", key="RUN", fix=INSTALL_FIX) from exc
    url = storage_of_run(run_dir)
    storage = make_storage(url)
    _use_feasible_front()
    print(f"optuna-dashboard on {redact(url)}: http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    run_server(storage, host=host, port=port)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hwnas.reporting.dashboard <run dir> [--port 8080] [--host 127.0.0.1]``."""
    parser = argparse.ArgumentParser(prog="python -m hwnas.reporting.dashboard", description=__doc__)
    parser.add_argument("run", type=Path, help="a search's run dir (outputs/search/<time>)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    try:
        serve(args.run, host=args.host, port=args.port)
    except HwnasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
