"""The front and its hypervolume as points arrive one at a time (the search's live view, the HTML report).

A live search has no true front to take a reference point from, so the reference is the *nadir of every
point seen* (the worst value of each objective among all feasible evaluated architectures), pushed out by
``margin`` of that objective's observed range. It only ever moves outwards, and points are only ever
added, so the hypervolume never decreases while a search runs; it is 0 until the points seen differ in both
objectives. The front itself is :func:`~hwnas.pareto.pareto_mask`'s and the area
:func:`~hwnas.pareto.hypervolume_2d`'s: this module keeps only the running state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hwnas.pareto import hypervolume_2d, pareto_mask, to_minimisation

#: How far beyond the nadir the reference point lies, as a fraction of each objective's observed range.
MARGIN = 0.1


class FrontTracker:
    """The non-dominated set of the points added so far, in the objectives' own units.

    Args:
        directions: ``"maximize"`` / ``"minimize"`` per objective.
        margin: The reference point's distance beyond the nadir, as a fraction of the observed range.
    """

    def __init__(self, directions: Sequence[str], *, margin: float = MARGIN) -> None:
        self.directions = [str(d) for d in directions]
        self.margin = float(margin)
        m = len(self.directions)
        self.front = np.empty((0, m))
        self.points = 0
        self._lo = np.full(m, np.inf)  # per objective, in minimisation terms (maximised ones negated)
        self._hi = np.full(m, -np.inf)

    @property
    def size(self) -> int:
        """Points on the front (two architectures with identical objectives both count)."""
        return int(self.front.shape[0])

    def add(self, values: Sequence[float]) -> bool:
        """Add one feasible point; return whether the front changed. Non-finite points are ignored."""
        p = np.asarray(values, dtype=float).reshape(1, -1)
        if p.shape[1] != len(self.directions) or not all(math.isfinite(v) for v in p[0]):
            return False
        self.points += 1
        q = to_minimisation(p, self.directions)[0]
        self._lo, self._hi = np.minimum(self._lo, q), np.maximum(self._hi, q)
        both = np.vstack([self.front, p])
        mask = pareto_mask(both, self.directions)
        if not mask[-1]:
            return False
        self.front = both[mask]
        return True

    def reference(self) -> np.ndarray | None:
        """The reference point in the objectives' units (None before the first point)."""
        if not self.points:
            return None
        ref_min = self._hi + self.margin * (self._hi - self._lo)
        return to_minimisation(ref_min.reshape(1, -1), self.directions)[0]  # negating twice restores units

    def hypervolume(self) -> float | None:
        """Area dominated by the front up to :meth:`reference`; None unless there are two objectives."""
        ref = self.reference()
        if ref is None or len(self.directions) != 2:
            return None
        return hypervolume_2d(self.front, ref, self.directions)
