"""The micro-batch group rule: how a global batch splits into groups and the groups over
ranks. It depends on the batch size and ``groups`` only, never on the number of ranks, so
every rank count computes the same per-group gradients.

>>> group_bounds(10, 4)
[(0, 2), (2, 5), (5, 7), (7, 10)]
>>> [list(owned_groups(8, 3, r)) for r in range(3)]
[[0, 1], [2, 3, 4], [5, 6, 7]]
"""
from __future__ import annotations

from dataclasses import dataclass


def group_bounds(n: int, groups: int) -> list[tuple[int, int]]:
    """Positions [start, stop) in a batch of ``n`` samples of each of the ``groups``
    groups: group g holds positions floor(g n / G) to floor((g + 1) n / G), so sizes differ
    by at most one and a batch smaller than G leaves some groups empty."""
    return [(g * n // groups, (g + 1) * n // groups) for g in range(groups)]


def owned_groups(groups: int, size: int, rank: int) -> range:
    """The groups rank ``rank`` of ``size`` computes: a contiguous run, floor(r G / N) to
    floor((r + 1) G / N), so rank order is group order."""
    return range(rank * groups // size, (rank + 1) * groups // size)


@dataclass
class StepPlan:
    """One global batch's groups as one rank sees them.

    ``n``: the batch's samples; ``mine``: (group index, start, stop) of this rank's
    non-empty groups, in group order; ``counts``: how many non-empty groups each rank
    holds (every rank knows all counts, so the reduction needs no extra message)."""

    n: int
    mine: list[tuple[int, int, int]]
    counts: list[int]


def plan_step(n: int, groups: int, size: int, rank: int) -> StepPlan:
    """The plan of a batch of ``n`` samples split into ``groups`` groups over ``size`` ranks.

    >>> plan_step(5, 4, 2, 1)
    StepPlan(n=5, mine=[(2, 2, 3), (3, 3, 5)], counts=[2, 2])
    """
    bounds = group_bounds(n, groups)
    counts = [sum(1 for g in owned_groups(groups, size, r) if bounds[g][1] > bounds[g][0])
              for r in range(size)]
    mine = [(g, *bounds[g]) for g in owned_groups(groups, size, rank)
            if bounds[g][1] > bounds[g][0]]
    return StepPlan(n, mine, counts)
