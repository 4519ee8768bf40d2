"""A settable clock and a load-carrying candidate for pure policy tests."""

from __future__ import annotations

from grpcmesh.sdk.balance import LoadStats


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Candidate:
    def __init__(self, name: str, clock: FakeClock, ewma: float = 0.01, in_flight: int = 0) -> None:
        self.name = name
        self.load = LoadStats(clock=clock, initial=ewma)
        self.load.in_flight = in_flight

    def __repr__(self) -> str:
        return self.name
