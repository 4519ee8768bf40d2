"""A sliding-window counter: the shared bookkeeping of the breaker and the retry budget.

Time is cut into ``buckets`` slices of ``window_s / buckets``; each slice holds
a few integer counters and is reset lazily when its slot is reused, so adding
is O(1) with no allocation and summing is O(buckets). The clock is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["SlidingCounter"]


class SlidingCounter:
    __slots__ = ("_bucket_s", "_buckets", "_clock", "_n", "_width")

    def __init__(
        self, window_s: float, width: int, *, buckets: int = 10, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._n = buckets
        self._width = width
        self._bucket_s = window_s / buckets
        self._clock = clock
        # each slot: [slice index, counter 0, counter 1, ...]
        self._buckets: list[list[int]] = [[-1] + [0] * width for _ in range(buckets)]

    def add(self, counter: int, amount: int = 1) -> None:
        idx = int(self._clock() / self._bucket_s)
        slot = self._buckets[idx % self._n]
        if slot[0] != idx:
            slot[0] = idx
            for i in range(1, self._width + 1):
                slot[i] = 0
        slot[counter + 1] += amount

    def totals(self) -> list[int]:
        """Sum of each counter over the window."""
        current = int(self._clock() / self._bucket_s)
        out = [0] * self._width
        for slot in self._buckets:
            if current - slot[0] < self._n:
                for i in range(self._width):
                    out[i] += slot[i + 1]
        return out

    def reset(self) -> None:
        for slot in self._buckets:
            slot[0] = -1
