"""Continuing a search: which run dir to write to, and what to do with trials a dead process left."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from hwnas.search.storage.heartbeats import fail_stale, requeue
from hwnas.search.storage.study import run_has_study
from hwnas.utils.config import run_dir_of
from hwnas.utils.errors import ConfigError
from hwnas.utils.secrets import redact_config

log = logging.getLogger("hwnas.search")

DIED_REASON = "stale: the process died while evaluating it; architecture re-queued"


def resolve_run_dir(cfg: DictConfig) -> Path:
    """``search.resume=<run dir>`` continues that search in place; otherwise this run's own dir."""
    resume = cfg.search.get("resume")
    if not resume:
        return run_dir_of(cfg)
    path = Path(str(resume))
    if not run_has_study(path) and not cfg.search.get("storage"):
        raise ConfigError(
            f"{path} is not a previous search (no study.journal or study.db in it)",
            key="search.resume",
            fix="pass the run dir of an earlier search (it contains study.journal and trials.csv), "
            "or set search.storage=<url> to resume a study kept in a database",
        )
    log.info("resuming the search in %s", path)
    return path


def recover_stale_trials(study: optuna.Study, *, single_worker: bool) -> int:
    """Trials left RUNNING by a dead process: mark FAIL (reason ``stale``) and re-queue their architectures.

    On private storage (the run dir's journal or SQLite file), before this search starts any worker, nobody else can be
    evaluating, so every RUNNING trial is stale (``single_worker=True``). On shared storage another launch
    may be alive: only trials whose heartbeat lapsed are stale (``hwnas.search.storage.heartbeats.fail_stale``).
    """
    if not single_worker:
        return fail_stale(study)
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        try:
            study._storage.set_trial_user_attr(t._trial_id, "fail_reason", DIED_REASON)
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        requeue(study, t)
        n += 1
    if n:
        log.warning("re-queued %d trial(s) left running by a previous process", n)
    return n


def save_run_config(cfg: DictConfig, run_dir: Path) -> None:
    """Keep the composed config in ``<run dir>/.hydra/config.yaml`` also when ``run(cfg)`` is called from
    Python (Hydra writes it for CLI runs): ``src/final.py run=<dir>`` reads the run's settings from it."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(OmegaConf.to_yaml(redact_config(cfg)))
