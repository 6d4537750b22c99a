"""``logger=wandb`` is checked before a search spends anything: its mode follows W&B's own ``WANDB_MODE``
(offline when unset), online needs a key, and the retired ``HWNAS_WANDB_OFFLINE`` never silently disagrees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from hwnas.callbacks.logger_sinks import check_logger_config
from hwnas.tasks import search
from hwnas.utils.errors import ConfigError


@pytest.fixture
def no_wandb_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key anywhere W&B looks: the environment and a (missing) netrc."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "HWNAS_WANDB_OFFLINE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))


def test_wandb_mode_is_offline_unless_wandb_mode_says_otherwise(
    make_cfg: Callable[..., DictConfig], no_wandb_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_cfg("search", ["logger=wandb"])
    assert cfg.logger.wandb.mode == "offline" and cfg.logger.wandb.offline is False
    check_logger_config(cfg.logger)  # offline: no key needed
    monkeypatch.setenv("WANDB_MODE", "disabled")  # what CI exports: W&B really off, not overridden
    assert cfg.logger.wandb.mode == "disabled"
    check_logger_config(cfg.logger)


def test_online_without_a_key_is_refused_before_the_search_starts(
    make_cfg: Callable[..., DictConfig], no_wandb_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    cfg = make_cfg("search", ["logger=wandb", "debug=fast"])
    with pytest.raises(
        ConfigError, match=r"\[logger\.wandb\.mode\].*needs an API key.*WANDB_API_KEY.*wandb sync"
    ):
        search.run(cfg)
    assert not (Path(cfg.run_dir) / "study.db").exists(), "the search started before the check"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # a key (never used here: nothing is contacted)
    check_logger_config(cfg.logger)


def test_unknown_mode_and_a_disagreeing_legacy_switch_are_refused(
    make_cfg: Callable[..., DictConfig], no_wandb_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_cfg("search", ["logger=wandb"])
    monkeypatch.setenv("WANDB_MODE", "offlne")
    with pytest.raises(
        ConfigError, match=r"unknown W&B mode 'offlne'.*Valid choices: offline, online, disabled"
    ):
        check_logger_config(cfg.logger)
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("HWNAS_WANDB_OFFLINE", "false")  # meant online, would silently stay offline
    with pytest.raises(ConfigError, match=r"HWNAS_WANDB_OFFLINE=false is no longer read.*WANDB_MODE=online"):
        check_logger_config(cfg.logger)
    monkeypatch.setenv("HWNAS_WANDB_OFFLINE", "true")  # agrees with the default: fine
    check_logger_config(cfg.logger)
