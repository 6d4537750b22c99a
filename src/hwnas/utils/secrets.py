"""Keeping passwords and tokens out of logs, saved configs, CSVs and experiment trackers.

Two sources of secrets reach a run: database URLs (``search.storage=postgresql://user:pw@host/db``)
and config keys named like ``*password``, ``*token``, ``*secret``, ``*api_key``. Everything a run writes
for people goes through :func:`redact_url`, :func:`redact_config` or :func:`scrub`. The cleanest option
is not to put the password in the config at all: leave it out of the URL and export
``HWNAS_STORAGE_PASSWORD``; :func:`with_password` adds it only when the storage is opened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from omegaconf import DictConfig, ListConfig, OmegaConf

MASK = "***"
PASSWORD_ENV = "HWNAS_STORAGE_PASSWORD"

#: Config keys whose values are secrets (matched on the end of the key, case-insensitive).
SECRET_KEY = re.compile(r"(password|passwd|token|secret|api_key|apikey|access_key)$", re.IGNORECASE)
_URL_CREDS = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s'\"]*):(?P<pw>[^@\s'\"]+)@")
_KEY_VALUE = re.compile(
    r"(?P<key>[\w.-]*(?:password|passwd|token|secret|api_key|apikey|access_key))"
    r"(?P<sep>\s*[:=]\s*)(?P<q>['\"]?)(?P<value>[^\s,'\"\]}]+)",
    re.IGNORECASE,
)
_NOT_SECRET = {"null", "none", "~", "???", "''", '""', MASK}


def redact_url(url: str) -> str:
    """``scheme://user:password@host/db`` → ``scheme://user:***@host/db``; other strings unchanged."""
    return _URL_CREDS.sub(lambda m: f"{m['head']}:{MASK}@", str(url))


def with_password(url: str, env: str = PASSWORD_ENV) -> str:
    """Insert ``$HWNAS_STORAGE_PASSWORD`` into a URL that names a user but no password."""
    password = os.environ.get(env)
    m = re.match(r"^(?P<scheme>[A-Za-z][\w+.-]*://)(?P<user>[^:/@\s]+)@(?P<rest>.*)$", url)
    if not password or m is None:
        return url
    return f"{m['scheme']}{m['user']}:{quote(password, safe='')}@{m['rest']}"


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    """Mask URL passwords, ``<secret key>: value`` / ``<secret key>=value`` pairs and known secret values."""
    out = redact_url(text)

    def _mask(m: re.Match[str]) -> str:
        value = m["value"]
        if value.lower() in _NOT_SECRET or value.startswith("${"):
            return m.group(0)
        return f"{m['key']}{m['sep']}{m['q']}{MASK}"

    out = _KEY_VALUE.sub(_mask, out)
    for value in (*extra, os.environ.get(PASSWORD_ENV, "")):
        if value and len(value) >= 4:
            out = out.replace(value, MASK)
    return out


def redact_config(cfg: DictConfig | dict[str, Any]) -> DictConfig:
    """A copy of ``cfg`` with secret-named keys masked and passwords removed from every URL-like string.

    Interpolations that cannot resolve outside Hydra (``${hydra:...}``) are left as written.
    """
    src = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    out = OmegaConf.create(OmegaConf.to_container(src, resolve=False))
    _redact_node(out)
    return out


def _redact_node(node: Any) -> None:
    items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else enumerate(node)
    for key, value in list(items):
        if isinstance(value, DictConfig | ListConfig):
            _redact_node(value)
        elif isinstance(value, str):
            if isinstance(key, str) and SECRET_KEY.search(key) and value and not value.startswith("${"):
                node[key] = MASK
            else:
                node[key] = redact_url(value)


def scrub_saved_config(hydra_dir: Path) -> list[Path]:
    """Rewrite Hydra's saved ``config.yaml``/``overrides.yaml``/``hydra.yaml`` without secrets.

    Hydra writes these before the task starts; a database password given on the command line would
    otherwise stay in the run dir (which people share and commit). Returns the files changed.
    """
    changed = []
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        path = Path(hydra_dir) / name
        if not path.is_file():
            continue
        text = path.read_text()
        clean = scrub(text)
        if clean != text:
            path.write_text(clean)
            changed.append(path)
    return changed


def scrub_hydra_outputs() -> list[Path]:
    """:func:`scrub_saved_config` on this Hydra run's output subdir (no-op outside ``@hydra.main``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    hc = HydraConfig.get()
    if not hc.output_subdir:
        return []
    return scrub_saved_config(Path(hc.runtime.output_dir) / str(hc.output_subdir))
