"""Contract suites for every plug-in kind, importable by users for their own plug-ins (``optuna.testing``'s
pattern): subclass the suite, provide the fixture that builds your implementation, and pytest runs every
rule the search relies on against it. The project's own implementations run the same suites, discovered
from ``conf/`` (``tests/contracts``).

Suites, the plug-in each checks, and the fixtures a subclass provides:

* :class:`SearchSpaceContract`: ``conf/search_space``; ``space`` (optional ``input_shape``, ``num_classes``).
* :class:`StrategyContract`: ``conf/search``'s ``strategy:``; ``strategy`` and ``context``
  (:func:`search_context` builds one from a composed config).
* :class:`SamplerContract`, :class:`ImprovingSamplerContract`: ``conf/search``'s ``sampler:``;
  ``make_sampler`` (``seed -> sampler``). The second adds the rules of a sampler that claims to search.
* :class:`EvaluatorContract`: ``conf/evaluator``; ``evaluator`` (set up) and ``spec`` (optional ``bad_spec``).
* :class:`ProfilerContract`: ``conf/hardware``; ``profiler`` (optional ``arch_key``).
* :class:`DataModuleContract`: ``conf/dataset``; ``make_datamodule`` (no arguments, a fresh one per call).
* :class:`DifferentiableSupernetContract`: a space's ``mixed_supernet``; ``supernet`` and ``space``
  (optional ``input_shape``).
* :class:`ElasticSupernetContract`: a space's ``supernet``; ``supernet`` (optional ``input_shape``).
* :class:`RunSinkContract`: ``conf/logger``'s ``run_sink:``; ``sink``.

Optional fixtures have defaults in the suite; override them in your subclass (a class's own fixture wins
over a module's or a conftest's of the same name).

Example (``docs/plugins.md`` has more)::

    from hwnas.testing import SearchSpaceContract

    class TestMySpace(SearchSpaceContract):
        @pytest.fixture
        def space(self):
            return MySpace()
"""

from hwnas.testing.datamodules import DataModuleContract
from hwnas.testing.evaluators import EvaluatorContract
from hwnas.testing.logger_sinks import RunSinkContract
from hwnas.testing.profilers import ProfilerContract
from hwnas.testing.samplers import ImprovingSamplerContract, SamplerContract
from hwnas.testing.spaces import SearchSpaceContract
from hwnas.testing.strategies import StrategyContract, search_context
from hwnas.testing.supernets import DifferentiableSupernetContract, ElasticSupernetContract

__all__ = [
    "DataModuleContract",
    "DifferentiableSupernetContract",
    "ElasticSupernetContract",
    "EvaluatorContract",
    "ImprovingSamplerContract",
    "ProfilerContract",
    "RunSinkContract",
    "SamplerContract",
    "SearchSpaceContract",
    "StrategyContract",
    "search_context",
]
