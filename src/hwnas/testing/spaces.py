"""The search-space contract suite (:class:`~hwnas.search_space.base.SearchSpace`).

Subclass :class:`SearchSpaceContract` in a test module and provide a ``space`` fixture; pytest then runs
every rule below against it::

    class TestMySpace(SearchSpaceContract):
        @pytest.fixture
        def space(self):
            return MySpace(width=8)

Override ``input_shape`` (``(C, H, W)``) and ``num_classes`` in the subclass to check the forward pass at
your data's size. A space may refuse a size (``validate(spec, input_size=...)`` raising
``InvalidArchError``); the forward rule is then skipped with that reason.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
from dataclasses import FrozenInstanceError
from typing import Any

import networkx as nx
import numpy as np
import optuna
import pytest
import torch
from torch import nn

from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.errors import InvalidArchError

#: Architectures drawn for the rules that need several (seeded: a failure is reproducible).
N_DRAWS = 16


def draws(space: SearchSpace, n: int = N_DRAWS, seed: int = 0) -> list[ArchSpec]:
    """``n`` architectures drawn with ``space.sample`` from a seeded generator."""
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def _is_json_scalar(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, str | bool | int)
        or (isinstance(value, float) and math.isfinite(value))
    )


class SearchSpaceContract:
    """Rules every search space keeps: what Optuna, the latency cache, trials.csv and the stages rely on.

    Fixtures: ``space`` (yours, required); ``input_shape`` and ``num_classes`` (defaults ``(3, 32, 32)``
    and 10; override them in the subclass).
    """

    @pytest.fixture
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input image for the forward rule."""
        return (3, 32, 32)

    @pytest.fixture
    def num_classes(self) -> int:
        return 10

    # -- parameters ------------------------------------------------------------------------------------
    def test_has_a_name_and_a_fixed_flat_set_of_parameters(self, space: SearchSpace) -> None:
        """One flat dict of categorical parameters, the same on every call: NSGA-II crosses over and mutates
        each name, and conditional names would silently degrade it to random sampling."""
        assert isinstance(space.name, str) and space.name and space.name != SearchSpace.name, (
            "set a class attribute `name` (it prefixes keys and names the space in results)"
        )
        choices = space.choices()
        assert isinstance(choices, dict) and choices, "choices() must map every parameter name to its values"
        assert choices == space.choices(), "choices() must return the same names and values on every call"
        assert space.param_names() == list(choices), "param_names() must list the choices' names in order"
        for name, values in choices.items():
            assert isinstance(name, str) and name, f"parameter names must be non-empty strings, got {name!r}"
            assert isinstance(values, list) and values, f"{name}: choices must be a non-empty list"
            assert all(_is_json_scalar(v) for v in values), (
                f"{name}: values must be JSON scalars, got {values}"
            )
            assert len({json.dumps(v) for v in values}) == len(values), f"{name}: repeated values {values}"

    def test_sample_is_seeded_and_valid(self, space: SearchSpace) -> None:
        """Random draws (a sampler's start, the evaluator's size check) are reproducible and in the space."""
        first, again = draws(space), draws(space)
        assert first == again, "sample(rng) must depend on the generator only"
        choices = space.choices()
        for spec in first:
            assert isinstance(spec, ArchSpec) and spec.space == space.name
            assert set(spec.values) == set(choices), "every architecture carries every parameter"
            assert all(spec[n] in choices[n] for n in choices)
            space.validate(spec)

    def test_suggest_asks_an_optuna_trial_for_every_parameter(self, space: SearchSpace) -> None:
        """The study's sampler sees the full flat set on every trial, with the space's distributions."""
        names = set(space.choices())
        dists = space.distributions()
        assert set(dists) == names
        for name, values in space.choices().items():
            assert list(dists[name].choices) == values, f"{name}: distribution and choices differ"
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(5):
            trial = study.ask()
            spec = space.suggest(trial)
            assert set(trial.params) == names, "suggest() must ask for every parameter, on every trial"
            assert spec.values == trial.params, "the spec must hold exactly what the trial suggested"
            study.tell(trial, 0.0)
        enqueued = draws(space, 1)[0]
        study.enqueue_trial(enqueued.values)
        assert space.suggest(study.ask()) == enqueued, "an enqueued architecture (a proposal) comes back"

    def test_validate_refuses_what_is_not_in_the_space(self, space: SearchSpace) -> None:
        """A bad architecture is an ``InvalidArchError`` (a failed trial with a reason), never a crash."""
        spec = draws(space, 1)[0]
        name = space.param_names()[0]
        bad = {
            "a value out of range": {**spec.values, name: "__not_a_choice__"},
            "a missing parameter": {k: v for k, v in spec.values.items() if k != name},
            "an unknown parameter": {**spec.values, "__unknown__": 1},
        }
        for what, params in bad.items():
            for call in (space.make, lambda p: space.validate(ArchSpec(space.name, tuple(p.items())))):
                try:
                    call(params)
                except InvalidArchError:
                    continue
                except Exception as exc:  # noqa: BLE001 - the rule is about which error
                    pytest.fail(f"{what} raised {type(exc).__name__}: {exc}, not InvalidArchError")
                pytest.fail(f"{what} was accepted")
        with pytest.raises(InvalidArchError):
            space.validate(ArchSpec(space.name + "-other", spec.params))

    # -- architectures as values -------------------------------------------------------------------------
    def test_architectures_are_frozen_hashable_values(self, space: SearchSpace) -> None:
        """One spec keys the latency cache, the results row and the ONNX file: it must never change."""
        spec = draws(space, 1)[0]
        again = space.make(spec.values)
        assert spec == again and hash(spec) == hash(again) and len({spec, again}) == 1
        with pytest.raises(FrozenInstanceError):
            spec.params = ()  # type: ignore[misc]
        assert pickle.loads(pickle.dumps(spec)) == spec, "specs travel to worker processes"

    def test_key_is_stable(self, space: SearchSpace) -> None:
        """The key is derived from the parameters only: equal on every call, in any parameter order, from a
        copy of the space (another process), so a resumed search and the latency cache find it again."""
        for spec in draws(space, 4):
            key = spec.key
            assert isinstance(key, str) and key
            assert space.make(spec.values).key == key, "make() gave another key for the same parameters"
            assert space.make(dict(reversed(list(spec.values.items())))).key == key, "key depends on order"
            assert space.key_of(spec.values) == key
            assert copy.deepcopy(space).make(spec.values).key == key, "a copy of the space keys differently"
            assert spec.stem and "/" not in spec.stem, "the file stem must be a safe file name"

    def test_keys_tell_architectures_apart(self, space: SearchSpace) -> None:
        """Different parameters, different keys: deduplication by key must never merge two architectures."""
        by_key: dict[str, dict] = {}
        for spec in draws(space, 4 * N_DRAWS, seed=1):
            seen = by_key.setdefault(spec.key, spec.values)
            assert seen == spec.values, (
                f"two architectures share the key {spec.key}: {seen} and {spec.values}"
            )

    def test_dict_json_and_file_round_trip(self, space: SearchSpace, tmp_path) -> None:
        """``to_dict``/``from_dict`` (pareto/*.json, arch.json) give back the same architecture and key."""
        for spec in draws(space, 3):
            data = json.loads(json.dumps(spec.to_dict()))
            back = space.from_dict(data)
            assert back == spec and back.key == spec.key
            assert ArchSpec.from_json(spec.to_json()) == spec
            loaded = space.load(spec.save(tmp_path / f"{spec.stem}.json"))
            assert loaded == spec and loaded.key == spec.key

    def test_describe_and_parse_round_trip(self, space: SearchSpace) -> None:
        """``describe`` writes trials.csv's ``arch`` column; ``parse`` reads it back (resume, reports)."""
        for spec in draws(space, 3):
            text = space.describe(spec)
            assert isinstance(text, str) and text and "\n" not in text, "describe() must give one line"
            back = space.parse(text)
            assert back == spec and back.key == spec.key

    def test_baseline_is_in_the_space(self, space: SearchSpace) -> None:
        """The train and final stages start from ``baseline()`` when no architecture is given."""
        baseline = getattr(space, "baseline", None)
        assert callable(baseline), "define baseline(): the hand-designed reference architecture"
        spec = baseline()
        assert isinstance(spec, ArchSpec)
        space.validate(spec)

    def test_arch_graph_is_labelled(self, space: SearchSpace) -> None:
        """Reports draw ``arch_graph``: a DAG whose nodes and edges all carry a ``label``."""
        graph = space.arch_graph(draws(space, 1)[0])
        assert isinstance(graph, nx.DiGraph) and graph.number_of_nodes() > 0
        assert nx.is_directed_acyclic_graph(graph)
        assert all("label" in d for _, d in graph.nodes(data=True)), "every node needs a label"
        assert all("label" in d for *_, d in graph.edges(data=True)), "every edge needs a label"

    # -- models ----------------------------------------------------------------------------------------
    def test_builds_a_model_that_runs_forward(
        self, space: SearchSpace, input_shape: tuple[int, int, int], num_classes: int
    ) -> None:
        """``build`` gives a plain ``nn.Module`` whose logits fit the loss: ``(N, K)`` for classification or
        ``(N, K, H, W)`` for segmentation. A size the space cannot run is refused by ``validate`` for every
        architecture alike (the evaluator checks a size once, on one architecture)."""
        c, h, w = (int(d) for d in input_shape)
        specs = (
            [space.baseline(), *draws(space, 2)]
            if callable(getattr(space, "baseline", None))
            else draws(space, 3)
        )
        refused = []
        for spec in specs:
            try:
                space.validate(spec, input_size=(h, w))
            except InvalidArchError as exc:
                refused.append(exc)
        if refused:
            assert len(refused) == len(specs), "the input size rule must not depend on the architecture"
            pytest.skip(f"{space.name} refuses {h}x{w} inputs: {refused[0]}")
        x = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(0))
        for spec in specs:
            model = space.build(spec, num_classes=num_classes, in_channels=c)
            assert isinstance(model, nn.Module) and not isinstance(model, type)
            with torch.no_grad():
                out = model.eval()(x)
            assert isinstance(out, torch.Tensor), "the model must return the logits tensor"
            assert tuple(out.shape) in ((2, num_classes), (2, num_classes, h, w)), (
                f"logits of shape {tuple(out.shape)}; "
                f"expected (2, {num_classes}) or (2, {num_classes}, {h}, {w})"
            )
            assert torch.isfinite(out).all()
            again = space.build(spec, num_classes=num_classes, in_channels=c)
            assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in model.parameters())

    def test_growth_moves_stay_in_the_space(self, space: SearchSpace) -> None:
        """``search=petridish``: the seed and every child a move makes are architectures of the space, and
        each move's sites are submodules of the parent's built network."""
        if not callable(getattr(space, "growth_moves", None)):
            pytest.skip(f"{space.name} defines no growth moves (search=petridish does not apply)")
        seed = space.growth_seed()
        space.validate(seed)
        moves = space.growth_moves(seed)
        assert moves, "the seed must be able to grow"
        net = space.build(seed, num_classes=2)
        for move in moves:
            child = space.make({**seed.values, **dict(move.params)})
            assert child != seed, f"move {move.name} changes nothing"
            for site in move.sites:
                net.get_submodule(site)  # raises AttributeError naming the missing site
