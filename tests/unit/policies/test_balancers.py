"""Round robin and power-of-two-choices over in-flight x peak EWMA."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from grpcmesh.sdk.balance import LoadStats, P2CEwma, RoundRobin, make_balancer
from tests.unit.policies.fakes import Candidate, FakeClock


def test_round_robin_cycles() -> None:
    clock = FakeClock()
    cands = [Candidate(n, clock) for n in "abc"]
    rr = RoundRobin()
    assert [rr.pick(cands).name for _ in range(6)] == list("abcabc")


def test_p2c_prefers_less_loaded() -> None:
    clock = FakeClock()
    fast = Candidate("fast", clock, ewma=0.001)
    slow = Candidate("slow", clock, ewma=0.050)
    busy = Candidate("busy", clock, ewma=0.001, in_flight=100)
    p2c = P2CEwma(random.Random(1))
    picks = Counter(p2c.pick([fast, slow, busy]).name for _ in range(3000))
    assert picks["fast"] > 1800  # wins every comparison it takes part in (2 of 3 pairs)
    assert picks["slow"] > picks["busy"]  # 50 ms x 1 beats 1 ms x 101


def test_p2c_spreads_equal_endpoints() -> None:
    clock = FakeClock()
    cands = [Candidate(n, clock) for n in "abcd"]
    p2c = P2CEwma(random.Random(7))
    picks = Counter(p2c.pick(cands).name for _ in range(4000))
    assert min(picks.values()) > 700


def test_single_candidate() -> None:
    clock = FakeClock()
    only = Candidate("only", clock)
    assert P2CEwma().pick([only]) is only


def test_peak_ewma_adopts_peaks_and_decays() -> None:
    clock = FakeClock()
    s = LoadStats(tau=10.0, initial=0.01, clock=clock)
    s.observe(0.5)
    assert s.ewma == 0.5  # a slow response is adopted at once
    clock.advance(10.0)
    s.observe(0.01)
    assert 0.01 < s.ewma < 0.5 * 0.5  # then decays towards fast responses
    # an idle endpoint's cost decays too, so it gets tried again
    before = s.cost
    clock.advance(30.0)
    assert s.cost < before / 10


def test_cost_counts_in_flight() -> None:
    s = LoadStats(initial=0.01, clock=FakeClock())
    s.in_flight = 3
    assert s.cost == pytest.approx(0.04)


def test_unknown_balancer_names_choices() -> None:
    with pytest.raises(ValueError, match="round_robin"):
        make_balancer("random")
