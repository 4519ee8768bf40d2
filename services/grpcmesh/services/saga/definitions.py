"""The Python API to declare a saga: ordered steps, each a gRPC call through the mesh.

>>> from grpcmesh.services.saga import Call, StepRetry, SagaDefinition, Step
>>> order = SagaDefinition("order", steps=(
...     Step("reserve",
...          action=Call("inventory", "/shop.Inventory/Reserve",
...                      lambda ctx: {"sku": ctx.input["sku"], "order": ctx.saga_id}),
...          compensate=Call("inventory", "/shop.Inventory/Release",
...                          lambda ctx: {"reservation": ctx.result["id"]}),
...          retry=StepRetry(attempts=5, initial=0.1, maximum=2.0)),
... ), required_input=("sku",))
>>> order.step_names()
('reserve',)

A request builder gets a :class:`StepContext` (saga input, results of the earlier steps,
and for a compensation the step's own result) and returns a protobuf message — then
``Call.response`` is the response message type — or a JSON-able dict sent as JSON bytes.
The response becomes the step's result dict (``Call.result`` can reshape it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

__all__ = [
    "Call",
    "SagaDefinition",
    "Step",
    "StepContext",
    "StepRetry",
    "definitions_by_name",
    "load_definitions",
]

_DEFAULT_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a request builder sees."""

    saga_id: str
    step: str
    input: Mapping[str, Any]
    results: Mapping[str, Mapping[str, Any]]
    result: Mapping[str, Any] = field(default_factory=dict)
    """The step's own result (compensations only; empty if the action's outcome is unknown)."""


@dataclass(frozen=True, slots=True)
class StepRetry:
    """Attempts of one call: exponential backoff from ``initial`` to ``maximum`` seconds plus jitter."""

    attempts: int = 3
    initial: float = 0.2
    maximum: float = 5.0
    jitter: float = 0.2
    retryable: frozenset[grpc.StatusCode] = _DEFAULT_RETRYABLE

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"StepRetry.attempts must be >= 1, got {self.attempts}")
        if self.initial < 0 or self.maximum < self.initial or self.jitter < 0:
            raise ValueError("StepRetry needs 0 <= initial <= maximum and jitter >= 0")


@dataclass(frozen=True, slots=True)
class Call:
    """One unary gRPC call: ``service`` is the mesh target, ``method`` the full ``/pkg.Svc/Method``."""

    service: str
    method: str
    request: Callable[[StepContext], Any]
    response: type[Any] | None = None
    """Protobuf response type; None means the response is a JSON object."""
    result: Callable[[Any], dict[str, Any]] | None = None
    """Response → result dict; default: the JSON object, or the message as a dict."""
    timeout: float = 10.0

    def __post_init__(self) -> None:
        parts = self.method.split("/")
        if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
            raise ValueError(f"Call.method must look like '/pkg.Service/Method', got {self.method!r}")
        if not self.service:
            raise ValueError("Call.service must name the mesh target")


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    action: Call
    compensate: Call | None = None
    retry: StepRetry = field(default_factory=StepRetry)
    compensation_retry: StepRetry | None = None
    """Defaults to ``retry``."""

    @property
    def undo_retry(self) -> StepRetry:
        return self.compensation_retry or self.retry


@dataclass(frozen=True, slots=True)
class SagaDefinition:
    name: str
    steps: tuple[Step, ...]
    required_input: tuple[str, ...] = ()
    """Top-level input keys Start must carry (else INVALID_ARGUMENT naming ``input.<key>``)."""

    def __post_init__(self) -> None:
        if not self.name or not self.steps:
            raise ValueError("SagaDefinition needs a name and at least one step")
        names = self.step_names()
        if len(set(names)) != len(names) or not all(names) or any("/" in n for n in names):
            raise ValueError(f"saga {self.name!r}: step names must be unique, non-empty, without '/'")

    def step_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps)


def definitions_by_name(definitions: Iterable[SagaDefinition]) -> dict[str, SagaDefinition]:
    found: dict[str, SagaDefinition] = {}
    for d in definitions:
        if d.name in found:
            raise ValueError(f"saga definition {d.name!r} registered twice")
        found[d.name] = d
    return found


def load_definitions(spec: str) -> dict[str, SagaDefinition]:
    """``module:attr`` → definitions; attr is a definition, an iterable of them, or a factory of either."""
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"--definitions wants module:attr, got {spec!r}")
    value: Any = getattr(importlib.import_module(module), attr)
    if callable(value) and not isinstance(value, SagaDefinition):
        value = value()
    items = (
        [value] if isinstance(value, SagaDefinition) else list(value) if isinstance(value, Iterable) else []
    )
    if not items or not all(isinstance(d, SagaDefinition) for d in items):
        raise ValueError(f"{spec} must be SagaDefinition(s), got {type(value).__name__}")
    return definitions_by_name(items)
