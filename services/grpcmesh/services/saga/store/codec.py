"""SagaRecord ⇄ JSON document, shared by the store adapters."""

from __future__ import annotations

import json
from typing import Any

from grpcmesh.services.saga.domain import SagaRecord, SagaStatus, StepRecord, StepStatus

__all__ = ["dumps", "loads"]


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
