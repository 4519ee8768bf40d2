"""The ``grpc-timeout`` header: gRPC syntax or plain seconds, capped, 400 when malformed."""

from __future__ import annotations

import pytest

from grpcmesh.services.gateway.errors import GatewayError
from grpcmesh.services.gateway.upstream import parse_timeout


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 10.0),
        ("", 10.0),
        ("500m", 0.5),
        ("2S", 2.0),
        ("1M", 60.0),
        ("250", 60.0),
        ("1.5", 1.5),
        ("100u", 1e-4),
        ("inf", 60.0),
    ],
)
def test_parse(header: str | None, seconds: float) -> None:
    assert parse_timeout(header, default=10.0, maximum=60.0) == pytest.approx(seconds)


@pytest.mark.parametrize("header", ["soon", "0", "-1", "0S", "nan", "5X"])
def test_malformed_is_400_naming_the_header(header: str) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_timeout(header, default=10.0, maximum=60.0)
    assert caught.value.status == 400
    assert caught.value.details[0]["fieldViolations"][0]["field"] == "grpc-timeout"
