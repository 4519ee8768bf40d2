"""Taking over and stepping down across a PostgreSQL restart, found by the multi-host tests.

* A standby that takes the lock but cannot resume (its pooled connection broken by the
  restart) lets the lock go: it used to keep it without driving any saga, so no
  orchestrator ever took over.
* An active instance that lost the lock refuses Starts at once: it used to accept them while
  draining, creating sagas nobody drove (the new active one had already resumed).
"""

from __future__ import annotations

import asyncio
from typing import Any

from grpcmesh.services.saga.main import _activate, _lead
from grpcmesh.services.saga.standby import StandbyGate


class Lock:
    def __init__(self) -> None:
        self.held_now = False

    async def try_acquire(self) -> bool:
        self.held_now = True
        return True

    async def held(self) -> bool:
        return self.held_now

    async def release(self) -> None:
        self.held_now = False


class Resume:
    def __init__(self, outcomes: list[int | Exception]) -> None:
        self.outcomes = outcomes

    async def resume(self) -> int:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


async def test_failed_resume_releases_the_lock_and_the_next_poll_activates() -> None:
    lock, gate = Lock(), StandbyGate("grpcmesh.api.v1.SagaOrchestrator")
    orchestrator: Any = Resume([OSError("server closed the connection unexpectedly"), 2])
    assert await _activate(lock, orchestrator, gate) is False
    assert lock.held_now is False  # another instance may take it meanwhile
    assert gate.active is False
    assert await _activate(lock, orchestrator, gate) is True
    assert gate.active is True


async def test_losing_the_lock_closes_the_gate_before_the_drain() -> None:
    lock, gate, lost = Lock(), StandbyGate("grpcmesh.api.v1.SagaOrchestrator"), asyncio.Event()
    gate.active = True  # active, and the lock is already gone (held() is False)
    orchestrator: Any = Resume([])
    await asyncio.wait_for(_lead(lock, orchestrator, None, gate, lost), 10)  # type: ignore[arg-type]
    assert lost.is_set()
    assert gate.active is False  # Starts get UNAVAILABLE from here on, during the drain too
