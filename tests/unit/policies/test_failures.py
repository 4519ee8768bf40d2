"""The one failure classification: what counts against an endpoint, what is the app's answer."""

from __future__ import annotations

import grpc
import pytest

from grpcmesh.sdk.failures import (
    LOCAL,
    NOT_REACHED,
    PUSHBACK,
    Kind,
    classify,
    classify_error,
    counts_against_endpoint,
    parse_pushback,
)

C = grpc.StatusCode
NONE: frozenset[grpc.StatusCode] = frozenset()


def err(code: grpc.StatusCode, details: str = "", *trailers: tuple[str, str]) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details, None)


@pytest.mark.parametrize("code", [C.INTERNAL, C.UNKNOWN, C.INVALID_ARGUMENT, C.NOT_FOUND, C.UNIMPLEMENTED])
def test_an_apps_own_answers_never_count_against_the_endpoint(code: grpc.StatusCode) -> None:
    kind = classify(code)
    assert kind is Kind.APPLICATION
    assert not counts_against_endpoint(kind, code, NONE)
    assert counts_against_endpoint(kind, code, frozenset({code}))  # unless config lists the code


def test_endpoint_failures_count() -> None:
    assert classify(C.UNAVAILABLE) is Kind.ENDPOINT
    assert classify(C.INTERNAL, transport=True) is Kind.ENDPOINT  # a reset
    assert classify(C.UNAVAILABLE, not_reached=True) is Kind.NOT_REACHED
    for kind in (Kind.ENDPOINT, Kind.NOT_REACHED):
        assert counts_against_endpoint(kind, C.UNAVAILABLE, NONE)


def test_a_sidecars_own_status_is_local_unless_it_says_the_app_was_not_reached() -> None:
    assert classify(C.RESOURCE_EXHAUSTED, local=True) is Kind.LOCAL
    assert classify(C.UNAVAILABLE, local=True) is Kind.LOCAL
    assert not counts_against_endpoint(Kind.LOCAL, C.UNAVAILABLE, frozenset({C.UNAVAILABLE}))
    assert classify(C.UNAVAILABLE, local=True, not_reached=True) is Kind.NOT_REACHED
    assert classify(C.CANCELLED, cancelled=True) is Kind.CANCELLED


def test_grpc_errors_read_markers_and_transport_details() -> None:
    assert classify_error(err(C.UNKNOWN, "boom")) == (Kind.APPLICATION, None)
    assert classify_error(err(C.RESOURCE_EXHAUSTED, "too big", (LOCAL, "1")))[0] is Kind.LOCAL
    assert classify_error(err(C.UNAVAILABLE, "x", (NOT_REACHED, "1")))[0] is Kind.NOT_REACHED
    assert classify_error(err(C.UNAVAILABLE, "failed to connect to all addresses"))[0] is Kind.NOT_REACHED
    assert classify_error(err(C.INTERNAL, "Received RST_STREAM with error code 2"))[0] is Kind.ENDPOINT
    assert classify_error(err(C.DEADLINE_EXCEEDED, "Deadline Exceeded"))[0] is Kind.ENDPOINT
    assert classify_error(err(C.UNAVAILABLE, "x", (PUSHBACK, "250")))[1] == 0.25


@pytest.mark.parametrize(
    ("raw", "seconds"), [("0", 0.0), ("200", 0.2), ("-1", -1.0), ("x", -1.0), (b"5", 0.005)]
)
def test_pushback_values(raw: str | bytes, seconds: float) -> None:
    assert parse_pushback(raw) == seconds
