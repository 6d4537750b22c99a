"""Our own Optuna samplers for fixed categorical (architecture) spaces.

Select one with ``search=<name>``; each ``conf/search/<name>.yaml`` instantiates it as ``sampler:``.
"""

from __future__ import annotations

from hwnas.search.samplers.local_search import ParetoLocalSearchSampler
from hwnas.search.samplers.nsga2 import UniqueChildNSGAIISampler
from hwnas.search.samplers.regularized_evolution import RegularizedEvolutionSampler
from hwnas.search.samplers.surrogate_pareto import SurrogateParetoSampler

__all__ = [
    "ParetoLocalSearchSampler",
    "RegularizedEvolutionSampler",
    "SurrogateParetoSampler",
    "UniqueChildNSGAIISampler",
]
