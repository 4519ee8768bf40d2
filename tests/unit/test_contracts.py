"""Contract options the mesh relies on: idempotency levels and HTTP annotations."""

from __future__ import annotations

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from grpcmesh.api.v1 import commandbus_pb2, eventstore_pb2, querybus_pb2, saga_pb2

NO_SIDE_EFFECTS = descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS
IDEMPOTENT = descriptor_pb2.MethodOptions.IDEMPOTENT


def _method(module: object, service: str, method: str) -> descriptor_pb2.MethodOptions:
    desc = module.DESCRIPTOR.services_by_name[service].methods_by_name[method]  # type: ignore[attr-defined]
    return desc.GetOptions()


@pytest.mark.parametrize(
    ("module", "service", "method", "level"),
    [
        (eventstore_pb2, "EventStore", "Append", IDEMPOTENT),
        (eventstore_pb2, "EventStore", "ReadStream", NO_SIDE_EFFECTS),
        (eventstore_pb2, "EventStore", "ReadAll", NO_SIDE_EFFECTS),
        (eventstore_pb2, "EventStore", "Subscribe", NO_SIDE_EFFECTS),
        (commandbus_pb2, "CommandBus", "Dispatch", IDEMPOTENT),
        (querybus_pb2, "QueryBus", "Query", NO_SIDE_EFFECTS),
        (saga_pb2, "SagaOrchestrator", "Start", IDEMPOTENT),
        (saga_pb2, "SagaOrchestrator", "Get", NO_SIDE_EFFECTS),
        (saga_pb2, "SagaOrchestrator", "List", NO_SIDE_EFFECTS),
    ],
)
def test_idempotency_levels(module: object, service: str, method: str, level: int) -> None:
    assert _method(module, service, method).idempotency_level == level


def test_operator_actions_are_not_marked_retryable() -> None:
    for method in ("Retry", "Abort"):
        assert _method(saga_pb2, "SagaOrchestrator", method).idempotency_level == 0


def test_gateway_routes_are_annotated() -> None:
    rule = _method(commandbus_pb2, "CommandBus", "Dispatch").Extensions[annotations_pb2.http]
    assert (rule.post, rule.body) == ("/v1/commands", "*")
    rule = _method(saga_pb2, "SagaOrchestrator", "Get").Extensions[annotations_pb2.http]
    assert rule.get == "/v1/sagas/{saga_id}"


def test_payloads_are_any() -> None:
    assert commandbus_pb2.Command.DESCRIPTOR.fields_by_name["payload"].message_type.full_name == (
        "google.protobuf.Any"
    )
    assert querybus_pb2.QueryRequest.DESCRIPTOR.fields_by_name["payload"].message_type.full_name == (
        "google.protobuf.Any"
    )
