"""Power of two choices over in-flight x peak-EWMA latency (Linkerd's balancer).

Two random candidates, keep the cheaper: near-optimal load spread at O(1) cost
and no herd behaviour, because no single "least loaded" endpoint attracts
every caller at once.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from grpcmesh.sdk.balance.base import HasLoad

__all__ = ["P2CEwma"]

T = TypeVar("T", bound=HasLoad)


class P2CEwma:
    name = "p2c_ewma"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, candidates: Sequence[T]) -> T:
        n = len(candidates)
        if n == 1:
            return candidates[0]
        i = int(self._rng.random() * n)
        j = int(self._rng.random() * (n - 1))
        if j >= i:
            j += 1
        a, b = candidates[i], candidates[j]
        return a if a.load.cost <= b.load.cost else b
