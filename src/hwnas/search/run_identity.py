"""What makes two searches the same experiment, kept in the study so a resume can be checked against it.

A resumed search (``search.resume=<dir>``, the same ``hydra.run.dir``, or another launch on a shared
study) must not mix experiments: another objective would read old trials' values as something else,
another hardware target would put fp32 and int8 latencies in one front. The first launch stores the
settings that decide a trial's values in the study (``user_attrs["hwnas_config"]``; Hydra rewrites
``.hydra/config.yaml`` on every launch, the study does not change), and every later launch compares.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from hwnas.utils.config import config_recipe
from hwnas.utils.errors import ConfigError

log = logging.getLogger("hwnas.search")

ATTR = "hwnas_config"
FORCED_ATTR = "hwnas_resume_forced"

#: Config nodes that decide a trial's values (objectives, what is searched, how it is scored and timed).
NODES = (
    "search.objectives",
    "search.fidelity",
    "search_space",
    "evaluator",
    "hardware",
    "dataset",
    "benchmark",
    "seed",
)
#: Also deciding for evaluators that train (a table look-up ignores them).
TRAINING_NODES = ("optim", "tricks", "trainer")
#: Leaves that change speed, storage or bookkeeping, never a value.
IGNORED_LEAVES = {
    "workdir", "cache_dir", "num_workers", "in_memory", "latency_cache", "keep_weights", "cache",
    "persistent_workers", "oom_retry",  # oom_retry: a retry at half the batch is recorded per trial
    "gradient_widths",  # how a gradient strategy searches (like search.*), not how a trial is scored
    "run_dir", "paths", "store_dir",  # hardware=predictor's bookkeeping: where runs and measurements live
}  # fmt: skip


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k) not in IGNORED_LEAVES:
                _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """The deciding settings of ``cfg`` as flat ``{"dotted.key": JSON value}``."""
    target = str(OmegaConf.select(cfg, "evaluator._target_", default="") or "")
    table = target.endswith("TableEvaluator")
    if table:  # no images are trained or timed: the data and training settings cannot change a value
        nodes = tuple(n for n in NODES if n != "dataset")
    else:
        nodes = tuple(n for n in NODES if n != "benchmark") + TRAINING_NODES
    out: dict[str, Any] = {}
    for key, value in config_recipe(cfg, nodes).items():
        if key == "search.fidelity" and not value:
            continue  # off: a study written before search.fidelity existed resumes as before
        _flatten(key, value, out)
    return json.loads(json.dumps(out, default=str))  # the values as the study will give them back


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def check_resume(study: optuna.Study, cfg: DictConfig, *, force: bool) -> list[dict[str, Any]]:
    """Store this run's identity in a new study; on a study with trials, refuse a different one.

    Returns the overrides recorded so far (non-empty only after ``search.resume_force=true``).

    Raises:
        ConfigError: The deciding settings differ from the stored run's (every differing key named).
    """
    current = run_identity(cfg)
    stored = study.user_attrs.get(ATTR)
    forced = list(study.user_attrs.get(FORCED_ATTR) or [])
    if stored is None:
        if study.get_trials(deepcopy=False):
            log.warning("the study predates stored run settings; its settings are taken to be this run's")
        study.set_user_attr(ATTR, current)
        return forced
    keys = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
    if not keys:
        return forced
    lines = [f"{k}: {_show(stored.get(k, '<absent>'))} -> {_show(current.get(k, '<absent>'))}" for k in keys]
    if not force:
        raise ConfigError(
            f"resuming study '{study.study_name}' with different settings ({len(keys)} key(s)): "
            + "; ".join(lines),
            key=", ".join(keys),
            fix="resume with the run's own settings, start a new run dir for the new experiment, or set "
            "search.resume_force=true to continue anyway (recorded in summary.json)",
        )
    log.warning("search.resume_force=true: continuing with different settings: %s", "; ".join(lines))
    forced.append(
        {"keys": keys, "old": {k: stored.get(k) for k in keys}, "new": {k: current.get(k) for k in keys}}
    )
    study.set_user_attr(FORCED_ATTR, forced)
    study.set_user_attr(ATTR, current)
    return forced
