"""SagaRecord → ``grpcmesh.api.v1.Saga`` (the only place that knows both shapes)."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from grpcmesh.api.v1 import saga_pb2 as pb
from grpcmesh.services.saga.domain import SagaEvent, SagaRecord, SagaStatus, StepRecord, step_key

__all__ = ["history_to_proto", "status_from_proto", "to_proto"]


def _struct(value: dict[str, Any] | None) -> struct_pb2.Struct | None:
    if value is None:
        return None
    out = struct_pb2.Struct()
    out.update(value)
    return out


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def _step(saga_id: str, step: StepRecord) -> pb.SagaStep:
    return pb.SagaStep(
        name=step.name,
        status=f"STEP_STATUS_{step.status.name}",
        attempts=step.attempts,
        result=_struct(step.result),
        error=step.error,
        compensation_attempts=step.compensation_attempts,
        updated_at=_timestamp(step.updated_at) if step.updated_at else None,
        idempotency_key=step_key(saga_id, step.name),
    )


def to_proto(record: SagaRecord) -> pb.Saga:
    return pb.Saga(
        saga_id=record.saga_id,
        definition=record.definition,
        idempotency_key=record.idempotency_key,
        status=f"SAGA_STATUS_{record.status.name}",
        steps=[_step(record.saga_id, s) for s in record.steps],
        input=_struct(record.input),
        error=record.error,
        created_at=_timestamp(record.created_at),
        updated_at=_timestamp(record.updated_at),
        version=record.version,
        abort_reason=record.abort_reason,
    )


def history_to_proto(saga_id: str, events: list[SagaEvent]) -> pb.SagaHistory:
    return pb.SagaHistory(
        saga_id=saga_id,
        events=[
            pb.SagaEvent(
                version=e.version,
                at=_timestamp(e.at),
                status=f"SAGA_STATUS_{e.status.name}",
                step=e.step,
                step_status=f"STEP_STATUS_{e.step_status.name}"
                if e.step_status
                else "STEP_STATUS_UNSPECIFIED",
                attempt=e.attempt,
                error=e.error,
            )
            for e in events
        ],
    )


def status_from_proto(value: int) -> SagaStatus | None:
    """None for UNSPECIFIED (all); ValueError for a number no SagaStatus has."""
    return None if value == 0 else SagaStatus(value)
