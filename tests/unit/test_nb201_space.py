"""NB201 space: arch-string keys round-trip, validation errors, and the built network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hwnas.models.nb201 import OPS
from hwnas.search_space.nb201 import PARAM_NAMES, NB201Space, arch_string, parse_arch_string
from hwnas.utils.errors import InvalidArchError

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT.parent / "shared" / "data" / "nb201" / "nb201_hw.csv.gz"


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return NB201Space()


def test_parameter_names_and_order(space: NB201Space) -> None:
    assert list(space.choices()) == ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
    assert all(v == list(OPS) for v in space.choices().values())


@pytest.mark.parametrize("op", OPS)
def test_key_round_trip_for_every_op_on_every_edge(space: NB201Space, op: str) -> None:
    rng = np.random.default_rng(OPS.index(op))
    for k, name in enumerate(PARAM_NAMES):
        params = {n: OPS[int(rng.integers(5))] for n in PARAM_NAMES}
        params[name] = op
        spec = space.make(params)
        assert spec.key == arch_string([params[n] for n in PARAM_NAMES])
        assert f"{op}~" in spec.key.split("+")[[0, 1, 1, 2, 2, 2][k]]
        again = space.from_arch_string(spec.key)
        assert again == spec and again.key == spec.key
        assert space.from_dict(spec.to_dict()) == spec


def test_key_format(space: NB201Space) -> None:
    spec = space.make(
        dict(
            zip(
                PARAM_NAMES,
                ["nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none"],
                strict=True,
            )
        )
    )
    assert spec.key == "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    assert parse_arch_string(spec.key) == spec.values


@pytest.mark.parametrize(
    "bad",
    [
        "|nor_conv_3x3~0|+|none~0|",  # two nodes
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|",  # node 3 short
        "|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # unknown op
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",  # wrong input index
    ],
)
def test_bad_arch_strings_say_what_is_wrong(space: NB201Space, bad: str) -> None:
    with pytest.raises(InvalidArchError, match="arch"):
        space.from_arch_string(bad)


def test_out_of_range_param_lists_choices(space: NB201Space) -> None:
    params = dict.fromkeys(PARAM_NAMES, "none")
    params["edge_3_2"] = "sep_conv"
    with pytest.raises(InvalidArchError, match="Valid choices: none, skip_connect"):
        space.make(params)


def test_build_forward_shape_and_chance_cell(space: NB201Space) -> None:
    model = space.build(space.baseline(), num_classes=10)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # An all-none cell ignores its input: every image gets the same logits (the 10 % chance networks).
    dead = space.build(space.make(dict.fromkeys(PARAM_NAMES, "none")), num_classes=10).eval()
    with torch.no_grad():
        out = dead(torch.randn(3, 3, 32, 32))
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[0], out[2])


def test_small_network_config() -> None:
    small = NB201Space(channels=8, cells_per_stage=1)
    model = small.build(small.baseline(), num_classes=5, in_channels=1)
    assert model(torch.randn(1, 1, 16, 16)).shape == (1, 5)


def test_yaml_instantiates() -> None:
    cfg = OmegaConf.load(ROOT / "conf" / "search_space" / "nb201.yaml")
    space = instantiate(cfg)
    assert isinstance(space, NB201Space) and space.baseline().key == cfg.baseline


@pytest.mark.skipif(not TABLE.is_file(), reason=f"benchmark table absent: {TABLE}")
def test_param_count_matches_benchmark_table(space: NB201Space) -> None:
    import pandas as pd

    df = pd.read_csv(TABLE, usecols=["arch", "params"]).sample(6, random_state=0)
    for arch, params in zip(df["arch"], df["params"], strict=True):
        model = space.build(space.from_arch_string(arch))
        assert sum(p.numel() for p in model.parameters()) == params, arch


def test_describe_is_the_arch_string_and_parse_reverses_it() -> None:
    from hwnas.search_space.nb201 import NB201Space

    space = NB201Space()
    spec = space.baseline()
    text = space.describe(spec)
    assert text.startswith("|") and text == spec.key
    assert space.parse(text) == spec
    assert space.parse(spec.to_json()) == spec
