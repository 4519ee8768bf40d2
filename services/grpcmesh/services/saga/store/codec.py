"""What both store adapters share: the schema, SagaRecord ⇄ JSON document, SagaEvent ⇄ row."""

from __future__ import annotations

import json
from typing import Any

from grpcmesh.services.saga.domain import (
    SagaEvent,
    SagaRecord,
    SagaStatus,
    StepRecord,
    StepStatus,
    describe,
)

__all__ = [
    "EVENT_COLUMNS",
    "creation_rows",
    "dumps",
    "event_from_row",
    "event_row",
    "insert_event",
    "loads",
    "schema",
]

EVENT_COLUMNS = "saga_id, version, at, status, step, step_status, attempt, error"


def schema(*, serial_key: str, bigint: str, double: str) -> str:
    """The tables of both adapters; only the column types differ between the SQL dialects."""
    return f"""
CREATE TABLE IF NOT EXISTS sagas (
    position {serial_key},
    saga_id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    version {bigint} NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sagas_status ON sagas (status, position);
CREATE TABLE IF NOT EXISTS saga_events (
    saga_id TEXT NOT NULL,
    version {bigint} NOT NULL,
    at {double} NOT NULL,
    status TEXT NOT NULL,
    step TEXT NOT NULL,
    step_status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    error TEXT NOT NULL,
    PRIMARY KEY (saga_id, version)
);
"""


def insert_event(placeholder: str) -> str:
    """The INSERT of one history row with the driver's parameter placeholder."""
    return f"INSERT INTO saga_events ({EVENT_COLUMNS}) VALUES ({', '.join([placeholder] * 8)})"


EventRow = tuple[str, int, float, str, str, str, int, str]


def event_row(saga_id: str, event: SagaEvent) -> EventRow:
    step_status = event.step_status.name if event.step_status else ""
    return (
        saga_id,
        event.version,
        event.at,
        event.status.name,
        event.step,
        step_status,
        event.attempt,
        event.error,
    )


def creation_rows(record: SagaRecord, events: tuple[SagaEvent, ...]) -> list[EventRow]:
    """The history rows a new saga is created with: ``events``, or its creation event alone
    (the port's :meth:`SagaStore.create` contract, for every adapter)."""
    return [event_row(record.saga_id, e) for e in events or (describe(None, record),)]


def event_from_row(row: Any) -> SagaEvent:
    _, version, at, status, step, step_status, attempt, error = row
    return SagaEvent(
        int(version),
        float(at),
        SagaStatus[status],
        step,
        StepStatus[step_status] if step_status else None,
        int(attempt),
        error,
    )


def dumps(record: SagaRecord) -> str:
    steps = [
        {
            "name": s.name,
            "status": s.status.name,
            "attempts": s.attempts,
            "compensation_attempts": s.compensation_attempts,
            "result": s.result,
            "error": s.error,
            "updated_at": s.updated_at,
        }
        for s in record.steps
    ]
    doc: dict[str, Any] = {
        "saga_id": record.saga_id,
        "definition": record.definition,
        "idempotency_key": record.idempotency_key,
        "input": record.input,
        "steps": steps,
        "status": record.status.name,
        "error": record.error,
        "abort_reason": record.abort_reason,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "version": record.version,
    }
    return json.dumps(doc, separators=(",", ":"))


def loads(text: str) -> SagaRecord:
    doc = json.loads(text)
    steps = tuple(
        StepRecord(
            name=s["name"],
            status=StepStatus[s["status"]],
            attempts=s["attempts"],
            compensation_attempts=s["compensation_attempts"],
            result=s["result"],
            error=s["error"],
            updated_at=s["updated_at"],
        )
        for s in doc["steps"]
    )
    return SagaRecord(
        saga_id=doc["saga_id"],
        definition=doc["definition"],
        idempotency_key=doc["idempotency_key"],
        input=doc["input"],
        steps=steps,
        status=SagaStatus[doc["status"]],
        error=doc["error"],
        abort_reason=doc["abort_reason"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        version=doc["version"],
    )
