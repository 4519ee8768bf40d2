"""The saga's persisted state: immutable records and the transitions between them.

A :class:`SagaRecord` is replaced (never mutated) on every transition and its
``version`` bumped, so the store can commit each one with a compare-and-set and
watchers can tell transitions apart. Pure data: no I/O, no gRPC.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "InvalidRequest",
    "SagaEvent",
    "SagaNotFound",
    "SagaRecord",
    "SagaStatus",
    "StepRecord",
    "StepStatus",
    "WrongState",
    "describe",
    "step_key",
]


class SagaStatus(enum.Enum):
    RUNNING = 1
    COMPLETED = 2
    COMPENSATING = 3
    COMPENSATED = 4
    FAILED = 5
    ABORTED = 6


class StepStatus(enum.Enum):
    PENDING = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    COMPENSATING = 5
    COMPENSATED = 6
    COMPENSATION_FAILED = 7


ACTIVE = frozenset({SagaStatus.RUNNING, SagaStatus.COMPENSATING})
TERMINAL = frozenset({SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.FAILED, SagaStatus.ABORTED})
# Steps whose action may have taken effect and so must be undone, newest first.
NEEDS_UNDO = frozenset(
    {StepStatus.SUCCEEDED, StepStatus.RUNNING, StepStatus.COMPENSATING, StepStatus.COMPENSATION_FAILED}
)


class SagaNotFound(LookupError):
    """No saga with this id."""


class WrongState(Exception):
    """An operator action the saga's current status does not allow."""


class InvalidRequest(ValueError):
    """A request field is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class StepRecord:
    name: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    compensation_attempts: int = 0
    result: dict[str, Any] | None = None
    error: str = ""
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SagaRecord:
    saga_id: str
    definition: str
    idempotency_key: str
    input: dict[str, Any]
    steps: tuple[StepRecord, ...]
    status: SagaStatus = SagaStatus.RUNNING
    error: str = ""
    abort_reason: str = ""
    created_at: float = field(default_factory=time.time)
    updated_at: float = 0.0
    version: int = 1

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def results(self) -> dict[str, dict[str, Any]]:
        """Step name → result of every step that succeeded (inputs of later steps)."""
        return {s.name: s.result for s in self.steps if s.result is not None}

    def next_forward(self) -> int | None:
        """Index of the first step not yet SUCCEEDED, or None when all are."""
        for i, step in enumerate(self.steps):
            if step.status is not StepStatus.SUCCEEDED:
                return i
        return None

    def next_undo(self) -> int | None:
        """Index of the newest step that may have taken effect and is not compensated yet."""
        for i in range(len(self.steps) - 1, -1, -1):
            if self.steps[i].status in NEEDS_UNDO:
                return i
        return None

    def evolve(self, **changes: Any) -> SagaRecord:
        """The next version of this record (``updated_at`` now)."""
        return replace(self, **changes, version=self.version + 1, updated_at=time.time())

    def with_step(self, index: int, **changes: Any) -> SagaRecord:
        """The next version with step ``index`` changed (and any saga-level ``saga_`` fields)."""
        saga_changes = {k[5:]: changes.pop(k) for k in list(changes) if k.startswith("saga_")}
        steps = list(self.steps)
        steps[index] = replace(steps[index], **changes, updated_at=time.time())
        return self.evolve(steps=tuple(steps), **saga_changes)


def step_key(saga_id: str, step: str, compensate: bool = False) -> str:
    """The ``x-idempotency-key`` of a step's action (or compensation): the same on every attempt."""
    return f"{saga_id}/{step}/compensate" if compensate else f"{saga_id}/{step}"


_UNDO_STATUSES = frozenset({StepStatus.COMPENSATING, StepStatus.COMPENSATED, StepStatus.COMPENSATION_FAILED})


@dataclass(frozen=True, slots=True)
class SagaEvent:
    """One persisted transition, as the step history shows it."""

    version: int
    at: float
    status: SagaStatus
    step: str = ""
    step_status: StepStatus | None = None
    attempt: int = 0
    error: str = ""


def describe(before: SagaRecord | None, after: SagaRecord) -> SagaEvent:
    """The history entry of the transition ``before`` → ``after`` (``before`` None: created)."""
    changed = [
        (new, old)
        for new, old in zip(after.steps, before.steps if before else (), strict=False)
        if new != old
    ]
    if not changed:  # a saga-level transition: say what changed, if it was the error or an abort
        note = ""
        if before is not None and after.abort_reason != before.abort_reason:
            note = f"abort requested: {after.abort_reason}"
        elif before is not None and after.error != before.error:
            note = after.error
        return SagaEvent(after.version, after.updated_at, after.status, error=note)
    step = changed[0][0]
    attempt = step.compensation_attempts if step.status in _UNDO_STATUSES else step.attempts
    return SagaEvent(
        after.version, after.updated_at, after.status, step.name, step.status, attempt, step.error
    )
