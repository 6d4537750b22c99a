"""Passwords and tokens never reach logs, saved configs or CSVs."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from hwnas.utils.secrets import MASK, redact_config, redact_url, scrub, scrub_saved_config, with_password


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("postgresql://u:secret@db:5432/x") == f"postgresql://u:{MASK}@db:5432/x"
    assert redact_url("mysql+pymysql://me:p%40ss@h/db?x=1") == f"mysql+pymysql://me:{MASK}@h/db?x=1"
    assert redact_url("sqlite:////tmp/study.db") == "sqlite:////tmp/study.db"
    assert redact_url("postgresql://u@db/x") == "postgresql://u@db/x"


def test_scrub_masks_urls_secret_keys_and_leaves_the_rest() -> None:
    text = "storage: postgresql://u:hunter2@db/x\napi_token: abc123xyz\ntoken_env: QAI_HUB_API_TOKEN\nkey: ${oc.env:X}"
    out = scrub(text + "\npassword: ${oc.env:PW}\nhub.api_token=zzz999\nseed: 0")
    assert "hunter2" not in out and "abc123xyz" not in out and "zzz999" not in out
    assert "token_env: QAI_HUB_API_TOKEN" in out and "password: ${oc.env:PW}" in out and "seed: 0" in out


def test_redact_config_masks_nested_secrets_without_touching_the_original() -> None:
    cfg = OmegaConf.create(
        {
            "search": {"storage": "postgresql://u:pw123@h/db"},
            "hub": {"api_token": "t0k3n"},
            "list": ["redis://a:b@c"],
            "run_dir": "${hydra:runtime.output_dir}",
        }
    )
    red = redact_config(cfg)
    assert red.search.storage == f"postgresql://u:{MASK}@h/db" and red.hub.api_token == MASK
    assert red.list[0] == f"redis://a:{MASK}@c" and OmegaConf.to_yaml(red).count("${hydra:") == 1
    assert cfg.hub.api_token == "t0k3n"


def test_with_password_reads_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("HWNAS_STORAGE_PASSWORD", "p@ss/word")
    assert with_password("postgresql://u@h/db") == "postgresql://u:p%40ss%2Fword@h/db"
    assert with_password("postgresql://u:given@h/db") == "postgresql://u:given@h/db"
    assert "p@ss/word" not in scrub("oops p@ss/word leaked")
    monkeypatch.delenv("HWNAS_STORAGE_PASSWORD")
    assert with_password("postgresql://u@h/db") == "postgresql://u@h/db"


def test_scrub_saved_config_rewrites_hydra_files(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("search:\n  storage: postgresql://u:s3cr3t@h/db\n")
    (tmp_path / "overrides.yaml").write_text("- search.storage=postgresql://u:s3cr3t@h/db\n")
    (tmp_path / "hydra.yaml").write_text("seed: 0\n")
    changed = scrub_saved_config(tmp_path)
    assert sorted(p.name for p in changed) == ["config.yaml", "overrides.yaml"]
    assert all("s3cr3t" not in p.read_text() for p in tmp_path.glob("*.yaml"))


def test_checkpoints_are_loaded_weights_only() -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    calls = [line for p in src.rglob("*.py") for line in p.read_text().splitlines() if "torch.load(" in line]
    assert calls and all("weights_only=True" in line for line in calls)
