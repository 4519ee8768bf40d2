"""A standby that takes the lock but cannot resume (its database just restarted) lets the lock go.

Found by the multi-host tests (tests/cluster): after a PostgreSQL restart the standby's
pooled connection was broken, resume() raised, and the instance kept the lock without
driving any saga, so no orchestrator ever took over.
"""

from __future__ import annotations

from typing import Any

from grpcmesh.services.saga.main import _activate
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
