"""An injected step caller for engine unit tests: scripted outcomes, a call log, blocking calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpcmesh.services.saga.definitions import Call, SagaDefinition, Step, StepRetry
from grpcmesh.services.saga.domain import SagaRecord
from grpcmesh.services.saga.engine import Orchestrator
from grpcmesh.services.saga.store.sqlite import SQLiteSagaStore

FAST = StepRetry(attempts=3, initial=0.0, maximum=0.0, jitter=0.0)
Outcome = dict[str, Any] | Exception


@dataclass
class Logged:
    method: str
    key: str
    request: dict[str, Any]


@dataclass
class FakeCaller:
    """``script[method]`` is a list of outcomes used in turn (the last one repeats)."""

    script: dict[str, list[Outcome]] = field(default_factory=dict)
    calls: list[Logged] = field(default_factory=list)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    entered: dict[str, asyncio.Event] = field(default_factory=dict)
    on_call: Callable[[Logged], None] | None = None

    def block(self, method: str) -> asyncio.Event:
        """Calls of ``method`` wait until the returned event is set; ``entered[method]`` tells one began."""
        self.entered[method] = asyncio.Event()
        self.gates[method] = asyncio.Event()
        return self.gates[method]

    async def __call__(self, call: Call, request: Any, idempotency_key: str) -> dict[str, Any]:
        logged = Logged(call.method, idempotency_key, dict(request))
        self.calls.append(logged)
        if self.on_call is not None:
            self.on_call(logged)
        if call.method in self.gates:
            self.entered[call.method].set()
            await self.gates[call.method].wait()
        outcomes = self.script.get(call.method, [])
        outcome: Outcome = outcomes.pop(0) if len(outcomes) > 1 else (outcomes[0] if outcomes else {})
        if isinstance(outcome, Exception):
            raise outcome
        return {"method": call.method, **outcome}

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]


def _step(name: str, service: str, verb: str, undo: str | None) -> Step:
    return Step(
        name,
        action=Call(
            service, f"/shop.{service}/{verb}", lambda ctx: {"saga": ctx.saga_id, "prev": dict(ctx.results)}
        ),
        compensate=None
        if undo is None
        else Call(service, f"/shop.{service}/{undo}", lambda ctx: {"undo": dict(ctx.result)}),
        retry=FAST,
    )


ORDER = SagaDefinition(
    "order",
    steps=(
        _step("reserve", "Inventory", "Reserve", "Release"),
        _step("charge", "Payments", "Charge", "Refund"),
        _step("ship", "Shipping", "Ship", None),
    ),
    required_input=("sku",),
)


def orchestrator(tmp_path: Path, caller: FakeCaller) -> tuple[Orchestrator, SQLiteSagaStore]:
    store = SQLiteSagaStore(str(tmp_path / "sagas.db"))
    return Orchestrator(store, {"order": ORDER}, caller), store


async def until_terminal(orch: Orchestrator, saga_id: str) -> list[SagaRecord]:
    """Every record Watch yields, up to the terminal one (bounded by the test timeout)."""
    seen: list[SagaRecord] = []
    stream: AsyncIterator[SagaRecord] = orch.watch(saga_id)
    async for rec in stream:
        seen.append(rec)
    return seen
