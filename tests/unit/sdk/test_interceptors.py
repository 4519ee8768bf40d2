"""Client interceptors as pure rewrites of call details, driven with a recording continuation."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest

from grpcmesh.sdk.headers import REQUEST_ID, TRACEPARENT, get, request_id_var
from grpcmesh.sdk.interceptors import (
    DeadlineInterceptor,
    IdempotentMethods,
    RequestIdInterceptor,
    deadline_var,
    effective_timeout,
)


def details(timeout: float | None = None, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    return grpc.aio.ClientCallDetails(b"/pkg.Svc/M", timeout, grpc.aio.Metadata(*metadata), None, None)


async def run(interceptor: Any, d: Any) -> Any:
    seen: list[Any] = []

    async def continuation(out: Any, request: Any) -> str:
        seen.append(out)
        return "call"

    assert await interceptor.intercept_unary_unary(continuation, d, "req") == "call"
    return seen[0]


async def test_request_id_propagates_the_current_one() -> None:
    token = request_id_var.set("rid-1")
    try:
        out = await run(RequestIdInterceptor(), details())
    finally:
        request_id_var.reset(token)
    assert get(out.metadata, REQUEST_ID) == "rid-1"


async def test_request_id_generated_outside_a_request_and_explicit_one_kept() -> None:
    first = get((await run(RequestIdInterceptor(), details())).metadata, REQUEST_ID)
    second = get((await run(RequestIdInterceptor(), details())).metadata, REQUEST_ID)
    assert first and second and first != second  # noqa: PT018
    kept = await run(RequestIdInterceptor(), details(metadata=((REQUEST_ID, "mine"),)))
    assert kept.metadata.get_all(REQUEST_ID) == ["mine"]


async def test_default_deadline_only_when_none_given() -> None:
    assert (await run(DeadlineInterceptor(7.0), details())).timeout == 7.0
    assert (await run(DeadlineInterceptor(7.0), details(timeout=2.0))).timeout == 2.0
    assert (await run(DeadlineInterceptor(None), details())).timeout is None
    with pytest.raises(ValueError, match="must be positive"):
        DeadlineInterceptor(0)


def test_incoming_deadline_caps_outgoing_timeouts() -> None:
    token = deadline_var.set(time.monotonic() + 1.0)
    try:
        assert 0.9 < effective_timeout(None, 30.0) <= 1.0  # type: ignore[operator]
        assert 0.9 < effective_timeout(5.0, None) <= 1.0  # type: ignore[operator]
        assert effective_timeout(0.5, 30.0) == 0.5
    finally:
        deadline_var.reset(token)
    token = deadline_var.set(time.monotonic() - 1.0)
    try:
        assert effective_timeout(5.0, 30.0) == 0.0  # already expired: fail fast, do not call
    finally:
        deadline_var.reset(token)
    assert effective_timeout(None, None) is None


def test_idempotency_from_patterns_and_from_the_proto() -> None:
    import grpcmesh.api.v1.querybus_pb2
    import grpcmesh.api.v1.saga_pb2  # noqa: F401 - loads the descriptors

    methods = IdempotentMethods(["/shop.v1.Orders/Get*"])
    assert methods("/shop.v1.Orders/GetOrder")
    assert not methods("/shop.v1.Orders/Create")
    assert methods("/grpcmesh.api.v1.QueryBus/Query")  # option idempotency_level = NO_SIDE_EFFECTS
    assert not methods("/grpcmesh.api.v1.SagaOrchestrator/Abort")  # no idempotency option


def test_traceparent_key_name() -> None:
    assert TRACEPARENT == "traceparent"


async def test_streams_get_no_default_deadline_but_keep_the_incoming_cap() -> None:
    seen: list[Any] = []

    async def continuation(out: Any, request: Any) -> str:
        seen.append(out)
        return "call"

    interceptor = DeadlineInterceptor(7.0)
    await interceptor.intercept_unary_stream(continuation, details(), "req")
    await interceptor.intercept_stream_stream(continuation, details(timeout=3.0), iter(()))
    await interceptor.intercept_stream_unary(continuation, details(), iter(()))
    assert [d.timeout for d in seen] == [None, 3.0, 7.0]
    token = deadline_var.set(time.monotonic() + 1.0)
    try:
        await interceptor.intercept_unary_stream(continuation, details(), "req")
    finally:
        deadline_var.reset(token)
    assert 0 < seen[-1].timeout <= 1.0


def test_new_request_ids_are_distinct_rfc4122_version_4_uuids() -> None:
    import uuid

    from grpcmesh.sdk.headers import new_request_id

    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for rid in ids:
        parsed = uuid.UUID(rid)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, rid)
