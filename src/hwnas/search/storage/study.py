"""Opening the Optuna study on durable storage (a journal file in the run dir by default, or a shared URL)."""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna

from hwnas.search.storage.journal import FlockJournalFileBackend
from hwnas.search.storage.journal_heartbeat import HeartbeatJournalStorage
from hwnas.search.storage.tail import TailInMemoryStorage
from hwnas.utils.errors import ConfigError
from hwnas.utils.secrets import redact_url, scrub, with_password

log = logging.getLogger("hwnas.search")


#: The run dir's own study: a journal file (default), or the SQLite file of runs made before it was.
JOURNAL_FILE, SQLITE_FILE = "study.journal", "study.db"


def storage_url(storage: str | None, run_dir: Path) -> str:
    """``null`` → the run dir's journal file ``journal:<run dir>/study.journal`` (or its ``study.db`` when
    the run was made with SQLite, before the journal was the default); otherwise the URL as given.

    The journal: ~3-5 ms of storage and bookkeeping per table trial, flat to 10,000 trials, against
    40-44 ms for SQLite at 300 (``make bench-search ARGS="--overhead-only"``).
    """
    if storage in (None, "", "null"):
        if (run_dir / SQLITE_FILE).is_file() and not (run_dir / JOURNAL_FILE).is_file():
            return f"sqlite:///{(run_dir / SQLITE_FILE).resolve()}"
        return f"journal:{(run_dir / JOURNAL_FILE).resolve()}"
    return str(storage)


def run_has_study(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a study of its own (a journal or SQLite file)."""
    return (run_dir / JOURNAL_FILE).is_file() or (run_dir / SQLITE_FILE).is_file()


def redact(url: str) -> str:
    """Hide a password in a database URL before it reaches a log or a CSV (see ``hwnas.utils.secrets``)."""
    return redact_url(url)


def make_storage(
    url: str, *, heartbeat_s: int | None = None, grace_s: int | None = None
) -> optuna.storages.BaseStorage:
    """The storage of ``url``: ``journal:<path>`` (a journal file, ``hwnas.search.storage.journal``),
    ``memory``, or a database URL (an RDB storage with a generous lock timeout: several workers may share
    one SQLite file).

    ``heartbeat_s``/``grace_s`` turn on trial heartbeats (Optuna's on a database, ours on a journal), so trials of dead workers can be
    recognised as stale (``hwnas.search.workers``). A password missing from the URL is taken from
    ``HWNAS_STORAGE_PASSWORD``, so it never has to appear in a config Hydra saves.
    """
    if url == "memory":
        return TailInMemoryStorage()
    if url.startswith("journal:"):
        path = url[len("journal:") :]
        return HeartbeatJournalStorage(
            FlockJournalFileBackend(path), heartbeat_interval=heartbeat_s, grace_period=grace_s
        )
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    # Several launches creating the same new database at once race on Optuna's schema creation
    # ("table ... already exists"); the loser simply retries and then finds the schema in place.
    for attempt in range(6):
        try:
            storage = optuna.storages.RDBStorage(
                with_password(url),
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_s,
                grace_period=grace_s,
            )
            if url.startswith("sqlite"):
                _sqlite_wal(storage)
            return storage
        except Exception as exc:  # noqa: BLE001 - any driver error is the same user problem
            if attempt < 5 and _is_creation_race(exc):
                time.sleep(0.2 + random.random() * (attempt + 1))
                continue
            error = exc
            break
    try:
        raise error
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(
            f"cannot open study storage {redact(url)}: {type(exc).__name__}: {_first_line(exc)}",
            key="search.storage",
            fix="check the URL, that the database server is reachable and its driver installed "
            "(postgresql needs pip install -e '.[postgres]'), or leave search.storage=null for SQLite in the run dir",
        ) from exc


def _sqlite_wal(storage: optuna.storages.RDBStorage) -> None:
    """Write-ahead logging: readers never block the writer, and each commit costs one fsync less.

    About 3x less storage time per trial than SQLite's default rollback journal (measured: ~0.1 s ->
    ~0.035 s per ask/tell on this machine). WAL is a property of the file, so every worker gets it.
    """
    from sqlalchemy import event, text

    @event.listens_for(storage.engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    storage.engine.dispose()
    with storage.engine.connect() as conn:
        conn.execute(text("PRAGMA journal_mode=WAL"))


def _is_creation_race(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "already exists" in text or "database is locked" in text or "unique constraint" in text


def _first_line(exc: BaseException) -> str:
    """The driver's message, first line only, with any credentials it echoes removed."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return scrub(text)[:200]


def open_study(
    *,
    url: str,
    study_name: str,
    directions: Sequence[str],
    sampler: optuna.samplers.BaseSampler,
    heartbeat_s: int | None = None,
    grace_s: int | None = None,
    only_study: bool = False,
) -> optuna.Study:
    """Create the study, or load it if it exists (resume / extra workers) after checking it matches.

    ``only_study``: the storage is a run directory's own (``search.storage=null``), which holds one study:
    a second name (e.g. ``experiment=nb201`` re-run with another ``benchmark.latency``, whose study name
    holds the columns) is refused instead of starting a second study whose outputs would overwrite the
    first's.
    """
    if heartbeat_s:
        # The ask/tell loop drives the heartbeat itself (hwnas.search.workers); Optuna warns on every ask.
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        warnings.filterwarnings(
            "ignore", category=optuna.exceptions.ExperimentalWarning, message=".*heartbeat.*"
        )
    storage = make_storage(url, heartbeat_s=heartbeat_s, grace_s=grace_s)
    if only_study:
        others = [n for n in optuna.get_all_study_names(storage) if n != study_name]
        if others:
            raise ConfigError(
                f"this run directory already holds study '{others[0]}' (one run dir, one study), and the "
                f"config names '{study_name}': its outputs would overwrite the other's",
                key="search.study_name",
                fix="a new hydra.run.dir for the new settings, or the settings of the study to resume it",
            )
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
