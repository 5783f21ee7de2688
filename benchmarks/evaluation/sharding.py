"""Evaluation split across the processes of a distributed run, results gathered in order."""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from mmengine.dist import all_gather_object, get_dist_info

T = TypeVar('T')


def sharded(count: int, score: Callable[[Sequence[int]], list[T]]) -> list[T]:
    """``score(positions)`` of all ``count`` positions, each rank scoring every world-size-th
    one (rank r: r, r + w, ...); every rank returns all results in position order, as one
    process scoring them all would."""
    rank, world = get_dist_info()
    mine = list(range(rank, count, world))
    results = score(mine)
    if len(results) != len(mine):
        raise RuntimeError(f'scored {len(results)} units for {len(mine)} positions')
    if world == 1:
        return results
    gathered = all_gather_object(list(zip(mine, results)))
    ordered = sorted((pair for part in gathered for pair in part), key=lambda pair: pair[0])
    return [result for _, result in ordered]
