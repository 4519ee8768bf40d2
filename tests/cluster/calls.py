"""Reading the load generators' call logs by time window, for the invariants."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Call", "Window", "read_calls"]


@dataclass(frozen=True)
class Call:
    t0: float
    t1: float
    kind: str
    code: str
    by: str
    key: str = ""

    @property
    def ok(self) -> bool:
        return self.code == "OK"


def read_calls(paths: list[Path]) -> list[Call]:
    calls = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if line.endswith("}"):  # a line still being written is skipped
                calls.append(Call(**json.loads(line)))
    return calls


@dataclass
class Window:
    """The calls that STARTED in ``[start, end)``."""

    calls: list[Call]

    @classmethod
    def of(cls, paths: list[Path], start: float, end: float) -> Window:
        return cls([c for c in read_calls(paths) if start <= c.t0 < end])

    def kind(self, *kinds: str) -> list[Call]:
        return [c for c in self.calls if c.kind in kinds]

    def failed(self, *kinds: str) -> list[Call]:
        return [c for c in self.kind(*kinds) if not c.ok]

    def served_by(self, *kinds: str) -> Counter[str]:
        return Counter(c.by for c in self.kind(*kinds) if c.ok)

    def codes(self, *kinds: str) -> Counter[str]:
        return Counter(c.code for c in self.kind(*kinds))

    def summary(self) -> str:
        return f"{len(self.calls)} calls, codes {dict(self.codes(*{c.kind for c in self.calls}))}"
