"""Opening the Optuna study on durable storage (SQLite in the run dir by default, or a shared URL)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna

from hwnas.utils.errors import ConfigError

log = logging.getLogger("hwnas.search")


def storage_url(storage: str | None, run_dir: Path) -> str:
    """``null`` → ``sqlite:///<run dir>/study.db``; otherwise the URL as given."""
    if storage in (None, "", "null"):
        return f"sqlite:///{(run_dir / 'study.db').resolve()}"
    return str(storage)


def redact(url: str) -> str:
    """Hide a password in a database URL before it reaches a log or a CSV."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage with a generous lock timeout (several workers may share one SQLite file)."""
    if url == "memory":
        return optuna.storages.InMemoryStorage()
    if url.startswith("journal:"):
        path = url[len("journal:"):]
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as exc:  # noqa: BLE001 - any driver error is the same user problem
        raise ConfigError(
            f"cannot open study storage {redact(url)}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            key="search.storage",
            fix="check the URL, that the database server is reachable and its driver installed "
            "(postgresql needs pip install -e '.[postgres]'), or leave search.storage=null for SQLite in the run dir",
        ) from exc


def open_study(
    *,
    url: str,
    study_name: str,
    directions: Sequence[str],
    sampler: optuna.samplers.BaseSampler,
) -> optuna.Study:
    """Create the study, or load it if it exists (resume / extra workers) after checking it matches."""
    storage = make_storage(url)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        directions=list(directions),
        sampler=sampler,
        load_if_exists=True,
    )
    got = [d.name.lower() for d in study.directions]
    if got != [d.lower() for d in directions]:
        raise ConfigError(
            f"study '{study_name}' exists with directions {got}, but the config asks for {list(directions)}",
            key="search.objectives",
            fix="use the objectives the study was created with, or a new search.study_name",
        )
    return study
