"""Round robin: each candidate in turn; the baseline and the choice for uniform backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from grpcmesh.sdk.balance.base import HasLoad

__all__ = ["RoundRobin"]

T = TypeVar("T", bound=HasLoad)


class RoundRobin:
    name = "round_robin"

    def __init__(self) -> None:
        self._next = 0

    def pick(self, candidates: Sequence[T]) -> T:
        n = len(candidates)
        i = self._next % n
        self._next = i + 1
        return candidates[i]
