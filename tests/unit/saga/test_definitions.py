"""Definitions API validation, loading by ``module:attr``, the request/response codec and the wire mapping."""

from __future__ import annotations

import doctest
import json

import pytest
from google.protobuf import struct_pb2, wrappers_pb2

from grpcmesh.api.v1 import saga_pb2 as pb
from grpcmesh.services.saga import definitions
from grpcmesh.services.saga.caller import decode_result, encode_request
from grpcmesh.services.saga.definitions import Call, SagaDefinition, Step, StepRetry, load_definitions
from grpcmesh.services.saga.domain import SagaRecord, SagaStatus, StepRecord, StepStatus
from grpcmesh.services.saga.wire import to_proto


def _call(method: str = "/a.B/C", service: str = "b") -> Call:
    return Call(service, method, lambda ctx: {})


def test_module_example_runs() -> None:
    assert doctest.testmod(definitions).failed == 0


@pytest.mark.parametrize("method", ["a.B/C", "/a.B", "/a.B/", "//C", "/a.B/C/D"])
def test_call_needs_a_full_method_name(method: str) -> None:
    with pytest.raises(ValueError, match=r"/pkg\.Service/Method"):
        _call(method)


def test_call_needs_a_service() -> None:
    with pytest.raises(ValueError, match="service"):
        _call(service="")


@pytest.mark.parametrize(
    "kwargs", [{"attempts": 0}, {"initial": -1.0}, {"initial": 2.0, "maximum": 1.0}, {"jitter": -0.1}]
)
def test_retry_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="StepRetry"):
        StepRetry(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("names", [("a", "a"), ("",), ("a/b",)])
def test_step_names_are_unique_and_plain(names: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="step names"):
        SagaDefinition("s", steps=tuple(Step(n, _call()) for n in names))


def test_a_definition_needs_steps() -> None:
    with pytest.raises(ValueError, match="at least one step"):
        SagaDefinition("s", steps=())


def test_load_definitions_forms() -> None:
    loaded = load_definitions("tests.support.saga_definitions:DEFINITIONS")
    assert list(loaded) == ["order"]
    assert loaded["order"].step_names() == ("reserve", "charge", "ship")
    with pytest.raises(ValueError, match="module:attr"):
        load_definitions("no-colon")
    with pytest.raises(ValueError, match="SagaDefinition"):
        load_definitions("tests.support.saga_definitions:QUICK")


def test_codec_json_and_protobuf() -> None:
    assert json.loads(encode_request({"a": 1})) == {"a": 1}
    message = wrappers_pb2.StringValue(value="x")
    assert encode_request(message) == message.SerializeToString()
    with pytest.raises(TypeError, match="protobuf message or a dict"):
        encode_request([1, 2])
    assert decode_result(_call(), b'{"id": "r-1"}') == {"id": "r-1"}
    assert decode_result(_call(), b"") == {}
    with pytest.raises(TypeError, match="not a JSON object"):
        decode_result(_call(), b"[1]")
    typed = Call("b", "/a.B/C", lambda ctx: {}, response=wrappers_pb2.StringValue)
    assert decode_result(typed, message.SerializeToString()) == {"value": "x"}
    shaped = Call(
        "b", "/a.B/C", lambda ctx: {}, response=wrappers_pb2.StringValue, result=lambda m: {"v": m.value}
    )
    assert decode_result(shaped, message.SerializeToString()) == {"v": "x"}


def test_wire_mapping_keeps_every_field() -> None:
    record = SagaRecord(
        saga_id="s1",
        definition="order",
        idempotency_key="k",
        input={"order_id": "o-1"},
        steps=(
            StepRecord("reserve", StepStatus.COMPENSATED, 2, 1, {"id": "r"}, "", 5.5),
            StepRecord("charge", StepStatus.COMPENSATION_FAILED, 1, 3, None, "boom", 6.0),
        ),
        status=SagaStatus.FAILED,
        error="why",
        abort_reason="ops",
        created_at=1.0,
        updated_at=2.0,
        version=9,
    )
    saga = to_proto(record)
    assert saga.status == pb.SAGA_STATUS_FAILED
    assert [s.status for s in saga.steps] == [pb.STEP_STATUS_COMPENSATED, pb.STEP_STATUS_COMPENSATION_FAILED]
    assert saga.steps[0].result == struct_pb2.Struct(fields={"id": struct_pb2.Value(string_value="r")})
    assert not saga.steps[1].HasField("result")
    assert saga.steps[1].idempotency_key == "s1/charge"
    assert (saga.steps[1].compensation_attempts, saga.steps[1].error) == (3, "boom")
    assert (saga.version, saga.abort_reason, saga.error) == (9, "ops", "why")
    assert saga.updated_at.ToNanoseconds() == 2_000_000_000
