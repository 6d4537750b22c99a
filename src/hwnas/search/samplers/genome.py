"""Genome operators shared by every sampler of this package (one copy, so they cannot drift apart).

A genome is a tuple of choice indices, one per parameter of a fixed, flat categorical space;
``sizes[i]`` is the number of choices of parameter ``i``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence

import numpy as np

Genome = tuple[int, ...]


def random_genome(sizes: Sequence[int], rng: np.random.RandomState) -> Genome:
    """Every parameter drawn uniformly."""
    return tuple(int(v) for v in rng.randint(0, np.asarray(sizes)))


def mutate(
    genome: Genome,
    sizes: Sequence[int],
    rng: np.random.RandomState,
    *,
    extra_prob: float = 0.0,
) -> Genome:
    """Change one parameter (to a different value) and each other one with probability ``extra_prob``.

    At least one parameter always changes, so a mutation never re-proposes its parent.
    """
    out = list(genome)
    mutable = [i for i, n in enumerate(sizes) if n > 1]
    if not mutable:
        return tuple(out)
    forced = int(mutable[rng.randint(len(mutable))])
    for i in mutable:
        if i == forced or (extra_prob > 0 and rng.rand() < extra_prob):
            shift = int(rng.randint(1, sizes[i]))  # never the current value
            out[i] = (out[i] + shift) % sizes[i]
    return tuple(out)


def uniform_crossover(a: Genome, b: Genome, rng: np.random.RandomState, *, swap_prob: float = 0.5) -> Genome:
    """Child taking each parameter from ``b`` with probability ``swap_prob``, else from ``a``."""
    take_b = rng.rand(len(a)) < swap_prob
    return tuple(int(y) if t else int(x) for x, y, t in zip(a, b, take_b, strict=True))


def neighbours(genome: Genome, sizes: Sequence[int]) -> Iterator[Genome]:
    """Every genome that differs from ``genome`` in exactly one parameter (deterministic order)."""
    for i, n in enumerate(sizes):
        for v in range(n):
            if v != genome[i]:
                yield genome[:i] + (v,) + genome[i + 1 :]


def unseen(
    propose: Callable[[], Genome],
    seen: Collection[Genome],
    *,
    tries: int = 20,
) -> Genome:
    """Call ``propose`` until it returns a genome not in ``seen`` (at most ``tries`` times).

    Returns the last proposal if every try was already seen: in a nearly exhausted space a repeat is
    better than a stalled search (the search loop tells repeats their cached values).
    """
    g = propose()
    for _ in range(tries - 1):
        if g not in seen:
            return g
        g = propose()
    return g


def crowding_distance(values: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row (larger = more isolated); extremes get ``inf``."""
    n, m = values.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(values[:, j], kind="stable")
        col = values[order, j]
        span = col[-1] - col[0]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (col[2:] - col[:-2]) / span
    return dist
