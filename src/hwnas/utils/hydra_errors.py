"""Hydra's composition errors as one line that suggests the fix ("did you mean ...").

Hydra answers a mistyped option (``search=evolution_parto``) with a dozen lines (the message, every
option of the group, the config search path, a hint about ``HYDRA_FULL_ERROR``) and a mistyped key
(``search.n_trails=3``) with four, none of which names the key that was meant. The entry points wrap
their ``@hydra.main`` function in :func:`suggest_fixes`, which turns exactly these two errors into one
line on stderr, in the same ``[key] message Valid choices: ... Fix: ...`` form as every other
:class:`~hwnas.utils.errors.HwnasError`, and keeps Hydra's exit code (1). Every other error, and every
error under ``HYDRA_FULL_ERROR=1``, is left to Hydra.

Hydra 1.3 offers no hook between composition and its error printing, so :func:`suggest_fixes` wraps
``hydra._internal.utils.run_and_report`` (the function the CLI runs composition and the task under)
while the entry point runs; where that function is missing (a future Hydra), Hydra's own output stays.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig

from hwnas.utils.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
#: Hydra's hint under a key it could not override: "To append to your config use +<key>=<value>".
_APPEND = re.compile(r"use \+(?P<key>[^=\s]+)=(?P<value>.*)$", re.M)
_OVERRIDE = re.compile(r"Could not override '(?P<key>[^']+)'")


def did_you_mean(word: str, choices: Iterable[str], *, n: int = 3) -> list[str]:
    """The ``choices`` closest to ``word`` (difflib similarity >= 0.6, ignoring case), best first."""
    by_lower: dict[str, str] = {}
    for c in choices:
        by_lower.setdefault(str(c).lower(), str(c))
    return [by_lower[m] for m in difflib.get_close_matches(word.lower(), list(by_lower), n=n, cutoff=0.6)]


def explain(exc: BaseException) -> str | None:
    """One line for an unknown config-group option or an unknown key, with the closest valid names.

    Returns None for any other error (Hydra's own message stands). Call it while Hydra is initialised
    (inside ``@hydra.main`` or ``initialize_config_dir``) to also suggest config groups for a mistyped
    top-level name (``debgu=fast`` -> ``debug=fast``).
    """
    if isinstance(exc, MissingConfigException):
        return _unknown_option(exc)
    if isinstance(exc, ConfigCompositionException):
        return _unknown_key(exc)
    if isinstance(exc, OSError):
        return _run_dir_error(exc)
    return None


def _run_dir_error(exc: OSError) -> str | None:
    """One line when Hydra cannot create the run directory (before any of our code runs); an ``OSError``
    raised anywhere else keeps its traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    starts = [i for i, f in enumerate(frames) if f.name == "run_job" and "hydra" in f.filename]
    if not starts or not all(
        "hydra" in f.filename or f.filename.endswith(("pathlib.py", "os.py"))
        for f in frames[starts[-1] + 1 :]
    ):
        return None
    return str(
        ConfigError(
            f"cannot create the run directory {exc.filename}: {exc.strerror}",
            key="hydra.run.dir",
            fix="hydra.run.dir=<a folder you can write> (hydra.sweep.dir=... with -m)",
        )
    )


def _unknown_option(exc: MissingConfigException) -> str | None:
    options = [str(o) for o in (exc.options or [])]
    missing = str(exc.missing_cfg_file or "")
    if not options or "/" not in missing:
        return None  # a missing primary config (-cn ...): Hydra's message says it
    group, option = missing.rsplit("/", 1)
    close = did_you_mean(option, options)
    fix = (
        f"{group}=" + f" or {group}=".join(close)
        if close
        else f"pick one of the {len(options)} valid choices"
    )
    hint = f"; did you mean {group}={close[0]}?" if close else ""
    return str(ConfigError(f"Could not find '{missing}'{hint}", key=group, choices=options, fix=fix))


def _unknown_key(exc: ConfigCompositionException) -> str | None:
    cause = exc.__cause__
    parent = getattr(cause, "parent_node", None)
    leaf = str(getattr(cause, "key", ""))
    found = _OVERRIDE.search(str(exc))
    parts = found.group("key").split(".") if found else []
    if not isinstance(parent, DictConfig) or leaf not in parts:
        return None
    i = parts.index(leaf)  # the first name that does not exist (Hydra walks the key from the top)
    key, head, tail = ".".join(parts), ".".join(parts[:i]), ".".join(parts[i + 1 :])
    choices = [str(k) for k in parent]
    groups = [] if head else _config_groups()  # a mistyped top-level name may be a group: debgu=fast
    close = did_you_mean(leaf, [*choices, *groups])
    appended = _APPEND.search(str(exc))
    value = appended.group("value").strip() if appended else "..."
    meant = ".".join(p for p in (head, close[0], tail) if p) if close else None
    add = f"+{key}={value} adds it as a new key"
    where = f"Keys under {head!r}:" if head else "Keys and groups at the top level:"
    fix = f"{meant}={value} (or: {add})" if meant else add
    hint = f"; did you mean {meant}?" if meant else ""
    line = str(ConfigError(f"unknown key{hint}", key=key, choices=sorted({*choices, *groups}), fix=fix))
    return line.replace("Valid choices:", where, 1)


def _config_groups() -> list[str]:
    """Top-level config groups of the running Hydra app (``debug``, ``experiment``...), or none."""
    try:
        from hydra.core.global_hydra import GlobalHydra

        loader = GlobalHydra.instance().config_loader()
        return [g for g in loader.list_groups("") if g != "hydra"]
    except Exception:  # noqa: BLE001 - Hydra not initialised: keys only
        return []


@contextmanager
def _suggesting() -> Iterator[None]:
    """Wrap Hydra's ``run_and_report`` so the two errors above print as one line, exit code 1."""
    try:
        from hydra._internal import utils as hydra_utils
    except ImportError:  # pragma: no cover - a Hydra without it: its own messages
        yield
        return
    original = getattr(hydra_utils, "run_and_report", None)
    if original is None:  # pragma: no cover
        yield
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        def explained() -> Any:
            try:
                return func()
            except Exception as exc:
                line = None if os.environ.get("HYDRA_FULL_ERROR") == "1" else explain(exc)
                if line is None:
                    raise
                print(f"error: {line}", file=sys.stderr, flush=True)
                sys.exit(1)  # Hydra's exit code for a composition error

        return original(explained)

    hydra_utils.run_and_report = run_and_report
    try:
        yield
    finally:
        hydra_utils.run_and_report = original


def suggest_fixes(main: F) -> F:
    """Decorate a ``@hydra.main`` function: unknown options and keys get a one-line "did you mean"."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _suggesting():
            return main(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
