"""``bench/bench_layers.py`` and ``bench/collect_profiles.py``: the per-layer pipeline on the zoo's real
graphs (synthetic profiles, a pipeline check), profiles read back from a folder, and the collector's
refusal without an AI Hub token (nothing is sent)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from tests.conftest import ROOT, device_data_or_skip

device_data_or_skip()

MODELS = "squeezenet1_1,quicksrnetsmall,resnet18,mobilenet_v2"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_layers")
    result = _load("bench_layers").main(
        ["--synthetic", "--models", MODELS, "--noise", "0", "--out", str(out)]
    )
    return out, result


def test_synthetic_profiles_are_labelled_and_recovered(synthetic):
    _, result = synthetic
    assert result["source"].startswith("SYNTHETIC") and result["n_models"] == 4
    by = {r["method"]: r for r in result["rows"]}
    assert by["per-layer fit"]["mdape"] < 0.05  # noise-free layers of the same roofline: recovered


def test_profiles_are_read_back_from_a_folder(synthetic, tmp_path):
    import onnx

    from hwnas.hardware.device_fit import option_constants
    from hwnas.hardware.layer_fit import synthetic_profile
    from hwnas.hardware.profile_files import write_profile

    out, _ = synthetic
    c = option_constants("snapdragon8gen3")
    for k, name in enumerate(MODELS.split(",")):
        proto = onnx.load(str(next((out / "onnx").glob(f"{name}_*.onnx"))))
        record = {
            "name": f"hwnas-{name}",
            "device": "Samsung Galaxy S24",
            "profile": synthetic_profile(proto, c, seed=k),
        }
        write_profile(tmp_path / "profiles", f"hwnas-{name}-j{k}", record)
    (tmp_path / "profiles" / "bench_layers.json").write_text('{"rows": []}')  # not a profile: skipped
    args = ["--profiles", str(tmp_path / "profiles"), "--out", str(out)]
    result = _load("bench_layers").main(args)
    assert result["n_models"] == 4 and result["source"] == str(tmp_path / "profiles")


def test_too_few_profiles_stop_with_the_fix(tmp_path):
    with pytest.raises(SystemExit, match="collect_profiles"):
        _load("bench_layers").main(["--profiles", str(tmp_path), "--out", str(tmp_path)])


def test_collector_without_a_token_sends_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("QAI_HUB_API_TOKEN", raising=False)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))
    assert _load("collect_profiles").main(["--out", str(tmp_path / "p")]) == 2
    assert "qai-hub configure --api_token" in capsys.readouterr().out
    assert not (tmp_path / "p").exists()
