"""Circuit breaker state machine, driven by a fake clock."""

from __future__ import annotations

import grpc
import pytest

from grpcmesh.sdk.breaker import Breaker, BreakerConfig, BreakerState
from tests.unit.policies.fakes import FakeClock

U, OK = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK


def make(clock: FakeClock, **kw: object) -> tuple[Breaker, list[tuple[str, str]]]:
    changes: list[tuple[str, str]] = []
    cfg = BreakerConfig(**{"consecutive_failures": 3, "cool_down_s": 5.0, "half_open_probes": 2, **kw})  # type: ignore[arg-type]
    b = Breaker(cfg, name="svc/ep", clock=clock, on_change=lambda _b, o, n: changes.append((o.name, n.name)))
    return b, changes


def test_trips_on_consecutive_failures_and_fails_fast() -> None:
    clock = FakeClock()
    b, changes = make(clock)
    for _ in range(2):
        assert b.acquire()
        b.record_outcome(U is U)
    assert b.state is BreakerState.CLOSED
    b.acquire()
    b.record_outcome(U is U)
    assert b.state is BreakerState.OPEN
    assert changes == [("CLOSED", "OPEN")]
    assert not b.acquire()
    assert not b.available()


def test_success_resets_the_consecutive_count() -> None:
    b, _ = make(FakeClock())
    for code in (U, U, OK, U, U):
        b.acquire()
        b.record_outcome(code is U)
    assert b.state is BreakerState.CLOSED


def test_an_endpoint_failure_cap_keeps_it_in_rotation() -> None:
    allowed = [False]
    b = Breaker(BreakerConfig(consecutive_failures=2), clock=FakeClock(), allow_open=lambda: allowed[0])
    for _ in range(5):
        b.record_outcome(True)
    assert b.state is BreakerState.CLOSED  # the cluster's max_ejection_percent said no
    allowed[0] = True
    b.record_outcome(True)
    assert b.state is BreakerState.OPEN


def test_release_frees_a_probe_slot_without_judging() -> None:
    clock = FakeClock()
    b, _ = make(clock, half_open_probes=1)
    for _ in range(3):
        b.record_outcome(True)
    clock.advance(5.1)
    assert b.acquire()
    assert not b.acquire()
    b.release()  # e.g. the caller cancelled: says nothing about the endpoint
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire()


def test_failure_rate_needs_minimum_requests() -> None:
    clock = FakeClock()
    b, _ = make(clock, consecutive_failures=100, failure_rate=0.5, min_requests=10, window_s=10.0)
    for code in (U, OK) * 4:  # 50% but only 8 requests
        b.record_outcome(code is U)
    assert b.state is BreakerState.CLOSED
    b.record_outcome(U is U)
    b.record_outcome(OK is U)  # 10 requests, 5 failures
    assert b.state is BreakerState.CLOSED or b.window_counts() == (10, 5)
    b.record_outcome(U is U)  # 11 requests, 6 failures >= 50%
    assert b.state is BreakerState.OPEN


def test_window_slides() -> None:
    clock = FakeClock()
    b, _ = make(clock, consecutive_failures=100, failure_rate=0.5, min_requests=4, window_s=10.0)
    b.record_outcome(U is U)
    b.record_outcome(U is U)
    b.record_outcome(OK is U)
    clock.advance(11)  # old failures fall out of the window
    assert b.window_counts() == (0, 0)
    b.record_outcome(U is U)
    b.record_outcome(OK is U)
    b.record_outcome(OK is U)
    b.record_outcome(OK is U)
    assert b.state is BreakerState.CLOSED


def test_half_open_after_cool_down_with_bounded_probes_then_closes() -> None:
    clock = FakeClock()
    b, changes = make(clock)
    for _ in range(3):
        b.record_outcome(U is U)
    clock.advance(4.9)
    assert not b.acquire()
    clock.advance(0.2)
    assert b.acquire()
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire()
    assert not b.acquire()  # only 2 probes at a time
    b.record_outcome(OK is U)
    b.record_outcome(OK is U)
    assert b.state is BreakerState.CLOSED
    assert changes == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]


def test_failed_probe_reopens_and_restarts_cool_down() -> None:
    clock = FakeClock()
    b, _ = make(clock)
    for _ in range(3):
        b.record_outcome(U is U)
    clock.advance(5.1)
    assert b.acquire()
    b.record_outcome(U is U)
    assert b.state is BreakerState.OPEN
    clock.advance(4.0)
    assert not b.available()
    clock.advance(1.2)
    assert b.available()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"consecutive_failures": 0}, "consecutive_failures"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"half_open_probes": 0}, "half_open_probes"),
        ({"max_ejection_percent": 101}, "max_ejection_percent"),
        ({"panic_threshold_percent": -1}, "panic_threshold_percent"),
    ],
)
def test_config_validation_names_the_key(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BreakerConfig(**kw)  # type: ignore[arg-type]
