"""The sampler contracts (:mod:`hwnas.testing.samplers`) on every ``conf/search`` option that names a
``sampler:``, built from its own file with a seed.

Optuna's samplers (random, NSGA-III, MOTPE, GP) keep :class:`~hwnas.testing.SamplerContract`; the project's
own (``hwnas.search.samplers``) also claim to search well and keep
:class:`~hwnas.testing.ImprovingSamplerContract`. Which is which is read from the sampler's class, not
from a list of names.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from hwnas.testing import ImprovingSamplerContract, SamplerContract
from tests.conftest import CONF
from tests.contracts.options import options

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _node(option: str):
    return OmegaConf.load(CONF / "search" / f"{option}.yaml")


SAMPLER_OPTIONS = [o for o in options("search") if "sampler" in _node(o)]
OURS = [o for o in SAMPLER_OPTIONS if get_class(_node(o).sampler._target_).__module__.startswith("hwnas.")]
THEIRS = [o for o in SAMPLER_OPTIONS if o not in OURS]


def make_sampler(option: str) -> Callable[[int], optuna.samplers.BaseSampler]:
    """``seed -> the option's sampler``, as the search instantiates ``search.sampler``."""

    def make(seed: int) -> optuna.samplers.BaseSampler:
        return instantiate(OmegaConf.create({"seed": seed, "search": _node(option)}).search.sampler)

    return make


def test_the_options_are_found() -> None:
    assert len(OURS) >= 3 and len(THEIRS) >= 3, (OURS, THEIRS)


@pytest.mark.parametrize("option", SAMPLER_OPTIONS)
def test_the_option_file_is_documented_with_a_budget(option: str) -> None:
    assert _node(option).n_trials > 0
    assert (CONF / "search" / f"{option}.yaml").read_text().startswith("# ")


class TestOptunaSamplers(SamplerContract):
    @pytest.fixture(params=THEIRS)
    def make_sampler(self, request) -> Callable[[int], optuna.samplers.BaseSampler]:
        return make_sampler(request.param)


class TestOurSamplers(ImprovingSamplerContract):
    @pytest.fixture(params=OURS)
    def make_sampler(self, request) -> Callable[[int], optuna.samplers.BaseSampler]:
        return make_sampler(request.param)
